import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { sql } from 'kysely';
import type { RepositoryUsage, Usage } from '../../core/maintenance.js';
import type { Context } from './context.js';

/** Repositories per step; each step is one bounded statement, and requests run between steps. */
const REPOSITORIES_PER_STEP = 100;
const BLOBS_PER_STEP = 5000;

/** Bytes per repository and in total, deduplicated and logical. */
export async function usage(ctx: Context): Promise<Usage> {
  const db = ctx.database.db;
  const repositories: RepositoryUsage[] = [];
  for (let after: string | null = null; ; ) {
    // The counts and sizes are the repository's summary row (summaries.ts).
    let query = db
      .selectFrom('repositories as r')
      .innerJoin('repository_summaries as s', 's.repository_id', 'r.id')
      .select(['r.name', 's.manifests', 's.tags', 's.blobs', 's.blob_bytes as bytes']);
    if (after !== null) query = query.where('r.name', '>', after);
    const rows = await query.orderBy('r.name').limit(REPOSITORIES_PER_STEP).execute();
    for (const r of rows) {
      repositories.push({ name: r.name, manifests: Number(r.manifests ?? 0), tags: Number(r.tags ?? 0), blobs: Number(r.blobs ?? 0), bytes: Number(r.bytes ?? 0) });
    }
    if (rows.length < REPOSITORIES_PER_STEP) break;
    after = rows[rows.length - 1]!.name;
    await yieldToEventLoop();
  }
  let blobs = 0;
  let storedBytes = 0;
  for (let after = -1; ; ) {
    const page = db.selectFrom('blobs').select(['id', 'size']).where('id', '>', after).orderBy('id').limit(BLOBS_PER_STEP).as('page');
    const step = await db
      .selectFrom(page)
      .select([sql<number>`count(*)`.as('n'), sql<number>`coalesce(sum(page.size), 0)`.as('bytes'), sql<number | null>`max(page.id)`.as('last')])
      .executeTakeFirstOrThrow();
    blobs += Number(step.n);
    storedBytes += Number(step.bytes);
    if (step.last === null || Number(step.n) < BLOBS_PER_STEP) break;
    after = Number(step.last);
    await yieldToEventLoop();
  }
  return { repositories, storedBytes, logicalBytes: repositories.reduce((sum, r) => sum + r.bytes, 0), blobs };
}
