/**
 * Users from an Apache htpasswd file with bcrypt entries (`$2y$`, `$2a$`, `$2b$`; what
 * `htpasswd -B` and `portfolio user add` write). The file is re-read when it changes, so users
 * added while the registry runs can log in at once.
 *
 * A bcrypt verification costs ~70 ms of CPU at cost 10, so a success is remembered for a short
 * time under a salted hash of user and password (never the password itself): a push of many
 * blobs pays it once. Verifications run off the event loop (libuv pool) and at most
 * `maxConcurrent` at a time, so a flood of wrong passwords cannot starve file I/O of the pool.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { verify as bcryptVerify } from '@node-rs/bcrypt';
import { ErrorCode } from '../../core/errors.js';
import { ErrorWithHeaders } from './authorizer.js';

export interface HtpasswdOptions {
  /** How long a successful verification is remembered (default 60 s). */
  cacheTtlMs?: number;
  /** Concurrent bcrypt verifications (default 2). */
  maxConcurrent?: number;
  /** Verifications that may wait for a slot before callers get 429 (default 256). */
  maxQueued?: number;
  /** How often the file's modification time is checked (default 1 s). */
  recheckMs?: number;
  /** For tests: replaces the bcrypt verification. */
  verifyHash?: (password: string, hash: string) => Promise<boolean>;
  /** Called with a line number and reason for each entry that is ignored. */
  warn?: (message: string) => void;
}

/** A bcrypt hash of a random password at cost 10: unknown users cost as much as known ones. */
const DUMMY_HASH = '$2y$10$3fvcZQWwHYZ9GVjSf5n5P.jbdIeRgWvfVfZtAd717pbzljrhUHlLu';

export class Htpasswd {
  private users = new Map<string, string>();
  private mtimeMs = -1;
  private size = -1;
  private checkedAt = 0;
  private reloading: Promise<void> | null = null;
  private readonly cache = new Map<string, { user: string; hash: string; expires: number }>();
  private readonly salt = randomBytes(16);
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly cacheTtlMs: number;
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
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

  /** True when `password` is `user`'s. Throws 429 when too many verifications are waiting. */
  async verify(user: string, password: string): Promise<boolean> {
    await this.refresh();
    const hash = this.users.get(user);
    const key = createHash('sha256').update(this.salt).update(user).update('\0').update(password).digest('base64');
    const now = Date.now();
    const hit = this.cache.get(key);
    // A hit counts only while the entry it was verified against is still the user's.
    if (hit && hit.expires > now && hit.user === user && hash !== undefined && safeEqual(hit.hash, hash)) return true;
    if (hit) this.cache.delete(key);
    const ok = await this.limited(() => this.verifyHash(password, hash ?? DUMMY_HASH));
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

  private async limited<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxQueued) {
        throw new ErrorWithHeaders(429, ErrorCode.TOOMANYREQUESTS, 'too many password verifications in progress', null, { 'Retry-After': '1' });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      this.verifications++;
      return await work();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter.
      if (next) next();
      else this.running--;
    }
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
    this.mtimeMs = info.mtimeMs;
    this.size = info.size;
    this.cache.clear();
  }
}

/** Parses htpasswd text: `user:hash` lines; blank lines and `#` comments are skipped. */
export function parseHtpasswd(text: string, warn?: (message: string) => void): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1).trim();
    if (colon <= 0) return warn?.(`line ${i + 1}: not user:hash`);
    if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) return warn?.(`line ${i + 1}: user ${user} has no bcrypt hash (create it with htpasswd -B or portfolio user add)`);
    users.set(user, hash);
  });
  return users;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The user and password of a `Basic` Authorization value, or null when malformed. */
export function decodeBasic(value: string): { user: string; password: string } | null {
  if (value.length > 4096) return null;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
