/** The `serve` flags for the defences against slow and greedy clients (docs/limits.md). */
import { Option, type Command } from 'commander';
import { LIMIT_DEFAULTS, type LimitOptions } from '../http/limits.js';
import { parseDuration, parseSize } from './duration.js';

export interface LimitFlags {
  maxConnections: string;
  maxConnectionsPerClient: string;
  maxConcurrentRequests: string;
  rateLimit?: string;
  headerTimeout: string;
  idleTimeout: string;
  bodyTimeout: string;
  minTransferRate: string;
  transferWindow: string;
}

const seconds = (ms: number) => `${ms / 1000}s`;

export function withLimitFlags(command: Command): Command {
  const d = LIMIT_DEFAULTS;
  return command
    .addOption(new Option('--max-connections <n>', 'open connections in all; past it new ones are closed at once (0: unlimited)').env('PORTFOLIO_MAX_CONNECTIONS').default(String(d.maxConnections)))
    .addOption(
      new Option('--max-connections-per-client <n>', 'open connections per client IP; past it new ones are closed at once (0: unlimited)')
        .env('PORTFOLIO_MAX_CONNECTIONS_PER_CLIENT')
        .default(String(d.maxConnectionsPerClient)),
    )
    .addOption(
      new Option('--max-concurrent-requests <n>', 'requests in flight per client IP; more get 429 (0: unlimited)')
        .env('PORTFOLIO_MAX_CONCURRENT_REQUESTS')
        .default(String(d.maxConcurrentPerClient)),
    )
    .addOption(new Option('--rate-limit <n/s>', 'requests per second per client IP, e.g. 50/s (default: unlimited)').env('PORTFOLIO_RATE_LIMIT'))
    .addOption(new Option('--header-timeout <duration>', 'time allowed for a request’s headers').env('PORTFOLIO_HEADER_TIMEOUT').default(seconds(d.headerTimeoutMs)))
    .addOption(
      new Option('--idle-timeout <duration>', 'longest silence of a request body or a stalled download (0: none)').env('PORTFOLIO_IDLE_TIMEOUT').default(seconds(d.idleTimeoutMs)),
    )
    .addOption(
      new Option('--body-timeout <duration>', 'time allowed for a body read whole into memory: manifest, token request (0: none)')
        .env('PORTFOLIO_BODY_TIMEOUT')
        .default(seconds(d.bodyTimeoutMs)),
    )
    .addOption(
      new Option('--min-transfer-rate <size>', 'bytes per second a client must send or read while a transfer waits on it, e.g. 4K (0: none)')
        .env('PORTFOLIO_MIN_TRANSFER_RATE')
        .default(`${d.minTransferRate / 1024}K`),
    )
    .addOption(
      new Option('--transfer-window <duration>', 'the window over which --min-transfer-rate is measured').env('PORTFOLIO_TRANSFER_WINDOW').default(seconds(d.transferWindowMs)),
    );
}

export function limitsFrom(flags: LimitFlags): LimitOptions {
  const limits: LimitOptions = {
    maxConnections: count(flags.maxConnections, '--max-connections'),
    maxConnectionsPerClient: count(flags.maxConnectionsPerClient, '--max-connections-per-client'),
    maxConcurrentPerClient: count(flags.maxConcurrentRequests, '--max-concurrent-requests'),
    ratePerSecond: flags.rateLimit === undefined ? undefined : parseRate(flags.rateLimit),
    headerTimeoutMs: parseDuration(flags.headerTimeout),
    idleTimeoutMs: parseDuration(flags.idleTimeout),
    bodyTimeoutMs: parseDuration(flags.bodyTimeout),
    minTransferRate: parseSize(flags.minTransferRate.replace(/\/s$/, '')),
    transferWindowMs: parseDuration(flags.transferWindow),
  };
  if (limits.headerTimeoutMs! <= 0) throw new Error('--header-timeout must be positive');
  if (limits.minTransferRate! > 0 && limits.transferWindowMs! <= 0) throw new Error('--transfer-window must be positive');
  return limits;
}

function count(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`${flag} must be a non-negative integer`);
  return Number(value);
}

function parseRate(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(?:\/s)?$/.exec(value.trim());
  if (!m || Number(m[1]) <= 0) throw new Error(`invalid --rate-limit ${JSON.stringify(value)} (example: 50/s)`);
  return Number(m[1]);
}
