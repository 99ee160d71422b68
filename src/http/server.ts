/**
 * The distribution API over node:http. One entry point per request: route, run the handler,
 * and turn every failure into the spec's error envelope (never a crash, never a hung socket).
 */
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createServer as createHttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { errors, RegistryError } from '../core/errors.js';
import type { EventOrigin } from '../core/events.js';
import type { Registry } from '../core/interfaces.js';
import { parseRepositoryName } from '../core/names.js';
import type { HttpOptions } from './context.js';
import { errorHeaders, FULL_ACCESS, type Authorizer, type Need } from './auth/authorizer.js';
import { ClientTooSlow, Limits, type LimitOptions } from './limits.js';
import { ADMIN_PREFIX, handleAdmin } from './handlers/admin.js';
import { handleBase, handleCatalog } from './handlers/base.js';
import { HEALTH_PATHS, type Health } from './health.js';
import { METRICS_PATH, type Metrics } from './metrics.js';
import { route } from './router.js';
import { API_PREFIX, handleApi, type ApiOptions } from './api/api.js';
import { UI_PREFIX, type UiAssets } from './ui.js';
import { API_VERSION, API_VERSION_HEADER, internalError, sendError } from './respond.js';

export interface ServerOptions extends HttpOptions {
  logger: Logger;
  tls?: { cert: Buffer; key: Buffer };
  /** Access control (src/http/auth/); absent: anonymous full access. */
  authorizer?: Authorizer;
  /** Connection caps, timeouts and per-client limits (src/http/limits.ts). */
  limits?: LimitOptions;
  /** Probes at /healthz and /readyz; absent: not served. */
  health?: Health;
  /** Request metrics are recorded here when given; */
  metrics?: Metrics;
  /** …and served at /metrics (admin rights when auth is on) when this is true, not when they have a listener of their own. */
  serveMetrics?: boolean;
  /** The web interface's JSON API at `/_portfolio/api/v1/`; absent: not served. */
  api?: ApiOptions;
  /** The web interface's files at `/ui/`; absent: not served. */
  ui?: UiAssets;
  /**
   * Mirror requests (containerd's `?ns=HOST`): the repository prefix of the cached upstream for
   * HOST, put before the name as sent; undefined: the request is served as if `ns` were absent.
   */
  mirror?: (ns: string) => string | undefined;
}

export function createRegistryServer(registry: Registry, options: ServerOptions): Server {
  const limits = new Limits(options.limits ?? {}, options.logger);
  const handler = (req: IncomingMessage, res: ServerResponse) => void handle(registry, options, req, res, limits);
  const connectionsCheckingInterval = limits.checkingInterval;
  const server = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key, connectionsCheckingInterval }, handler)
    : createHttpServer({ connectionsCheckingInterval }, handler);
  limits.attach(server);
  return server;
}

async function handle(registry: Registry, options: ServerOptions, req: IncomingMessage, res: ServerResponse, limits: Limits): Promise<void> {
  const started = process.hrtime.bigint();
  res.setHeader(API_VERSION_HEADER, API_VERSION);
  // One 'close' listener per request for everything that happens at its end.
  const tracked = limits.track(req, res);
  let admitted: (() => void) | undefined;
  res.once('close', () => {
    tracked();
    admitted?.();
    options.metrics?.observeRequest(req, res, started);
    const logger = options.logger;
    if (!logger.isLevelEnabled('info')) return;
    logger.info(
      {
        method: req.method,
        path: req.url,
        status: res.statusCode,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
        remote: req.socket?.remoteAddress,
        complete: res.writableFinished,
      },
      'request',
    );
  });
  try {
    admitted = limits.admit(req);
    await dispatch(registry, options, req, res);
  } catch (err) {
    fail(options.logger, limits, req, res, err);
  }
}

async function dispatch(registry: Registry, options: ServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const method = req.method ?? 'GET';
  // Probes carry no credentials: they say only whether to send traffic here.
  if (options.health && HEALTH_PATHS.has(path)) return options.health.handle(req, res, path);
  if (path === METRICS_PATH && options.metrics && options.serveMetrics) {
    if (method !== 'GET' && method !== 'HEAD') throw errors.unsupported(`method ${method} is not allowed`);
    await options.authorizer?.authorize(req, { kind: 'admin' });
    return options.metrics.serve(res);
  }
  if (path === '/v2/' || path === '/v2') {
    if (method !== 'GET' && method !== 'HEAD') throw errors.unsupported(`method ${method} is not allowed`);
    await options.authorizer?.authorize(req, { kind: 'login' });
    return handleBase(req, res);
  }
  if (options.api && path.startsWith(API_PREFIX)) {
    return handleApi(registry, options.api, options.maintenance, options.authorizer, req, res, path, query, (actor) => originOf(req, actor));
  }
  if (options.ui && (path === '/ui' || path.startsWith(UI_PREFIX))) return options.ui.serve(req, res, path);
  if (path.startsWith(ADMIN_PREFIX)) {
    const decision = options.authorizer ? await options.authorizer.authorize(req, { kind: 'admin' }) : FULL_ACCESS;
    return handleAdmin(options, req, res, path, originOf(req, decision.actor));
  }
  if (options.authorizer?.serve && !path.startsWith('/v2/') && (await options.authorizer.serve(req, res, path, query))) return;
  if (!path.startsWith('/v2/')) throw errors.endpointUnknown();
  const rest = path.slice(4);
  if (rest === '_catalog') {
    if (method !== 'GET') throw errors.unsupported(`method ${method} is not allowed`);
    const decision = options.authorizer ? await options.authorizer.authorize(req, { kind: 'catalog' }) : FULL_ACCESS;
    return handleCatalog(registry, res, query, decision.catalog);
  }
  const match = route(method, rest, query);
  const ns = options.mirror && query.get('ns');
  const prefix = ns ? options.mirror!(ns) : undefined;
  const name = parseRepositoryName(prefix ? `${prefix}/${match.name}` : match.name);
  const need: Need = { kind: 'repository', name, action: match.action, ...(match.mountFrom !== undefined ? { mountFrom: match.mountFrom } : {}) };
  const decision = options.authorizer ? await options.authorizer.authorize(req, need) : FULL_ACCESS;
  const origin = originOf(req, decision.actor);
  await match.handler({ req, res, registry, options, query, name, param: match.param, mountAllowed: decision.mountAllowed, origin });
}

/** The request as events record it (distribution's `request` and `actor`). */
function originOf(req: IncomingMessage, actor: string | undefined): EventOrigin {
  const host = req.headers.host ?? '';
  const scheme = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
  return {
    request: {
      id: randomUUID(),
      addr: `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? ''}`,
      host,
      method: req.method ?? '',
      useragent: req.headers['user-agent'] ?? '',
    },
    ...(actor ? { actor } : {}),
    ...(host ? { baseUrl: `${scheme}://${host}` } : {}),
  };
}

/** Errors that mean the client went away mid-response: nothing failed on this side. */
const HUNG_UP = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE', 'ERR_STREAM_DESTROYED']);

function fail(logger: Logger, limits: Limits, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (err instanceof ClientTooSlow) {
    // Its connection is closed already: nobody to answer.
    logger.info({ method: req.method, path: req.url, remote: req.socket?.remoteAddress, reason: err.message }, 'client too slow: connection closed');
    return;
  }
  const error = err instanceof RegistryError ? err : internalError();
  if (!(err instanceof RegistryError)) {
    const hungUp = (res.headersSent || req.socket.destroyed) && HUNG_UP.has((err as NodeJS.ErrnoException).code ?? '');
    if (hungUp) logger.info({ method: req.method, path: req.url, code: (err as NodeJS.ErrnoException).code }, 'client hung up');
    else logger.error({ err, method: req.method, path: req.url }, 'request failed');
  }
  if (res.headersSent) {
    // The status is already on the wire: cut the connection so the client sees a failed transfer.
    res.destroy();
    return;
  }
  if (!req.complete) limits.drainAfterError(req, res, error.status);
  sendError(res, error, errorHeaders(err));
}
