/**
 * Last-pulled times of cached manifests, kept in memory and written to the ledger in one batch
 * per interval (and on close): a pull costs a map entry, never a write.
 */
import type { CacheLedger, CachePull } from '../core/cache.js';
import type { Digest } from '../core/digest.js';

/** Past this many distinct entries a batch is written at once, to bound memory. */
const MAX_PENDING = 10_000;

export class PullLog {
  private pending = new Map<string, CachePull>();
  private readonly timer: NodeJS.Timeout;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly ledger: CacheLedger,
    intervalMs: number,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  record(repository: string, digest: Digest): void {
    this.pending.set(`${repository}@${digest}`, { repository, digest, at: Date.now() });
    if (this.pending.size >= MAX_PENDING) void this.flush();
  }

  /** Writes what was recorded so far (one batch at a time). */
  flush(): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending = new Map();
    if (batch.length === 0) return this.writing;
    this.writing = this.writing.then(() => this.ledger.recordPulls(batch)).catch(this.onError);
    return this.writing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
