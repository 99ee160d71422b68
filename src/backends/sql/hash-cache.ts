/**
 * Running digests of uploads this process wrote, by session and size. Node's SHA-256 is ~9x
 * faster than any hasher whose state can be saved, so the hash of the bytes so far stays in
 * memory; an entry is valid only for the exact size it hashed (a session's bytes below its
 * recorded size never change), and any miss is paid by re-reading the stored bytes.
 *
 * Sessions often end in another process (a replica, the expiry sweep), which cannot tell this
 * one: entries therefore expire after the upload TTL and the cache holds a bounded number, the
 * least recently used going first.
 */
import type { Hash } from 'node:crypto';

const MAX_ENTRIES = 4096;

interface Entry {
  size: number;
  hash: Hash;
  expires: number;
}

export class HashCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly ttlMs: number) {}

  /** Removes and returns the hash of the session's first `size` bytes, if this process has it. */
  take(id: string, size: number): Hash | null {
    const entry = this.live(id);
    this.entries.delete(id);
    return entry && entry.size === size ? entry.hash : null;
  }

  /** A copy of the hash of the session's first `size` bytes, leaving the entry in place. */
  peek(id: string, size: number): Hash | null {
    const entry = this.live(id);
    return entry && entry.size === size ? entry.hash.copy() : null;
  }

  put(id: string, size: number, hash: Hash): void {
    this.entries.delete(id);
    this.entries.set(id, { size, hash, expires: Date.now() + this.ttlMs });
    while (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
  }

  forget(id: string): void {
    this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  private live(id: string): Entry | undefined {
    const entry = this.entries.get(id);
    if (entry && entry.expires <= Date.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return entry;
  }
}
