/**
 * The JSON API of the web interface, under `/_portfolio/api/v1/` (docs/api.openapi.yaml):
 *   GET|POST|DELETE session                              who am I / log in / log out
 *   GET    repositories?q=&match=&limit=&cursor=         repository summaries, searched and paged
 *   GET    repositories/<name>                           one summary, with what the caller may do
 *   DELETE repositories/<name>
 *   GET    repositories/<name>/tags?sort=&limit=&cursor=
 *   DELETE repositories/<name>/tags/<tag>
 *   GET    repositories/<name>/manifests/<reference>     a manifest or index in detail
 *   DELETE repositories/<name>/manifests/<digest>
 *   GET    usage?limit=&cursor=                          bytes by repository (admins)
 * Every page comes from the metadata database (core/browse.ts). Changes made with a session
 * must carry its CSRF token (sessions.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Browse, RepositorySummary } from '../../core/browse.js';
import { parseDigest } from '../../core/digest.js';
import { errors, ErrorCode, RegistryError } from '../../core/errors.js';
import type { EventOrigin, SinkBacklog } from '../../core/events.js';
import type { Registry } from '../../core/interfaces.js';
import type { GcReport, Maintenance } from '../../core/maintenance.js';
import { immutableRuleFor, type ImmutableRule, type QuotaUsage } from '../../core/policies.js';
import { parseReference, parseRepositoryName, type RepositoryName } from '../../core/names.js';
import type { Authorizer, CatalogVisibility } from '../auth/authorizer.js';
import { readBody } from '../request.js';
import { sendEmpty, sendJson } from '../respond.js';
import { callerOf, type Caller } from './caller.js';
import { configDigestOf, manifestView } from './manifest-view.js';
import { setCookies, type Sessions } from './sessions.js';

export const API_PREFIX = '/_portfolio/api/v1/';

export interface ApiOptions {
  browse: Browse;
  sessions: Sessions;
  /** Event delivery queues per sink, shown to admins with the usage. */
  eventBacklog?: () => Promise<SinkBacklog[]>;
  /** Immutable-tag rules, to mark the tags they protect. */
  immutableRules?: () => Promise<ImmutableRule[]>;
  /** Quota scopes with their used and allowed bytes, shown to admins with the usage. */
  quotas?: () => Promise<QuotaUsage[]>;
  /** This process's last background garbage collection pass, shown to admins. */
  gcStatus?: () => GcStatus | null;
}

/** A background collection pass as the usage page shows it. */
export interface GcStatus {
  /** When it ended (ms since the epoch). */
  at: number;
  /** Its report, or why it failed. */
  report?: GcReport;
  error?: string;
}

interface ApiContext {
  registry: Registry;
  api: ApiOptions;
  maintenance: Maintenance | undefined;
  authorizer: Authorizer | undefined;
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  caller: Caller;
  origin: (actor: string | undefined) => EventOrigin;
}

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

export async function handleApi(
  registry: Registry,
  api: ApiOptions,
  maintenance: Maintenance | undefined,
  authorizer: Authorizer | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  query: URLSearchParams,
  origin: (actor: string | undefined) => EventOrigin,
): Promise<void> {
  const method = req.method ?? 'GET';
  const rest = path.slice(API_PREFIX.length);
  const caller = callerOf(req, authorizer, api.sessions);
  const ctx: ApiContext = { registry, api, maintenance, authorizer, req, res, query, caller, origin };
  res.setHeader('Cache-Control', 'no-store');
  if (method !== 'GET' && method !== 'HEAD' && rest !== 'session') checkCsrf(ctx);
  if (rest === 'session') return session(ctx, method);
  if (rest === 'repositories') return only(method, 'GET', () => listRepositories(ctx));
  if (rest === 'usage') return only(method, 'GET', () => usage(ctx));
  let m = /^repositories\/(.+)\/tags\/([^/]+)$/.exec(rest);
  if (m) return only(method, 'DELETE', () => deleteManifest(ctx, m![1]!, m![2]!, 'tag'));
  m = /^repositories\/(.+)\/tags$/.exec(rest);
  if (m) return only(method, 'GET', () => listTags(ctx, m![1]!));
  m = /^repositories\/(.+)\/manifests\/([^/]+)$/.exec(rest);
  if (m) {
    if (method === 'DELETE') return deleteManifest(ctx, m[1]!, m[2]!, 'digest');
    return only(method, 'GET', () => manifest(ctx, m![1]!, m![2]!));
  }
  m = /^repositories\/(.+)$/.exec(rest);
  if (m) {
    if (method === 'DELETE') return deleteRepository(ctx, m[1]!);
    return only(method, 'GET', () => repository(ctx, m![1]!));
  }
  throw errors.endpointUnknown();
}

function only(method: string, allowed: string, run: () => Promise<void>): Promise<void> {
  if (method !== allowed && !(allowed === 'GET' && method === 'HEAD')) throw errors.unsupported(`method ${method} is not allowed`);
  return run();
}

/** A change made with a session cookie must echo the session's CSRF token. */
function checkCsrf(ctx: ApiContext): void {
  const { session } = ctx.caller;
  if (session && !ctx.api.sessions.csrfMatches(ctx.req, session)) {
    throw new RegistryError(403, ErrorCode.DENIED, 'missing or wrong CSRF token', { header: 'X-Portfolio-CSRF' });
  }
}

async function session(ctx: ApiContext, method: string): Promise<void> {
  const { req, res, caller, api, authorizer } = ctx;
  if (method === 'GET' || method === 'HEAD') return sendJson(res, 200, await whoami(ctx));
  if (method === 'DELETE') {
    if (caller.session) {
      checkCsrf(ctx);
      api.sessions.end(caller.session);
    }
    setCookies(res, api.sessions.cookieHeaders(req, null));
    return sendEmpty(res, 204);
  }
  if (method !== 'POST') throw errors.unsupported(`method ${method} is not allowed`);
  if (!authorizer?.checkPassword || !authorizer.decideFor) throw errors.unsupported('this registry has no users to log in as');
  // A JSON body only: a cross-site form cannot send one without a CORS preflight, which fails here.
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    throw new RegistryError(415, ErrorCode.UNSUPPORTED, 'expected Content-Type application/json');
  }
  let body: unknown;
  try {
    body = JSON.parse((await readBody(req, 4096, 'login')).toString('utf8'));
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    throw new RegistryError(400, ErrorCode.UNSUPPORTED, 'invalid JSON body');
  }
  const { username, password } = (body ?? {}) as { username?: unknown; password?: unknown };
  if (typeof username !== 'string' || typeof password !== 'string' || username === '' || username.length > 256 || password.length > 1024) {
    throw new RegistryError(400, ErrorCode.UNSUPPORTED, 'expected {"username": string, "password": string}');
  }
  if (!(await authorizer.checkPassword(req, username, password))) {
    throw new RegistryError(401, ErrorCode.UNAUTHORIZED, 'invalid username or password');
  }
  if (caller.session) api.sessions.end(caller.session);
  const created = api.sessions.create(username);
  setCookies(res, api.sessions.cookieHeaders(req, created));
  const admin = authorizer.decideFor(username, { kind: 'admin' }) !== null;
  return sendJson(res, 200, { authEnabled: true, user: username, admin, csrf: created.csrf, expiresAt: new Date(created.expiresAt).toISOString(), canBrowse: true, canLogin: true });
}

async function whoami(ctx: ApiContext) {
  const { caller, authorizer } = ctx;
  const canBrowse = await caller.may({ kind: 'catalog' });
  return {
    authEnabled: caller.authEnabled,
    canLogin: Boolean(authorizer?.checkPassword && authorizer.decideFor),
    user: caller.user,
    admin: await caller.may({ kind: 'admin' }),
    canBrowse,
    csrf: caller.session?.csrf ?? null,
    expiresAt: caller.session ? new Date(caller.session.expiresAt).toISOString() : null,
  };
}

function limitOf(query: URLSearchParams): number {
  const raw = query.get('limit');
  if (raw === null) return DEFAULT_LIMIT;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1) throw errors.paginationInvalid('limit must be a number from 1 to 200');
  return Math.min(Number(raw), MAX_LIMIT);
}

function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decodeCursor<T>(query: URLSearchParams, check: (v: unknown) => v is T): T | undefined {
  const raw = query.get('cursor');
  if (raw === null || raw === '') return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    if (check(value)) return value;
  } catch {
    // fall through
  }
  throw errors.paginationInvalid('invalid cursor');
}

const isNameCursor = (v: unknown): v is { name: string } => typeof (v as { name?: unknown })?.name === 'string';
const isTagCursor = (v: unknown): v is { name: string; pushedAt: number } => isNameCursor(v) && typeof (v as { pushedAt?: unknown }).pushedAt === 'number';

function summaryJson(s: RepositorySummary) {
  return { name: s.name, tags: s.tags, manifests: s.manifests, bytes: s.bytes, lastPush: s.lastPush === null ? null : new Date(s.lastPush).toISOString() };
}

/** Pages of visible repositories: the backend narrows by the visibility's filter, each name is then checked exactly. */
async function visibleRepositories(ctx: ApiContext, limit: number, search: string, match: 'substring' | 'prefix') {
  const decision = await ctx.caller.require({ kind: 'catalog' });
  const visibility: CatalogVisibility | undefined = decision.catalog;
  let after = decodeCursor(ctx.query, isNameCursor)?.name;
  const items: RepositorySummary[] = [];
  for (;;) {
    const page = await ctx.api.browse.repositories({
      search,
      match,
      limit: visibility ? Math.max(limit, 100) : limit,
      ...(after !== undefined ? { after } : {}),
      ...(visibility ? { filter: visibility.filter } : {}),
    });
    for (const r of page.items) {
      if (visibility && !visibility.visible(r.name)) continue;
      if (items.length === limit) return { items, more: true };
      items.push(r);
    }
    const end = page.items[page.items.length - 1];
    if (!page.more || end === undefined) return { items, more: false };
    after = end.name;
  }
}

async function listRepositories(ctx: ApiContext): Promise<void> {
  const limit = limitOf(ctx.query);
  const search = (ctx.query.get('q') ?? '').trim().slice(0, 255);
  const matchParam = ctx.query.get('match') ?? 'substring';
  if (matchParam !== 'substring' && matchParam !== 'prefix') throw new RegistryError(400, ErrorCode.UNSUPPORTED, 'match must be substring or prefix');
  const page = await visibleRepositories(ctx, limit, search, matchParam);
  const last = page.items[page.items.length - 1];
  sendJson(ctx.res, 200, {
    repositories: page.items.map(summaryJson),
    next: page.more && last ? encodeCursor({ name: last.name }) : null,
  });
}

async function repository(ctx: ApiContext, raw: string): Promise<void> {
  const name = parseRepositoryName(raw);
  await ctx.caller.require({ kind: 'repository', name, action: 'pull' });
  const summary = await ctx.api.browse.repositorySummary(name);
  if (!summary) throw errors.nameUnknown(name);
  const canDelete = await ctx.caller.may({ kind: 'repository', name, action: 'delete' });
  sendJson(ctx.res, 200, { ...summaryJson(summary), can: { delete: canDelete, deleteRepository: canDelete && ctx.maintenance !== undefined } });
}

async function listTags(ctx: ApiContext, raw: string): Promise<void> {
  const name = parseRepositoryName(raw);
  await ctx.caller.require({ kind: 'repository', name, action: 'pull' });
  const limit = limitOf(ctx.query);
  const sort = ctx.query.get('sort') ?? 'name';
  if (sort !== 'name' && sort !== 'pushed') throw new RegistryError(400, ErrorCode.UNSUPPORTED, 'sort must be name or pushed');
  const after = decodeCursor(ctx.query, sort === 'pushed' ? isTagCursor : isNameCursor);
  const page = await ctx.api.browse.tags(name, {
    sort,
    limit,
    ...(after ? { after: { name: after.name, pushedAt: (after as { pushedAt?: number }).pushedAt ?? 0 } } : {}),
  });
  if (!page) throw errors.nameUnknown(name);
  const rules = ctx.api.immutableRules ? await ctx.api.immutableRules() : [];
  const last = page.items[page.items.length - 1];
  sendJson(ctx.res, 200, {
    tags: page.items.map((t) => {
      const rule = immutableRuleFor(rules, name, t.name);
      return {
        ...t,
        pushedAt: new Date(t.pushedAt).toISOString(),
        lastPulledAt: t.lastPulledAt === null ? null : new Date(t.lastPulledAt).toISOString(),
        immutable: rule ? { repositories: rule.repositories, tags: rule.tags } : null,
      };
    }),
    next: page.more && last ? encodeCursor(sort === 'pushed' ? { name: last.name, pushedAt: last.pushedAt } : { name: last.name }) : null,
  });
}

async function manifest(ctx: ApiContext, raw: string, reference: string): Promise<void> {
  const name = parseRepositoryName(raw);
  parseReference(reference);
  await ctx.caller.require({ kind: 'repository', name, action: 'pull' });
  const detail = await ctx.api.browse.manifest(name, reference);
  if (!detail) throw errors.manifestUnknown(reference);
  // Only a config kept in the database is shown: a page never reads the object store.
  const configDigest = configDigestOf(detail.content);
  const config = configDigest ? (detail.blobs.get(configDigest)?.inline ?? null) : null;
  const canDelete = await ctx.caller.may({ kind: 'repository', name, action: 'delete' });
  sendJson(ctx.res, 200, { ...manifestView(name, detail, config), can: { delete: canDelete } });
}

async function deleteManifest(ctx: ApiContext, raw: string, reference: string, kind: 'tag' | 'digest'): Promise<void> {
  const name = parseRepositoryName(raw);
  const ref = parseReference(reference);
  if (ref.kind !== kind) throw new RegistryError(400, kind === 'tag' ? ErrorCode.TAG_INVALID : ErrorCode.DIGEST_INVALID, `expected a ${kind}`);
  const decision = await ctx.caller.require({ kind: 'repository', name, action: 'delete' });
  await ctx.registry.repository(name, ctx.origin(decision.actor)).manifests.delete(ref);
  sendEmpty(ctx.res, 204);
}

async function deleteRepository(ctx: ApiContext, raw: string): Promise<void> {
  const name = parseRepositoryName(raw);
  const decision = await ctx.caller.require({ kind: 'repository', name, action: 'delete' });
  if (!ctx.maintenance) throw errors.unsupported('this backend cannot delete repositories');
  if (!(await ctx.maintenance.deleteRepository(name, ctx.origin(decision.actor)))) throw errors.nameUnknown(name);
  sendEmpty(ctx.res, 204);
}

async function usage(ctx: ApiContext): Promise<void> {
  await ctx.caller.require({ kind: 'admin' });
  const limit = limitOf(ctx.query);
  const after = decodeCursor(ctx.query, isNameCursor)?.name;
  const [totals, page, backlog, quotas] = await Promise.all([
    ctx.api.browse.usageSummary(),
    ctx.api.browse.repositories({ limit, ...(after !== undefined ? { after } : {}) }),
    ctx.api.eventBacklog ? ctx.api.eventBacklog() : Promise.resolve([]),
    ctx.api.quotas ? ctx.api.quotas() : Promise.resolve([]),
  ]);
  const gc = ctx.api.gcStatus?.() ?? null;
  const last = page.items[page.items.length - 1];
  sendJson(ctx.res, 200, {
    storedBytes: totals.storedBytes,
    blobs: totals.blobs,
    repositoryCount: totals.repositories,
    repositories: page.items.map(summaryJson),
    next: page.more && last ? encodeCursor({ name: last.name }) : null,
    events: backlog.map((b) => ({ ...b, oldestPendingAt: b.oldestPendingAt === null ? null : new Date(b.oldestPendingAt).toISOString() })),
    quotas,
    gc: gc ? { at: new Date(gc.at).toISOString(), ...(gc.report ? { report: gc.report } : {}), ...(gc.error ? { error: gc.error } : {}) } : null,
  });
}
