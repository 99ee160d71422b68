/**
 * Defences against slow and greedy clients:
 *
 * - header timeout: a request whose headers have not all arrived in time is cut off (408);
 * - idle timeout: a request body that stops arriving, or a response the client stops reading,
 *   for that long closes the connection (a server that is still working is never cut off);
 * - per-client limits, by remote IP: at most N requests in flight and a token-bucket rate of
 *   N requests per second; excess requests get 429 TOOMANYREQUESTS with `Retry-After`.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ErrorCode } from '../../core/errors.js';
import { ErrorWithHeaders } from './authorizer.js';

export interface LimitOptions {
  /** Time allowed for a request's headers (default 30 s). */
  headerTimeoutMs?: number;
  /** Longest silence of a request body or a stalled response (default 60 s; 0 disables). */
  idleTimeoutMs?: number;
  /** Requests in flight per client IP (default: unlimited). */
  maxConcurrentPerClient?: number;
  /** Requests per second per client IP, with bursts of as many (default: unlimited). */
  ratePerSecond?: number;
}

export const DEFAULT_HEADER_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** The `connectionsCheckingInterval` that lets node:http enforce the header timeout promptly. */
export function checkingIntervalFor(options: LimitOptions): number {
  const headers = options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  return Math.max(100, Math.min(1000, Math.floor(headers / 4)));
}

/** Applies the header and idle timeouts to a server. */
export function applyTimeouts(server: Server, options: LimitOptions): void {
  server.headersTimeout = options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const idle = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  if (idle <= 0) return;
  server.timeout = idle;
  // node:http destroys a timed-out socket unless someone listens; decide here.
  server.on('timeout', (socket: Socket) => {
    const current = inFlight.get(socket);
    // Between requests: a partial header is the header timeout's (408), an idle keep-alive
    // connection the keep-alive timeout's.
    if (!current) return;
    const { req, res } = current;
    const receiving = !req.complete;
    const sendingStalled = res.headersSent && !res.writableFinished;
    // Otherwise the server is still working on a complete request: let it finish.
    if (receiving || sendingStalled) socket.destroy();
  });
}

const inFlight = new WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>();

/** Records the request a socket is serving (for the idle timeout). */
export function trackRequest(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket;
  inFlight.set(socket, { req, res });
  res.once('close', () => {
    if (inFlight.get(socket)?.res === res) inFlight.delete(socket);
  });
}

interface Bucket {
  tokens: number;
  updated: number;
  active: number;
}

export class ClientLimiter {
  private readonly clients = new Map<string, Bucket>();
  private lastSweep = Date.now();

  constructor(private readonly options: LimitOptions) {}

  get enabled(): boolean {
    return this.options.maxConcurrentPerClient !== undefined || this.options.ratePerSecond !== undefined;
  }

  /** Admits a request or throws 429; an admitted request is released when its response closes. */
  admit(req: IncomingMessage, res: ServerResponse): void {
    const { maxConcurrentPerClient: maxActive, ratePerSecond: rate } = this.options;
    if (maxActive === undefined && rate === undefined) return;
    const now = Date.now();
    const key = req.socket.remoteAddress ?? 'unknown';
    let bucket = this.clients.get(key);
    if (!bucket) {
      bucket = { tokens: rate ?? 0, updated: now, active: 0 };
      this.clients.set(key, bucket);
    }
    if (rate !== undefined) {
      bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.updated) / 1000) * rate);
      bucket.updated = now;
      if (bucket.tokens < 1) {
        const retry = Math.max(1, Math.ceil((1 - bucket.tokens) / rate));
        throw tooMany(`more than ${rate} requests per second`, retry);
      }
    }
    if (maxActive !== undefined && bucket.active >= maxActive) throw tooMany(`more than ${maxActive} requests in flight`, 1);
    if (rate !== undefined) bucket.tokens -= 1;
    bucket.active++;
    const b = bucket;
    res.once('close', () => b.active--);
    if (now - this.lastSweep > 10_000) this.sweep(now);
  }

  /** Forgets clients with nothing in flight and a full bucket. */
  private sweep(now: number): void {
    this.lastSweep = now;
    const rate = this.options.ratePerSecond;
    for (const [key, b] of this.clients) {
      const full = rate === undefined || b.tokens + ((now - b.updated) / 1000) * rate >= rate;
      if (b.active === 0 && full) this.clients.delete(key);
    }
  }
}

function tooMany(message: string, retryAfterSeconds: number): ErrorWithHeaders {
  return new ErrorWithHeaders(429, ErrorCode.TOOMANYREQUESTS, `too many requests: ${message}`, null, { 'Retry-After': String(retryAfterSeconds) });
}
