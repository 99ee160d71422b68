/**
 * The Authorizer: who the caller is (anonymous, Basic credentials from the htpasswd file, or a
 * Bearer token) and whether the access policy (or the token's `access` claim) lets them do what
 * the route needs.
 *
 * Status codes (distribution-spec "Error Codes", token.md, RFC 6750 §3.1):
 * - no credentials where some are needed, wrong credentials, an invalid or expired token:
 *   401 UNAUTHORIZED with a `WWW-Authenticate` challenge (Basic, or Bearer with realm, service
 *   and the scope the request needs);
 * - a valid token without the needed scope: 401 with `error="insufficient_scope"`, so the client
 *   fetches a token for it — unless the policy would refuse that scope to the token's user
 *   anyway, then 403 DENIED;
 * - authenticated (Basic) but not allowed by the policy: 403 DENIED.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from '../../core/errors.js';
import { ErrorWithHeaders, type Action, type Authorizer, type Grant, type Need } from './authorizer.js';
import { decodeBasic, type Htpasswd } from './htpasswd.js';
import type { Policy } from './policy.js';
import { handleTokenEndpoint, TOKEN_PATH } from './token-endpoint.js';
import { accessAllows, formatScope, type AccessEntry, type TokenIssuer, type TokenVerifier, type VerifiedToken } from './tokens.js';

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
}

/** Who made a request. `user` is null for anonymous callers. */
export interface Caller {
  user: string | null;
  token: VerifiedToken | null;
}

const ANONYMOUS: Caller = { user: null, token: null };
const FULL: Grant = { all: true, mayPull: () => true };

export class AccessControl implements Authorizer {
  constructor(readonly options: AccessControlOptions) {
    if (options.mode === 'token' && !options.verifier) throw new Error('token auth needs a token verifier');
  }

  async authorize(req: IncomingMessage, need: Need): Promise<Grant> {
    const caller = await this.identify(req, need);
    const { policy } = this.options;
    const token = caller.token;
    const admin = (token === null || token.ours) && policy.isAdmin(caller.user);
    switch (need.kind) {
      case 'login':
        if (caller.user === null && token === null) throw this.challenge(req, need, 'authentication required');
        break;
      case 'catalog':
        if (token) {
          if (!accessAllows(token.access, 'registry', 'catalog', '*')) throw this.insufficient(req, need, caller);
          // An external issuer that grants the catalog decides alone: its callers are unknown to the policy.
          if (!token.ours) return FULL;
        } else if (caller.user === null && !policy.anonymousMayPullSomething()) {
          throw this.challenge(req, need, 'authentication required');
        }
        break;
      case 'admin':
        if (!admin && !(token && accessAllows(token.access, 'registry', 'admin', '*'))) {
          if (caller.user === null && token === null) throw this.challenge(req, need, 'authentication required');
          if (token && !token.ours) throw this.insufficient(req, need, caller);
          throw denied(need);
        }
        return FULL;
      case 'repository': {
        const allowed = token ? accessAllows(token.access, 'repository', need.name, need.action) : policy.allows(caller.user, need.name, need.action);
        if (!allowed) {
          if (token) throw this.insufficient(req, need, caller);
          if (caller.user === null) throw this.challenge(req, need, 'authentication required');
          throw denied(need);
        }
        break;
      }
    }
    if (admin) return FULL;
    return {
      all: false,
      mayPull: (name: string) =>
        (token !== null && accessAllows(token.access, 'repository', name, 'pull')) ||
        ((token === null || token.ours) && policy.allows(caller.user, name, 'pull')),
    };
  }

  async serve(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<boolean> {
    if (path !== TOKEN_PATH || !this.options.issuer) return false;
    await handleTokenEndpoint(this, req, res, query);
    return true;
  }

  /** Checks Basic credentials: the user name, or null when they are wrong. */
  async checkPassword(user: string, password: string): Promise<boolean> {
    if (!this.options.users) return false;
    return this.options.users.verify(user, password);
  }

  /** The access a caller gets for requested scopes: the intersection with the policy (token.md). */
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
      if (credentials && (await this.checkPassword(credentials.user, credentials.password))) return { user: credentials.user, token: null };
      throw this.challenge(req, need, 'invalid username or password');
    }
    if (scheme === 'bearer' && this.options.verifier) {
      const result = await this.options.verifier.verify(value);
      if ('error' in result) throw this.challenge(req, need, `invalid token: ${result.error}`, 'invalid_token');
      return { user: result.subject === '' ? null : result.subject, token: result };
    }
    throw this.challenge(req, need, `unsupported authorization scheme ${JSON.stringify(scheme.slice(0, 20))}`);
  }

  /** 401 UNAUTHORIZED with the challenge of the configured mode. */
  challenge(req: IncomingMessage, need: Need, message: string, error?: string): ErrorWithHeaders {
    return new ErrorWithHeaders(401, ErrorCode.UNAUTHORIZED, message, detailOf(need), { 'WWW-Authenticate': this.challengeHeader(req, need, error) });
  }

  private insufficient(req: IncomingMessage, need: Need, caller: Caller): ErrorWithHeaders {
    const token = caller.token!;
    // Our own user, whom the policy refuses this anyway: a new token would not help.
    if (token.ours && caller.user !== null && need.kind === 'repository' && !this.options.policy.allows(caller.user, need.name, need.action)) {
      return denied(need);
    }
    return this.challenge(req, need, 'the token does not grant the access this request needs', 'insufficient_scope');
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
