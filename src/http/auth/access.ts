/**
 * The Authorizer: who the caller is (anonymous, Basic credentials from the htpasswd file, or a
 * Bearer token) and, in one place (`decide`), whether that caller may do what the route needs.
 *
 * Where rights come from:
 * - anonymous and Basic callers: the access policy;
 * - Bearer callers: the token's `access` claim alone, for every need (repository actions, a
 *   mount's source, `registry:catalog:*`, `registry:admin:*`). Who the token's subject is only
 *   shapes the catalog's filter (our tokens list what their subject may pull) and whether a
 *   refusal is final (403) or a better token could help (401 insufficient_scope).
 *
 * Status codes (distribution-spec "Error Codes", token.md, RFC 6750 §3.1):
 * - no credentials where some are needed, wrong credentials, an invalid or expired token:
 *   401 UNAUTHORIZED with a `WWW-Authenticate` challenge (Basic, or Bearer with realm, service
 *   and the scope the request needs);
 * - a valid token without the needed scope: 401 with `error="insufficient_scope"`, so the client
 *   fetches a token for it — unless the policy would refuse that scope to the token's user
 *   anyway, then 403 DENIED;
 * - authenticated (Basic) but not allowed by the policy: 403 DENIED;
 * - too many failed logins from the client or for the user name: 429 TOOMANYREQUESTS.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from '../../core/errors.js';
import type { CatalogFilter } from '../../core/interfaces.js';
import { parseRepositoryName } from '../../core/names.js';
import type { Action } from '../../auth/actions.js';
import { LoginThrottled } from '../../auth/errors.js';
import type { Htpasswd } from '../../auth/htpasswd.js';
import { LoginThrottle } from '../../auth/login-throttle.js';
import type { Policy } from '../../auth/policy.js';
import { accessAllows, formatScope, type AccessEntry, type TokenIssuer, type TokenVerifier, type VerifiedToken } from '../../auth/tokens.js';
import { ErrorWithHeaders, type Authorizer, type CatalogVisibility, type Decision, type Need } from './authorizer.js';
import { decodeBasic } from './basic.js';
import { handleTokenEndpoint, TOKEN_PATH } from './token-endpoint.js';

export type AuthMode = 'basic' | 'token';

export interface AccessControlOptions {
  mode: AuthMode;
  /** Realm of the Basic challenge. */
  basicRealm?: string;
  users: Htpasswd | null;
  policy: Policy;
  /** Portfolio's token issuer: serves `/auth/token`; its tokens are accepted. */
  issuer: TokenIssuer | null;
  /** Accepts Portfolio's and external issuers' tokens. */
  verifier: TokenVerifier | null;
  /** The service name (audience) of the registry, in Bearer challenges. */
  service: string;
  /** Realm URL of Bearer challenges; default `<scheme>://<Host>/auth/token` of the request. */
  realm?: string;
  /** Failed-login throttling (default: LoginThrottle's defaults). */
  loginThrottle?: LoginThrottle;
}

/** Who made a request. */
type Caller =
  | { kind: 'anonymous' }
  | { kind: 'user'; user: string }
  /** `subject`: the policy's user the token speaks for (our token, a user we know), else null. */
  | { kind: 'token'; token: VerifiedToken; subject: string | null };

const ANONYMOUS: Caller = { kind: 'anonymous' };
const NOTHING_MORE: Decision = { mountAllowed: false };
/** A filter that narrows nothing (the exact check still applies). */
const EVERY_NAME: CatalogFilter = { names: [], prefixes: [''] };
/** Past this many terms a filter costs the backend more than it saves. */
const MAX_FILTER_TERMS = 1000;

export class AccessControl implements Authorizer {
  private readonly throttle: LoginThrottle;

  constructor(readonly options: AccessControlOptions) {
    if (options.mode === 'token' && !options.verifier) throw new Error('token auth needs a token verifier');
    this.throttle = options.loginThrottle ?? new LoginThrottle();
  }

  async authorize(req: IncomingMessage, need: Need): Promise<Decision> {
    const caller = await this.identify(req, need);
    const decision = this.decide(caller, need);
    if (decision === null) throw this.refusal(req, need, caller);
    const actor = caller.kind === 'user' ? caller.user : caller.kind === 'token' ? caller.token.subject : undefined;
    return actor ? { ...decision, actor } : decision;
  }

  decideFor(user: string | null, need: Need): Decision | null {
    const decision = this.decide(user === null ? ANONYMOUS : { kind: 'user', user }, need);
    return decision && user !== null ? { ...decision, actor: user } : decision;
  }

  /** The one access decision: what `caller` gets for `need`, or null when it is refused. */
  private decide(caller: Caller, need: Need): Decision | null {
    const { policy } = this.options;
    switch (caller.kind) {
      case 'token': {
        const access = caller.token.access;
        switch (need.kind) {
          case 'login':
            return NOTHING_MORE;
          case 'admin':
            return accessAllows(access, 'registry', 'admin', '*') ? NOTHING_MORE : null;
          case 'catalog':
            if (!accessAllows(access, 'registry', 'catalog', '*')) return null;
            // An external issuer that grants the catalog decides alone: its subjects are unknown here.
            if (!caller.token.ours) return NOTHING_MORE;
            return { mountAllowed: false, catalog: this.tokenCatalog(access, caller.subject) };
          case 'repository': {
            if (!accessAllows(access, 'repository', need.name, need.action)) return null;
            const from = need.mountFrom === undefined || need.mountFrom === null ? null : validName(need.mountFrom);
            // A mount from anywhere would read repositories the token names nowhere.
            return { mountAllowed: from !== null && accessAllows(access, 'repository', from, 'pull') };
          }
        }
        break;
      }
      case 'anonymous':
      case 'user': {
        const user = caller.kind === 'user' ? caller.user : null;
        switch (need.kind) {
          case 'login':
            return user === null ? null : NOTHING_MORE;
          case 'admin':
            return policy.isAdmin(user) ? NOTHING_MORE : null;
          case 'catalog':
            if (user === null && !policy.anonymousMayPullSomething()) return null;
            return { mountAllowed: false, catalog: this.policyCatalog(user) };
          case 'repository': {
            if (!policy.allows(user, need.name, need.action)) return null;
            if (need.mountFrom === undefined) return NOTHING_MORE;
            if (need.mountFrom === null) return { mountAllowed: policy.isAdmin(user) };
            const from = validName(need.mountFrom);
            return { mountAllowed: from !== null && policy.allows(user, from, 'pull') };
          }
        }
      }
    }
    return null;
  }

  /** What the policy lets `user` see: what they may pull (admins: everything). */
  private policyCatalog(user: string | null): CatalogVisibility | undefined {
    const { policy } = this.options;
    if (policy.isAdmin(user)) return undefined;
    return { filter: bounded(policy.pullFilter(user)), visible: (name) => policy.allows(user, name, 'pull') };
  }

  /** What one of our tokens with the catalog scope lists: what its claim or its subject may pull. */
  private tokenCatalog(access: AccessEntry[], subject: string | null): CatalogVisibility | undefined {
    const { policy } = this.options;
    if (policy.isAdmin(subject)) return undefined;
    const claimed = access.filter((e) => e.type === 'repository' && (e.actions.includes('pull') || e.actions.includes('*'))).map((e) => e.name);
    const byPolicy = policy.pullFilter(subject);
    const filter = byPolicy === null ? null : { names: [...new Set([...byPolicy.names, ...claimed])], prefixes: byPolicy.prefixes };
    return {
      filter: bounded(filter),
      visible: (name) => accessAllows(access, 'repository', name, 'pull') || policy.allows(subject, name, 'pull'),
    };
  }

  /** The error for a refused need: a challenge when credentials could help, else 403. */
  private refusal(req: IncomingMessage, need: Need, caller: Caller): ErrorWithHeaders {
    if (caller.kind === 'anonymous') return this.challenge(req, need, 'authentication required');
    if (caller.kind === 'user') return denied(need);
    // Our own user, whom the policy refuses this anyway: a new token would not help.
    if (caller.subject !== null && this.policyRefuses(caller.subject, need)) return denied(need);
    return this.challenge(req, need, 'the token does not grant the access this request needs', 'insufficient_scope');
  }

  private policyRefuses(user: string, need: Need): boolean {
    const { policy } = this.options;
    if (need.kind === 'repository') return !policy.allows(user, need.name, need.action);
    if (need.kind === 'admin') return !policy.isAdmin(user);
    return false;
  }

  async serve(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<boolean> {
    if (path !== TOKEN_PATH || !this.options.issuer) return false;
    await handleTokenEndpoint(this, req, res, query);
    return true;
  }

  /**
   * Checks a user's password for a request, throttled per client address and per user name.
   * Throws 429 TOOMANYREQUESTS with Retry-After while either is throttled.
   */
  async checkPassword(req: IncomingMessage, user: string, password: string): Promise<boolean> {
    const users = this.options.users;
    const client = req.socket?.remoteAddress ?? '';
    try {
      return await this.throttle.attempt(client, user, async () => (users ? users.verify(user, password, client) : false));
    } catch (err) {
      if (err instanceof LoginThrottled) {
        throw new ErrorWithHeaders(429, ErrorCode.TOOMANYREQUESTS, err.message, null, { 'Retry-After': String(err.retryAfterSeconds) });
      }
      throw err;
    }
  }

  /**
   * The access a user (null: anonymous) gets for requested scopes: the intersection with the
   * policy (token.md). `registry:admin:*` only for the policy's admins (without a policy file:
   * every user of the htpasswd file).
   */
  grantFor(user: string | null, requested: AccessEntry[]): AccessEntry[] {
    const { policy } = this.options;
    const out = new Map<string, AccessEntry>();
    for (const entry of requested) {
      let actions: string[] = [];
      if (entry.type === 'repository') {
        const allowed = policy.actions(user, entry.name);
        const wanted = entry.actions.includes('*') ? [...allowed] : entry.actions;
        actions = wanted.filter((a) => allowed.has(a as Action));
      } else if (entry.type === 'registry' && entry.name === 'admin') {
        actions = policy.isAdmin(user) && entry.actions.includes('*') ? ['*'] : [];
      } else if (entry.type === 'registry' && entry.name === 'catalog') {
        const may = user !== null || policy.anonymousMayPullSomething();
        actions = may && entry.actions.includes('*') ? ['*'] : [];
      }
      const key = `${entry.type}:${entry.name}`;
      const merged = out.get(key) ?? { type: entry.type, name: entry.name, actions: [] };
      merged.actions = [...new Set([...merged.actions, ...actions])];
      out.set(key, merged);
    }
    return [...out.values()].filter((e) => e.actions.length > 0);
  }

  private async identify(req: IncomingMessage, need: Need): Promise<Caller> {
    const header = req.headers.authorization;
    if (header === undefined) return ANONYMOUS;
    const space = header.indexOf(' ');
    const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
    const value = space === -1 ? '' : header.slice(space + 1).trim();
    if (scheme === 'basic') {
      const credentials = decodeBasic(value);
      if (credentials && (await this.checkPassword(req, credentials.user, credentials.password))) return { kind: 'user', user: credentials.user };
      throw this.challenge(req, need, 'invalid username or password');
    }
    if (scheme === 'bearer' && this.options.verifier) {
      const result = await this.options.verifier.verify(value);
      if ('error' in result) throw this.challenge(req, need, `invalid token: ${result.error}`, 'invalid_token');
      return { kind: 'token', token: result, subject: await this.knownSubject(result) };
    }
    throw this.challenge(req, need, `unsupported authorization scheme ${JSON.stringify(scheme.slice(0, 20))}`);
  }

  /**
   * The policy's user one of our tokens speaks for: its subject, when the htpasswd file has it
   * (without a file, when the policy names its users; the open policy of `--htpasswd` alone
   * would make anyone an admin). Minted tokens for other subjects get only their claims.
   */
  private async knownSubject(token: VerifiedToken): Promise<string | null> {
    if (!token.ours || token.subject === '') return null;
    const { users, policy } = this.options;
    if (users) return (await users.entry(token.subject)) === undefined ? null : token.subject;
    return policy.everyUserIsAdmin ? null : token.subject;
  }

  /** 401 UNAUTHORIZED with the challenge of the configured mode. */
  challenge(req: IncomingMessage, need: Need, message: string, error?: string): ErrorWithHeaders {
    return new ErrorWithHeaders(401, ErrorCode.UNAUTHORIZED, message, detailOf(need), { 'WWW-Authenticate': this.challengeHeader(req, need, error) });
  }

  private challengeHeader(req: IncomingMessage, need: Need, error: string | undefined): string {
    const basic = `Basic realm="${this.options.basicRealm ?? 'portfolio'}"`;
    if (this.options.mode === 'basic') return basic;
    const realm = this.options.realm ?? `${requestOrigin(req)}${TOKEN_PATH}`;
    const parts = [`realm="${realm}"`, `service="${this.options.service}"`];
    const scope = scopeOf(need);
    if (scope) parts.push(`scope="${scope}"`);
    if (error) parts.push(`error="${error}"`);
    return `Bearer ${parts.join(',')}`;
  }
}

function validName(value: string): string | null {
  try {
    return parseRepositoryName(value);
  } catch {
    return null;
  }
}

function bounded(filter: CatalogFilter | null): CatalogFilter {
  if (filter === null || filter.names.length + filter.prefixes.length > MAX_FILTER_TERMS) return EVERY_NAME;
  return filter;
}

function scopeOf(need: Need): string | undefined {
  if (need.kind === 'catalog') return 'registry:catalog:*';
  if (need.kind === 'admin') return 'registry:admin:*';
  if (need.kind !== 'repository') return undefined;
  const actions = need.action === 'push' ? ['pull', 'push'] : [need.action];
  return formatScope({ type: 'repository', name: need.name, actions });
}

function detailOf(need: Need): unknown {
  if (need.kind === 'repository') return [{ Type: 'repository', Name: need.name, Action: need.action }];
  if (need.kind === 'catalog') return [{ Type: 'registry', Name: 'catalog', Action: '*' }];
  if (need.kind === 'admin') return [{ Type: 'registry', Name: 'admin', Action: '*' }];
  return null;
}

function denied(need: Need): ErrorWithHeaders {
  return new ErrorWithHeaders(403, ErrorCode.DENIED, 'requested access to the resource is denied', detailOf(need), {});
}

/** `http(s)://host[:port]` of the request, from its socket and a sanitised Host header. */
export function requestOrigin(req: IncomingMessage): string {
  const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
  const host = req.headers.host && /^[A-Za-z0-9.\-:[\]]{1,255}$/.test(req.headers.host) ? req.headers.host : 'localhost';
  return `${encrypted ? 'https' : 'http'}://${host}`;
}
