/**
 * Probes for load balancers and orchestrators, unauthenticated: `/healthz` (the process
 * answers) and `/readyz` (the database, the object store and the schema answer, and the
 * process is not draining). A failed readiness is 503 with a JSON body naming what failed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors } from '../core/errors.js';
import type { ReadinessCheck } from '../core/observer.js';
import { sendJson } from './respond.js';

export const HEALTH_PATHS = new Set(['/healthz', '/readyz']);

export class Health {
  /** Set once shutdown starts: readiness fails so traffic moves away while in-flight requests finish. */
  draining = false;

  constructor(private readonly readiness: () => Promise<ReadinessCheck[]>) {}

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw errors.unsupported(`method ${req.method} is not allowed`);
    const headers = { 'Cache-Control': 'no-store' };
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' }, headers);
    if (this.draining) return sendJson(res, 503, { status: 'unavailable', failed: ['draining'], checks: { draining: 'shutting down' } }, headers);
    const checks = await this.readiness();
    const failed = checks.filter((c) => !c.ok).map((c) => c.name);
    const detail = Object.fromEntries(checks.map((c) => [c.name, c.ok ? 'ok' : (c.error ?? 'failed')]));
    sendJson(res, failed.length ? 503 : 200, { status: failed.length ? 'unavailable' : 'ready', failed, checks: detail }, headers);
  }
}
