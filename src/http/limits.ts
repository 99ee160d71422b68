/**
 * Defences against slow and greedy clients (docs/limits.md):
 *
 * - connections: at most N open at once, and at most M per client IP; past either, a new
 *   connection is closed at once, before anything is read from it;
 * - header timeout: a request whose headers have not all arrived in time is cut off (408);
 * - idle timeout: a request body that stops arriving, or a response the client stops reading,
 *   for that long closes the connection (a server that is still working is never cut off);
 * - transfer rate: while it is the client's turn to move bytes (send its body, read the
 *   response), it must move at least `minTransferRate` bytes per `transferWindowMs`, or the
 *   connection is closed; bodies below one window's worth must so arrive within one window;
 * - body timeout: a body read whole into memory (manifest, token request) must arrive within
 *   `bodyTimeoutMs` of the request's start;
 * - refused bodies (401, 403, 429): at most REFUSED_DRAIN_BYTES are read, within
 *   REFUSED_DRAIN_MS, then the connection is closed;
 * - per-client limits, by remote IP: at most N requests in flight and a token-bucket rate of
 *   N requests per second; excess requests get 429 TOOMANYREQUESTS with `Retry-After`.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCode } from '../core/errors.js';
import { ErrorWithHeaders } from './auth/authorizer.js';

export interface LimitOptions {
  /** Time allowed for a request's headers. */
  headerTimeoutMs?: number;
  /** Longest silence of a request body or a stalled response (0 disables). */
  idleTimeoutMs?: number;
  /** Time allowed for a body read whole into memory, from the request's start (0 disables). */
  bodyTimeoutMs?: number;
  /** Bytes per second a client must move while the transfer waits on it (0 disables). */
  minTransferRate?: number;
  /** The window over which `minTransferRate` is measured. */
  transferWindowMs?: number;
  /** Open connections in all (0: unlimited). */
  maxConnections?: number;
  /** Open connections per client IP (0: unlimited). */
  maxConnectionsPerClient?: number;
  /** Requests in flight per client IP (0: unlimited). */
  maxConcurrentPerClient?: number;
  /** Requests per second per client IP, with bursts of as many (undefined: unlimited). */
  ratePerSecond?: number;
}

/** The defaults, chosen in docs/limits.md ("Why these defaults"). */
export const LIMIT_DEFAULTS = {
  headerTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  bodyTimeoutMs: 30_000,
  minTransferRate: 4096,
  transferWindowMs: 30_000,
  maxConnections: 1024,
  maxConnectionsPerClient: 128,
  maxConcurrentPerClient: 64,
} as const satisfies Required<Omit<LimitOptions, 'ratePerSecond'>>;

type Resolved = Required<Omit<LimitOptions, 'ratePerSecond'>> & { ratePerSecond?: number };

/** Unread request bodies up to this size are drained after an error answer; larger ones close. */
const DRAIN_BYTES = 64 * 1024 * 1024;
/** Callers refused for who they are (401, 403) or how often they come (429) get less patience. */
const REFUSED_DRAIN_BYTES = 64 * 1024;
const REFUSED_DRAIN_MS = 5_000;
/** Dropped connections are logged at most this often (a flood must not flood the log). */
const DROP_LOG_INTERVAL_MS = 10_000;

/** A client that did not send its body in time; its connection is already closed. */
export class ClientTooSlow extends Error {
  readonly code = 'ETOOSLOW';
}

/** When a body read whole into memory must have arrived, per request (set by Limits.track). */
const bodyDeadlines = new WeakMap<IncomingMessage, number>();

/** Milliseconds left to read `req`'s in-memory body, or undefined for no deadline. */
export function bodyTimeLeft(req: IncomingMessage): number | undefined {
  const deadline = bodyDeadlines.get(req);
  return deadline === undefined ? undefined : deadline - Date.now();
}

interface Transfer {
  req: IncomingMessage;
  res: ServerResponse;
  socket: Socket;
  responseClosed: boolean;
  windowStart: number;
  readAt: number;
  writtenAt: number;
}

/** All the limits of one server: attach() it once, track() and admit() every request. */
export class Limits {
  readonly options: Resolved;
  private readonly clients: ClientLimiter;
  private readonly transfers = new Set<Transfer>();
  private readonly inFlight = new WeakMap<Socket, Transfer>();
  private readonly connectionsPerClient = new Map<string, number>();
  private dropped = 0;
  private lastDropLog = 0;

  constructor(
    options: LimitOptions,
    private readonly logger: Logger,
  ) {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as LimitOptions;
    this.options = { ...LIMIT_DEFAULTS, ...given };
    this.clients = new ClientLimiter(this.options);
  }

  /** The `connectionsCheckingInterval` that lets node:http enforce the header timeout promptly. */
  get checkingInterval(): number {
    return Math.max(100, Math.min(1000, Math.floor(this.options.headerTimeoutMs / 4)));
  }

  /** Applies the timeouts and connection caps to a server, and watches its transfers. */
  attach(server: Server): void {
    const o = this.options;
    // No total request deadline: a long upload that keeps moving is legitimate; the header
    // timeout, the idle timeout and the transfer rate bound what a client can hold instead.
    server.requestTimeout = 0;
    server.headersTimeout = o.headerTimeoutMs;
    server.keepAliveTimeout = 65_000;
    // node:net closes connections past the cap before they are read (and emits 'drop').
    if (o.maxConnections > 0) server.maxConnections = o.maxConnections;
    server.on('drop', () => this.noteDrop('max-connections'));
    if (o.maxConnectionsPerClient > 0) server.on('connection', (socket: Socket) => this.admitConnection(socket));
    if (o.idleTimeoutMs > 0) {
      server.timeout = o.idleTimeoutMs;
      // node:http destroys a timed-out socket unless someone listens; decide here.
      server.on('timeout', (socket: Socket) => this.onIdle(socket));
    }
    if (o.minTransferRate > 0 && o.transferWindowMs > 0) {
      const timer = setInterval(() => this.checkTransfers(), Math.max(50, Math.min(1000, Math.floor(o.transferWindowMs / 4))));
      timer.unref();
      server.once('close', () => clearInterval(timer));
    }
  }

  /**
   * Records a request (for the idle timeout, the transfer rate and the body timeout). Returns
   * what to call when its response closes (the caller's one 'close' listener calls it).
   */
  track(req: IncomingMessage, res: ServerResponse): () => void {
    const socket = req.socket;
    const now = Date.now();
    const transfer: Transfer = { req, res, socket, responseClosed: false, windowStart: now, readAt: socket.bytesRead, writtenAt: socket.bytesWritten };
    this.inFlight.set(socket, transfer);
    if (this.options.bodyTimeoutMs > 0) bodyDeadlines.set(req, now + this.options.bodyTimeoutMs);
    const watched = this.options.minTransferRate > 0 && this.options.transferWindowMs > 0;
    if (watched) this.transfers.add(transfer);
    return () => {
      transfer.responseClosed = true;
      if (this.inFlight.get(socket) === transfer) this.inFlight.delete(socket);
      if (!watched) return;
      // A body still arriving after the answer (being drained) is watched until it ends.
      if (req.complete || socket.destroyed) return void this.transfers.delete(transfer);
      const done = () => {
        this.transfers.delete(transfer);
        req.off('end', done);
        socket.off('close', done);
      };
      req.once('end', done);
      socket.once('close', done);
    };
  }

  /**
   * Admits a request or throws 429. Returns what releases an admitted request, to be called when
   * its response closes; undefined when nothing needs releasing.
   */
  admit(req: IncomingMessage): (() => void) | undefined {
    return this.clients.admit(req);
  }

  /**
   * After an error answer to a request whose body has not all arrived: read and discard the
   * rest, so the client can finish sending and read the answer (closing on a client mid-send
   * makes it see a reset, not the error), but only a bounded amount; beyond that the
   * connection closes after the answer.
   */
  drainAfterError(req: IncomingMessage, res: ServerResponse, status: number): void {
    const refused = status === 401 || status === 403 || status === 429;
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (!(declared <= (refused ? REFUSED_DRAIN_BYTES : DRAIN_BYTES))) {
      res.setHeader('Connection', 'close');
      return;
    }
    req.resume();
    if (!refused) return; // the transfer rate still applies while it drains
    const socket = req.socket;
    const timer = setTimeout(() => {
      if (!req.complete) socket.destroy();
    }, Math.min(REFUSED_DRAIN_MS, this.options.bodyTimeoutMs || REFUSED_DRAIN_MS));
    timer.unref();
    req.once('end', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
  }

  private onIdle(socket: Socket): void {
    const current = this.inFlight.get(socket);
    // Between requests: a partial header is the header timeout's (408), an idle keep-alive
    // connection the keep-alive timeout's.
    if (!current) return;
    const { req, res } = current;
    const receiving = !req.complete;
    const sendingStalled = res.headersSent && !res.writableFinished;
    // Otherwise the server is still working on a complete request: let it finish.
    if (receiving || sendingStalled) socket.destroy();
  }

  /**
   * Every window, each transfer that waits on its client must have moved the minimum. The
   * server's own pauses do not count: a body the handler is not reading (bytes buffered on our
   * side), a response the server is still producing (nothing queued for the client).
   */
  private checkTransfers(): void {
    const now = Date.now();
    const { minTransferRate, transferWindowMs } = this.options;
    for (const t of this.transfers) {
      const { req, res, socket } = t;
      const receiving = !req.complete;
      const sending = res.headersSent && !res.writableFinished;
      if (socket.destroyed || (t.responseClosed && !receiving)) {
        this.transfers.delete(t);
        continue;
      }
      if (now - t.windowStart < transferWindowMs) continue;
      const moved = socket.bytesRead - t.readAt + (socket.bytesWritten - t.writtenAt);
      const waitsOnClient = (receiving && req.readableLength === 0) || (sending && (res.writableLength > 0 || socket.writableLength > 0));
      if (waitsOnClient && moved < (minTransferRate * transferWindowMs) / 1000) {
        this.logger.info({ method: req.method, path: req.url, remote: socket.remoteAddress, moved, windowMs: transferWindowMs }, 'client too slow: connection closed');
        socket.destroy();
        this.transfers.delete(t);
        continue;
      }
      t.windowStart = now;
      t.readAt = socket.bytesRead;
      t.writtenAt = socket.bytesWritten;
    }
  }

  private admitConnection(socket: Socket): void {
    const key = socket.remoteAddress ?? 'unknown';
    const open = this.connectionsPerClient.get(key) ?? 0;
    if (open >= this.options.maxConnectionsPerClient) {
      socket.destroy();
      this.noteDrop('max-connections-per-client');
      return;
    }
    this.connectionsPerClient.set(key, open + 1);
    socket.once('close', () => {
      const left = (this.connectionsPerClient.get(key) ?? 1) - 1;
      if (left > 0) this.connectionsPerClient.set(key, left);
      else this.connectionsPerClient.delete(key);
    });
  }

  private noteDrop(limit: string): void {
    this.dropped++;
    const now = Date.now();
    if (now - this.lastDropLog < DROP_LOG_INTERVAL_MS) return;
    this.logger.warn({ limit, dropped: this.dropped }, 'connections refused: limit reached');
    this.lastDropLog = now;
    this.dropped = 0;
  }
}

interface Bucket {
  tokens: number;
  updated: number;
  active: number;
}

class ClientLimiter {
  private readonly clients = new Map<string, Bucket>();
  private lastSweep = Date.now();
  private readonly maxActive: number | undefined;
  private readonly rate: number | undefined;

  constructor(options: Resolved) {
    this.maxActive = options.maxConcurrentPerClient > 0 ? options.maxConcurrentPerClient : undefined;
    this.rate = options.ratePerSecond;
  }

  admit(req: IncomingMessage): (() => void) | undefined {
    const { maxActive, rate } = this;
    if (maxActive === undefined && rate === undefined) return undefined;
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
    if (now - this.lastSweep > 10_000) this.sweep(now);
    const b = bucket;
    return () => {
      b.active--;
    };
  }

  /** Forgets clients with nothing in flight and a full bucket. */
  private sweep(now: number): void {
    this.lastSweep = now;
    const rate = this.rate;
    for (const [key, b] of this.clients) {
      const full = rate === undefined || b.tokens + ((now - b.updated) / 1000) * rate >= rate;
      if (b.active === 0 && full) this.clients.delete(key);
    }
  }
}

function tooMany(message: string, retryAfterSeconds: number): ErrorWithHeaders {
  return new ErrorWithHeaders(429, ErrorCode.TOOMANYREQUESTS, `too many requests: ${message}`, null, { 'Retry-After': String(retryAfterSeconds) });
}
