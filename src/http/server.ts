/**
 * The distribution API over node:http. One entry point per request: route, run the handler,
 * and turn every failure into the spec's error envelope (never a crash, never a hung socket).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { errors, RegistryError } from '../core/errors.js';
import type { Registry } from '../core/interfaces.js';
import { parseRepositoryName } from '../core/names.js';
import type { HttpOptions } from './context.js';
import { ADMIN_PREFIX, handleAdmin } from './handlers/admin.js';
import { handleBase, handleCatalog } from './handlers/base.js';
import { route } from './router.js';
import { API_VERSION, API_VERSION_HEADER, internalError, sendError } from './respond.js';

export interface ServerOptions extends HttpOptions {
  logger: Logger;
  tls?: { cert: Buffer; key: Buffer };
}

export function createRegistryServer(registry: Registry, options: ServerOptions): Server {
  const handler = (req: IncomingMessage, res: ServerResponse) => void handle(registry, options, req, res);
  const server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createHttpServer(handler);
  // Uploads may stream for a long time; idle and header timeouts still protect the sockets.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  return server;
}

async function handle(registry: Registry, options: ServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = process.hrtime.bigint();
  res.setHeader(API_VERSION_HEADER, API_VERSION);
  res.once('close', () => {
    options.logger.info(
      {
        method: req.method,
        path: req.url,
        status: res.statusCode,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
        remote: req.socket.remoteAddress,
        complete: res.writableFinished,
      },
      'request',
    );
  });
  try {
    await dispatch(registry, options, req, res);
  } catch (err) {
    fail(options.logger, req, res, err);
  }
}

async function dispatch(registry: Registry, options: HttpOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const method = req.method ?? 'GET';
  if (path === '/v2/' || path === '/v2') {
    if (method !== 'GET' && method !== 'HEAD') throw errors.unsupported(`method ${method} is not allowed`);
    return handleBase(req, res);
  }
  if (path.startsWith(ADMIN_PREFIX)) return handleAdmin(options, req, res, path);
  if (!path.startsWith('/v2/')) throw errors.endpointUnknown();
  const rest = path.slice(4);
  if (rest === '_catalog') {
    if (method !== 'GET') throw errors.unsupported(`method ${method} is not allowed`);
    return handleCatalog(registry, res, query);
  }
  const match = route(method, rest);
  const name = parseRepositoryName(match.name);
  await match.handler({ req, res, registry, options, query, name, param: match.param });
}

function fail(logger: Logger, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const error = err instanceof RegistryError ? err : internalError();
  if (!(err instanceof RegistryError)) logger.error({ err, method: req.method, path: req.url }, 'request failed');
  if (res.headersSent) {
    // The status is already on the wire: cut the connection so the client sees a failed transfer.
    res.destroy();
    return;
  }
  // An unread request body would keep the connection busy: close it after the answer.
  if (!req.complete) res.setHeader('Connection', 'close');
  sendError(res, error);
}
