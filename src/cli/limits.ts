/** The `serve` defences against slow and greedy clients (docs/limits.md), from the configuration. */
import type { LimitOptions } from '../http/limits.js';
import type { Config } from './settings.js';

export function limitsFrom({ limits }: Config): LimitOptions {
  if (limits.min_transfer_rate > 0 && limits.transfer_window <= 0) throw new Error('--transfer-window must be positive');
  return {
    maxConnections: limits.max_connections,
    maxConnectionsPerClient: limits.max_connections_per_client,
    maxConcurrentPerClient: limits.max_concurrent_requests,
    ratePerSecond: limits.rate_limit,
    headerTimeoutMs: limits.header_timeout,
    idleTimeoutMs: limits.idle_timeout,
    bodyTimeoutMs: limits.body_timeout,
    minTransferRate: limits.min_transfer_rate,
    transferWindowMs: limits.transfer_window,
  };
}
