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

export async function stats(ctx: Context): Promise<StorageStats> {
  const db = ctx.database.db;
  const [blobs, uploads] = await Promise.all([
    db.selectFrom('blobs').select([sql<number>`count(*)`.as('n'), sql<number>`coalesce(sum(size), 0)`.as('bytes')]).executeTakeFirstOrThrow(),
    db.selectFrom('uploads').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow(),
  ]);
  return { blobs: Number(blobs.n), bytes: Number(blobs.bytes), uploads: Number(uploads.n) };
}
