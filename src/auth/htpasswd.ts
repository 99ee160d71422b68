/**
 * Users from an Apache htpasswd file (format: htpasswd-file.ts). The file is re-read when it
 * changes, so users added while the registry runs can log in at once.
 *
 * A bcrypt verification costs ~70 ms of CPU at cost 10, so a success is remembered for a short
 * time under a salted hash of user and password (never the password itself): a push of many
 * blobs pays it once. Verifications run off the event loop (libuv pool) and at most
 * `maxConcurrent` at a time; waiting ones are served round-robin per client, and a client
 * holds at most `maxQueuedPerClient` places, so one client's flood cannot fill the queue for
 * everyone.
 *
 * An unknown user is checked against a dummy hash of the cost most of the file's entries use:
 * a wrong password takes as long for a name that exists as for one that does not.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { hash as bcryptHash, verify as bcryptVerify } from '@node-rs/bcrypt';
import { LoginThrottled } from './errors.js';
import { bcryptCost, parseHtpasswd } from './htpasswd-file.js';

export interface HtpasswdOptions {
  /** How long a successful verification is remembered (default 60 s). */
  cacheTtlMs?: number;
  /** Concurrent bcrypt verifications (default 2). */
  maxConcurrent?: number;
  /** Verifications that may wait for a slot before callers are throttled (default 256). */
  maxQueued?: number;
  /** Of those, how many one client may hold (default 16). */
  maxQueuedPerClient?: number;
  /** How often the file's modification time is checked (default 1 s). */
  recheckMs?: number;
  /** For tests: replaces the bcrypt verification. */
  verifyHash?: (password: string, hash: string) => Promise<boolean>;
  /** Called with a line number and reason for each entry that is ignored. */
  warn?: (message: string) => void;
}

/** The dummy's cost when the file has no entries to copy (bcrypt's usual default). */
const DEFAULT_COST = 10;
/** Entries above this cost are unusable anyway; the dummy stays affordable. */
const MAX_DUMMY_COST = 16;

export class Htpasswd {
  private users = new Map<string, string>();
  private dummy: Promise<string> = makeDummy(DEFAULT_COST);
  private dummyCost = DEFAULT_COST;
  private mtimeMs = -1;
  private size = -1;
  private checkedAt = 0;
  private reloading: Promise<void> | null = null;
  private readonly cache = new Map<string, { user: string; hash: string; expires: number }>();
  private readonly salt = randomBytes(16);
  private running = 0;
  /** Waiting verifications per client, in round-robin order (Map keeps insertion order). */
  private readonly waiting = new Map<string, (() => void)[]>();
  private waitingCount = 0;
  private readonly cacheTtlMs: number;
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private readonly maxQueuedPerClient: number;
  private readonly recheckMs: number;
  private readonly verifyHash: (password: string, hash: string) => Promise<boolean>;
  /** Number of bcrypt verifications run (the cache's effect is visible in tests). */
  verifications = 0;

  private constructor(
    readonly path: string,
    private readonly options: HtpasswdOptions,
  ) {
    this.cacheTtlMs = options.cacheTtlMs ?? 60_000;
    this.maxConcurrent = options.maxConcurrent ?? 2;
    this.maxQueued = options.maxQueued ?? 256;
    this.maxQueuedPerClient = options.maxQueuedPerClient ?? 16;
    this.recheckMs = options.recheckMs ?? 1000;
    this.verifyHash = options.verifyHash ?? ((password, hash) => bcryptVerify(password, hash));
  }

  /** Opens the file; it must exist (a typo in a path must not silently lock everybody out). */
  static async open(path: string, options: HtpasswdOptions = {}): Promise<Htpasswd> {
    const h = new Htpasswd(path, options);
    await h.reload(true);
    return h;
  }

  get userCount(): number {
    return this.users.size;
  }

  /** The stored hash of `user`, re-reading the file when it has changed. */
  async entry(user: string): Promise<string | undefined> {
    await this.refresh();
    return this.users.get(user);
  }

  /**
   * True when `password` is `user`'s. `client` (the caller's address) shares the waiting line
   * fairly; throws LoginThrottled when the client's share or the whole line is full.
   */
  async verify(user: string, password: string, client = ''): Promise<boolean> {
    await this.refresh();
    const hash = this.users.get(user);
    const key = createHash('sha256').update(this.salt).update(user).update('\0').update(password).digest('base64');
    const now = Date.now();
    const hit = this.cache.get(key);
    // A hit counts only while the entry it was verified against is still the user's.
    if (hit && hit.expires > now && hit.user === user && hash !== undefined && safeEqual(hit.hash, hash)) return true;
    if (hit) this.cache.delete(key);
    const against = hash ?? (await this.dummy);
    const ok = await this.limited(client, () => this.verifyHash(password, against));
    if (!ok || hash === undefined) return false;
    if (this.cache.size >= 10_000) this.prune(now);
    this.cache.set(key, { user, hash, expires: now + this.cacheTtlMs });
    return true;
  }

  private prune(now: number): void {
    for (const [k, v] of this.cache) if (v.expires <= now) this.cache.delete(k);
    // Still full of live entries: drop the oldest half (Map iterates in insertion order).
    if (this.cache.size >= 10_000) {
      let drop = this.cache.size / 2;
      for (const k of this.cache.keys()) {
        if (drop-- <= 0) break;
        this.cache.delete(k);
      }
    }
  }

  private async limited<T>(client: string, work: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      const line = this.waiting.get(client) ?? [];
      if (this.waitingCount >= this.maxQueued || line.length >= this.maxQueuedPerClient) {
        throw new LoginThrottled('too many password verifications in progress', 1);
      }
      if (line.length === 0) this.waiting.set(client, line);
      this.waitingCount++;
      await new Promise<void>((resolve) => line.push(resolve));
    } else {
      this.running++;
    }
    try {
      this.verifications++;
      return await work();
    } finally {
      // The slot passes straight to the next client in turn.
      const next = this.nextWaiting();
      if (next) next();
      else this.running--;
    }
  }

  /** The first waiter of the client whose turn it is; that client moves to the end of the line. */
  private nextWaiting(): (() => void) | undefined {
    for (const [client, line] of this.waiting) {
      this.waiting.delete(client);
      const next = line.shift();
      if (line.length) this.waiting.set(client, line);
      if (next) {
        this.waitingCount--;
        return next;
      }
    }
    return undefined;
  }

  private async refresh(): Promise<void> {
    if (Date.now() - this.checkedAt < this.recheckMs) return;
    this.reloading ??= this.reload(false).finally(() => (this.reloading = null));
    await this.reloading;
  }

  private async reload(initial: boolean): Promise<void> {
    this.checkedAt = Date.now();
    let info;
    try {
      info = await stat(this.path);
    } catch (err) {
      if (initial) throw new Error(`htpasswd file ${this.path}: ${(err as Error).message}`);
      // The file is being replaced or was removed: nobody may log in until it is back.
      this.users = new Map();
      this.cache.clear();
      this.mtimeMs = -1;
      return;
    }
    if (info.mtimeMs === this.mtimeMs && info.size === this.size) return;
    const text = await readFile(this.path, 'utf8');
    this.users = parseHtpasswd(text, this.options.warn);
    const cost = usualCost(this.users);
    if (cost !== this.dummyCost) {
      this.dummyCost = cost;
      this.dummy = makeDummy(cost);
      await this.dummy;
    }
    this.mtimeMs = info.mtimeMs;
    this.size = info.size;
    this.cache.clear();
  }
}

/** The cost most entries use (the higher one on a tie), capped; the default for an empty file. */
function usualCost(users: Map<string, string>): number {
  const counts = new Map<number, number>();
  for (const hash of users.values()) {
    const cost = bcryptCost(hash);
    counts.set(cost, (counts.get(cost) ?? 0) + 1);
  }
  let best = DEFAULT_COST;
  let seen = 0;
  for (const [cost, n] of counts) {
    if (n > seen || (n === seen && cost > best)) [best, seen] = [cost, n];
  }
  return Math.min(best, MAX_DUMMY_COST);
}

/** A bcrypt hash of a random password that nobody knows. */
function makeDummy(cost: number): Promise<string> {
  return bcryptHash(randomBytes(18).toString('base64'), cost);
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
