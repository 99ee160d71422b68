/**
 * Last-pulled times of manifests, for retention's keepPulledWithin. A pull costs a map entry;
 * the entries are written in one batch per interval (an UPDATE per slice of ids), never a write
 * per request. A crash loses at most one interval of pull times, which only makes retention
 * keep less on that account: the pushed time still counts.
 */
import type { Database } from './database.js';
import { slices } from './batches.js';

export const PULL_FLUSH_MS = 10_000;
/** Past this many distinct manifests a batch is written at once, to bound memory. */
const MAX_PENDING = 10_000;

export class PullLog {
  private pending = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly database: Database) {}

  /** Notes a pull of the manifest with this row id. */
  note(manifestId: number): void {
    this.pending.add(manifestId);
    if (this.pending.size >= MAX_PENDING) {
      void this.flush().catch(() => {});
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush().catch(() => {}), PULL_FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Writes the pending pull times now (also before retention plans and on close). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ids = [...this.pending];
    this.pending = new Set();
    if (ids.length === 0) return this.flushing;
    const now = Date.now();
    this.flushing = this.flushing.then(async () => {
      for (const slice of slices(ids.sort((a, b) => a - b))) {
        await this.database.db.updateTable('manifests').set({ last_pulled_at: now }).where('id', 'in', slice).execute();
      }
    });
    return this.flushing;
  }
}
