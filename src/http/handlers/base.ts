import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from '../../core/interfaces.js';
import { nextLink, sendJson } from '../respond.js';
import { parsePage } from '../request.js';

/** `GET /v2/`: the API version check. */
export async function handleBase(_req: IncomingMessage, res: ServerResponse): Promise<void> {
  sendJson(res, 200, {});
}

/** `GET /v2/_catalog`: repository names in byte order, paged with `n`/`last` and `Link`. */
export async function handleCatalog(registry: Registry, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const request = parsePage(query);
  if (request.n === 0) return sendJson(res, 200, { repositories: [] });
  const page = await registry.catalog(request);
  const headers: Record<string, string> = {};
  const last = page.items[page.items.length - 1];
  if (page.more && last !== undefined) headers.Link = nextLink('/v2/_catalog', request.n ?? page.items.length, last);
  sendJson(res, 200, { repositories: page.items }, headers);
}

