import { errors } from '../../core/errors.js';
import type { RequestContext } from '../context.js';
import type { MethodTable } from '../router.js';
import { parsePage } from '../request.js';
import { nextLink, sendJson } from '../respond.js';

/** `GET /v2/<name>/tags/list`: tags in byte order, paged with `n`/`last` and `Link`. */
async function listTags({ registry, name, query, res }: RequestContext): Promise<void> {
  const request = parsePage(query);
  const page = await registry.repository(name).tags(request.n === 0 ? { ...request, n: 0 } : request);
  if (!page) throw errors.nameUnknown(name);
  const headers: Record<string, string> = {};
  const last = page.items[page.items.length - 1];
  if (page.more && last !== undefined && request.n !== 0) headers.Link = nextLink(`/v2/${name}/tags/list`, request.n ?? page.items.length, last);
  sendJson(res, 200, { name, tags: page.items }, headers);
}

export const tagHandlers: MethodTable = { GET: listTags, HEAD: listTags };
