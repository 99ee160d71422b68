import { sql } from 'kysely';
import type { Usage } from '../../core/maintenance.js';
import type { Context } from './context.js';

/** Bytes per repository and in total, deduplicated and logical. */
export async function usage(ctx: Context): Promise<Usage> {
  const db = ctx.database.db;
  const repos = await db
    .selectFrom('repositories as r')
    .select((eb) => [
      'r.name',
      eb.selectFrom('manifests as m').select(eb.fn.countAll<number>().as('n')).whereRef('m.repository_id', '=', 'r.id').as('manifests'),
      eb.selectFrom('tags as t').select(eb.fn.countAll<number>().as('n')).whereRef('t.repository_id', '=', 'r.id').as('tags'),
      eb.selectFrom('repository_blobs as rb').select(eb.fn.countAll<number>().as('n')).whereRef('rb.repository_id', '=', 'r.id').as('blobs'),
      eb
        .selectFrom('repository_blobs as rb')
        .innerJoin('blobs as b', 'b.id', 'rb.blob_id')
        .select(sql<number>`coalesce(sum(b.size), 0)`.as('bytes'))
        .whereRef('rb.repository_id', '=', 'r.id')
        .as('bytes'),
    ])
    .orderBy('r.name')
    .execute();
  const total = await db
    .selectFrom('blobs')
    .select([sql<number>`count(*)`.as('blobs'), sql<number>`coalesce(sum(size), 0)`.as('bytes')])
    .executeTakeFirstOrThrow();
  const repositories = repos.map((r) => ({
    name: r.name,
    manifests: Number(r.manifests ?? 0),
    tags: Number(r.tags ?? 0),
    blobs: Number(r.blobs ?? 0),
    bytes: Number(r.bytes ?? 0),
  }));
  return {
    repositories,
    storedBytes: Number(total.bytes),
    logicalBytes: repositories.reduce((sum, r) => sum + r.bytes, 0),
    blobs: Number(total.blobs),
  };
}
