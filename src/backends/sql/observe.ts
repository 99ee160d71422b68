/** What the SQL backend tells probes and metrics: can it serve, and how much does it hold. */
import { sql } from 'kysely';
import type { ReadinessCheck, StorageStats } from '../../core/observer.js';
import type { Context } from './context.js';

/** A key no blob ever has (blob keys are digests): its stat asks the store a question, nothing more. */
const PROBE_KEY = 'readiness-probe';
/** A check that has not answered by then has failed: a probe must answer quickly. */
const CHECK_TIMEOUT_MS = 2000;

export async function readiness(ctx: Context): Promise<ReadinessCheck[]> {
  const database = check('database', () => sql`select 1`.execute(ctx.database.db));
  const objects = check('objects', () => ctx.objects.stat(PROBE_KEY));
  const schema = check('schema', async () => {
    const pending = await ctx.database.pendingMigrations();
    if (pending.length) throw new Error(`migrations not applied: ${pending.join(', ')}`);
  });
  return Promise.all([database, objects, schema]);
}

async function check(name: ReadinessCheck['name'], probe: () => Promise<unknown>): Promise<ReadinessCheck> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([probe(), timeout]);
    return { name, ok: true };
  } catch (err) {
    return { name, ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Blob rows summed per statement. A SQLite statement holds the event loop while it runs (a
 * million rows: ~100 ms), so the table is read in id ranges with other work let in between.
 */
export const STATS_SLICE_ROWS = 10_000;

export async function stats(ctx: Context): Promise<StorageStats> {
  const db = ctx.database.db;
  const { top } = await db.selectFrom('blobs').select(sql<number | null>`max(id)`.as('top')).executeTakeFirstOrThrow();
  let blobs = 0;
  let bytes = 0;
  // Ranges of ids rather than OFFSET pages: each is an index seek, however many rows collection removed.
  for (let from = 0; from < Number(top ?? 0); from += STATS_SLICE_ROWS) {
    const slice = await db
      .selectFrom('blobs')
      .select([sql<number>`count(*)`.as('n'), sql<number>`coalesce(sum(size), 0)`.as('bytes')])
      .where('id', '>', from)
      .where('id', '<=', from + STATS_SLICE_ROWS)
      .executeTakeFirstOrThrow();
    blobs += Number(slice.n);
    bytes += Number(slice.bytes);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const uploads = await db.selectFrom('uploads').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow();
  return { blobs, bytes, uploads: Number(uploads.n) };
}
