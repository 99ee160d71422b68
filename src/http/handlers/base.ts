import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Page, PageRequest, Registry } from '../../core/interfaces.js';
import type { CatalogVisibility } from '../auth/authorizer.js';
import { nextLink, sendJson } from '../respond.js';
import { parsePage } from '../request.js';

/** `GET /v2/`: the API version check. */
export async function handleBase(_req: IncomingMessage, res: ServerResponse): Promise<void> {
  sendJson(res, 200, {});
}

/**
 * `GET /v2/_catalog`: repository names in byte order, paged with `n`/`last` and `Link`. With
 * auth on, `visibility` narrows it down to what the caller may see.
 */
export async function handleCatalog(registry: Registry, res: ServerResponse, query: URLSearchParams, visibility?: CatalogVisibility): Promise<void> {
  const request = parsePage(query);
  if (request.n === 0) return sendJson(res, 200, { repositories: [] });
  const page = visibility ? await filteredCatalog(registry, request, visibility) : await registry.catalog(request);
  const headers: Record<string, string> = {};
  const last = page.items[page.items.length - 1];
  if (page.more && last !== undefined) headers.Link = nextLink('/v2/_catalog', request.n ?? page.items.length, last);
  sendJson(res, 200, { repositories: page.items }, headers);
}

/** The largest filtered page, as the backend's. */
const MAX_FILTERED_PAGE = 10_000;

/**
 * Reads the backend's pages, narrowed by the visibility's filter, until `n` visible names are
 * found, then on to the next visible one, so that `more` (and the `Link` header) is true only
 * when another page holds something.
 */
async function filteredCatalog(registry: Registry, request: PageRequest, { filter, visible }: CatalogVisibility): Promise<Page> {
  const limit = Math.min(request.n ?? MAX_FILTERED_PAGE, MAX_FILTERED_PAGE);
  const batch = Math.min(MAX_FILTERED_PAGE, Math.max(100, 2 * limit));
  const items: string[] = [];
  let last = request.last;
  for (;;) {
    const page = await registry.catalog(last === undefined ? { n: batch } : { n: batch, last }, filter);
    for (const name of page.items) {
      if (!visible(name)) continue;
      if (items.length === limit) return { items, more: true };
      items.push(name);
    }
    const end = page.items[page.items.length - 1];
    if (!page.more || end === undefined) return { items, more: false };
    last = end;
  }
}
