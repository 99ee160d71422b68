/**
 * Portfolio's own admin routes, outside the distribution API:
 *   GET    /_portfolio/usage                  storage per repository and in total
 *   DELETE /_portfolio/repositories/<name>    delete a repository (collection reclaims its bytes)
 *   /_portfolio/policies…, /_portfolio/quotas   see policies.ts
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventOrigin } from '../../core/events.js';
import { errors } from '../../core/errors.js';
import { parseRepositoryName } from '../../core/names.js';
import type { HttpOptions } from '../context.js';
import { sendEmpty, sendJson } from '../respond.js';
import { handlePolicies } from './policies.js';

export const ADMIN_PREFIX = '/_portfolio/';

export async function handleAdmin(options: HttpOptions, req: IncomingMessage, res: ServerResponse, path: string, origin: EventOrigin): Promise<void> {
  const maintenance = options.maintenance;
  if (!maintenance) throw errors.endpointUnknown();
  const rest = path.slice(ADMIN_PREFIX.length);
  if (options.policies && (await handlePolicies(options.policies, req, res, rest))) return;
  if (rest === 'usage') {
    if (req.method !== 'GET') throw errors.unsupported(`method ${req.method} is not allowed`);
    const quotas = options.policies ? { quotas: await options.policies.quotaUsage() } : {};
    return sendJson(res, 200, { ...(await maintenance.usage()), ...quotas });
  }
  if (rest.startsWith('repositories/')) {
    if (req.method !== 'DELETE') throw errors.unsupported(`method ${req.method} is not allowed`);
    const name = parseRepositoryName(rest.slice('repositories/'.length));
    if (!(await maintenance.deleteRepository(name, origin))) throw errors.nameUnknown(name);
    return sendEmpty(res, 202);
  }
  throw errors.endpointUnknown();
}
