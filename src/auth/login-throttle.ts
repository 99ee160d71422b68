/**
 * Throttles failed logins, per client (its address) and per user name, with token buckets: each
 * attempt takes a token before the password is checked (so parallel guesses cannot slip past),
 * a success gives it back, and tokens come back at a steady rate. A client out of tokens is
 * refused before any bcrypt work; so is a user name out of tokens.
 *
 * A user name's bucket holds three times a client's and refills three times as fast, so one
 * client — or two — flooding a name cannot lock its owner out; only guesses spread over many
 * addresses can, and then the owner waits at most a refill period.
 */
import { createHash } from 'node:crypto';
import { LoginThrottled } from './errors.js';

export interface LoginThrottleOptions {
  /** Failed logins a client may make in a burst (default 20)… */
  failures?: number;
  /** …and the time in which that many come back (default 60 s). */
  periodMs?: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

/** Buckets kept at most; full ones are dropped first (they are the same as no bucket). */
const MAX_BUCKETS = 50_000;

class Buckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly capacity: number,
    /** Tokens per millisecond. */
    private readonly rate: number,
  ) {}

  /** Takes a token, or returns the seconds until one is back. */
  take(key: string, now: number): number {
    const bucket = this.current(key, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.rate / 1000));
  }

  give(key: string, now: number): void {
    const bucket = this.current(key, now);
    bucket.tokens = Math.min(this.capacity, bucket.tokens + 1);
  }

  private current(key: string, now: number): Bucket {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= MAX_BUCKETS) this.prune(now);
      bucket = { tokens: this.capacity, updated: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(this.capacity, bucket.tokens + (now - bucket.updated) * this.rate);
    bucket.updated = now;
    return bucket;
  }

  private prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.updated) * this.rate >= this.capacity) this.buckets.delete(key);
    }
    // Still full: forget the oldest half (Map iterates in insertion order).
    let drop = this.buckets.size >= MAX_BUCKETS ? this.buckets.size / 2 : 0;
    for (const key of this.buckets.keys()) {
      if (drop-- <= 0) break;
      this.buckets.delete(key);
    }
  }
}

export class LoginThrottle {
  private readonly clients: Buckets;
  private readonly users: Buckets;

  constructor(options: LoginThrottleOptions = {}) {
    const failures = options.failures ?? 20;
    const periodMs = options.periodMs ?? 60_000;
    if (!(failures >= 1) || !(periodMs > 0)) throw new Error('a login throttle needs at least one failure per positive period');
    this.clients = new Buckets(failures, failures / periodMs);
    this.users = new Buckets(3 * failures, (3 * failures) / periodMs);
  }

  /**
   * Checks a login: `check` runs only when neither the client nor the user name is throttled,
   * and the attempt counts as a failure unless it resolves true. Throws LoginThrottled.
   */
  async attempt(client: string, user: string, check: () => Promise<boolean>): Promise<boolean> {
    const now = Date.now();
    const clientWait = this.clients.take(client, now);
    if (clientWait > 0) throw new LoginThrottled('too many failed logins from this client', clientWait);
    // User names come from the request: a bounded key whatever their length.
    user = createHash('sha256').update(user).digest('base64url').slice(0, 22);
    const userWait = this.users.take(user, now);
    if (userWait > 0) {
      this.clients.give(client, now);
      throw new LoginThrottled('too many failed logins for this user', userWait);
    }
    // A success, or a check that could not run (a full queue), is no failure: the tokens go back.
    let refund = true;
    try {
      const ok = await check();
      refund = ok;
      return ok;
    } finally {
      if (refund) {
        this.clients.give(client, Date.now());
        this.users.give(user, Date.now());
      }
    }
  }
}
