/**
 * Maps `/v2/…` paths to handlers. Repository names have several path segments, so each route
 * is matched from the right: the name is everything before the endpoint suffix. Paths are not
 * percent-decoded: an encoded slash or dot can never become part of a name.
 */
import { errors } from '../core/errors.js';
import type { Action } from '../auth/actions.js';
import type { Handler } from './context.js';
import { blobHandlers } from './handlers/blobs.js';
import { manifestHandlers } from './handlers/manifests.js';
import { referrersHandlers } from './handlers/referrers.js';
import { tagHandlers } from './handlers/tags.js';
import { uploadHandlers, uploadSessionHandlers } from './handlers/uploads.js';

export type MethodTable = Partial<Record<string, Handler>>;

interface Route {
  pattern: RegExp;
  methods: MethodTable;
  /** The action every method of this route needs, when it is not the method's usual one. */
  action?: Action;
  /** Whether a POST here may ask for a cross-repository mount (`?mount=&from=`). */
  mounts?: boolean;
}

// Order matters: `blobs/uploads/` must win over `blobs/<digest>`.
const ROUTES: Route[] = [
  { pattern: /^(.+)\/blobs\/uploads\/?$/, methods: uploadHandlers, mounts: true },
  // A session is part of a push: reading its progress or abandoning it needs push (as distribution).
  { pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/, methods: uploadSessionHandlers, action: 'push' },
  { pattern: /^(.+)\/blobs\/([^/]+)$/, methods: blobHandlers },
  { pattern: /^(.+)\/manifests\/([^/]+)$/, methods: manifestHandlers },
  { pattern: /^(.+)\/tags\/list$/, methods: tagHandlers },
  { pattern: /^(.+)\/referrers\/([^/]+)$/, methods: referrersHandlers },
];

export interface Match {
  handler: Handler;
  name: string;
  param: string;
  /** What the request needs on the repository (checked by the access hook in server.ts). */
  action: Action;
  /** The source of a requested cross-repository mount as sent, null for "any"; absent: no mount. */
  mountFrom?: string | null;
}

/** The action each method needs on every route: reads pull, writes push, deletes delete. */
const ACTION_OF_METHOD: Record<string, Action> = { GET: 'pull', HEAD: 'pull', POST: 'push', PATCH: 'push', PUT: 'push', DELETE: 'delete' };

/** Resolves a path below `/v2/` (without the prefix); throws 404/405 for what no route serves. */
export function route(method: string, path: string, query: URLSearchParams): Match {
  for (const { pattern, methods, action, mounts } of ROUTES) {
    const m = pattern.exec(path);
    if (!m) continue;
    const handler = methods[method];
    if (!handler) throw errors.unsupported(`method ${method} is not allowed on this endpoint`);
    const match: Match = { handler, name: m[1]!, param: m[2] ?? '', action: action ?? ACTION_OF_METHOD[method] ?? 'push' };
    if (mounts && method === 'POST' && query.get('mount') !== null) match.mountFrom = query.get('from');
    return match;
  }
  throw errors.endpointUnknown();
}
