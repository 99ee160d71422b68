/**
 * Policy routes (docs/policies.md), under the admin prefix and its admin check:
 *   GET    /_portfolio/policies          every rule, with its id and source (config or api)
 *   PUT    /_portfolio/policies          create or replace a rule: {kind: quota, scope, limit} or {kind: immutable, repositories, tags}
 *   DELETE /_portfolio/policies/<id>     remove a rule (the id URL-encoded, as listed)
 *   GET    /_portfolio/quotas            used and limit per quota scope
 *   GET    /_portfolio/retention         retention's plan: every deletion and the rule that decided
 *   POST   /_portfolio/retention         run retention now
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError, ErrorCode, errors } from '../../core/errors.js';
import { parsePolicyRule, type PolicyAdmin } from '../../core/policies.js';
import { readBody } from '../request.js';
import { sendEmpty, sendJson } from '../respond.js';

const RULE_BODY_LIMIT = 64 * 1024;

/** Answers `rest` (the path after the admin prefix) when it is a policy route; false otherwise. */
export async function handlePolicies(policies: PolicyAdmin, req: IncomingMessage, res: ServerResponse, rest: string): Promise<boolean> {
  if (rest === 'quotas') {
    if (req.method !== 'GET') throw errors.unsupported(`method ${req.method} is not allowed`);
    sendJson(res, 200, { quotas: await policies.quotaUsage() });
    return true;
  }
  if (rest === 'retention') {
    if (req.method !== 'GET' && req.method !== 'POST') throw errors.unsupported(`method ${req.method} is not allowed`);
    sendJson(res, 200, await policies.retention({ dryRun: req.method === 'GET' }));
    return true;
  }
  if (rest === 'policies') {
    if (req.method === 'GET') {
      sendJson(res, 200, { policies: await policies.listPolicies() });
      return true;
    }
    if (req.method !== 'PUT' && req.method !== 'POST') throw errors.unsupported(`method ${req.method} is not allowed`);
    const body = await readBody(req, RULE_BODY_LIMIT, 'policy');
    let rule;
    try {
      rule = parsePolicyRule(JSON.parse(body.toString('utf8')) as unknown, 'policy');
    } catch (err) {
      throw new RegistryError(400, ErrorCode.UNSUPPORTED, (err as Error).message);
    }
    sendJson(res, 200, await policies.putPolicy(rule, 'api'));
    return true;
  }
  if (rest.startsWith('policies/')) {
    if (req.method !== 'DELETE') throw errors.unsupported(`method ${req.method} is not allowed`);
    let id: string;
    try {
      id = decodeURIComponent(rest.slice('policies/'.length));
    } catch {
      throw new RegistryError(400, ErrorCode.UNSUPPORTED, 'malformed policy id');
    }
    if (!(await policies.deletePolicy(id))) throw new RegistryError(404, ErrorCode.NAME_UNKNOWN, `no policy ${id}`, { id });
    sendEmpty(res, 204);
    return true;
  }
  return false;
}
