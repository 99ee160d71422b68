/**
 * The pull-through cache's ledger: last-pulled times of cached manifests, written in batches
 * (one statement per batch, never a write per request), and the query behind `cache prune`.
 */
import { sql } from 'kysely';
import type { CachePull, CachePruneOptions, CachePruneReport } from '../../core/cache.js';
import { ErrorCode, RegistryError } from '../../core/errors.js';
import type { Digest } from '../../core/digest.js';
import type { Repository } from '../../core/interfaces.js';
import type { RepositoryName } from '../../core/names.js';
import type { Context } from './context.js';
import { inSlices, slices } from './batches.js';

export async function recordPulls(ctx: Context, pulls: readonly CachePull[]): Promise<void> {
  if (pulls.length === 0) return;
  const latest = new Map<string, CachePull>();
  for (const pull of pulls) {
    const key = `${pull.repository}@${pull.digest}`;
    const seen = latest.get(key);
    if (!seen || seen.at < pull.at) latest.set(key, pull);
  }
  const names = [...new Set([...latest.values()].map((p) => p.repository))];
  const db = ctx.database.db;
  const ids = new Map((await inSlices(names, (slice) => db.selectFrom('repositories').select(['id', 'name']).where('name', 'in', slice).execute())).map((r) => [r.name, r.id]));
  const rows = [...latest.values()].flatMap((p) => {
    const id = ids.get(p.repository);
    return id === undefined ? [] : [{ repository_id: id, digest: p.digest, pulled_at: p.at }];
  });
  for (const slice of slices(rows)) {
    await db
      .insertInto('cache_pulls')
      .values(slice)
      .onConflict((oc) =>
        oc.columns(['repository_id', 'digest']).doUpdateSet({
          // Batches from several replicas may arrive out of order: never move a time back.
          // (SQLite's max() of several arguments is PostgreSQL's greatest().)
          pulled_at: (eb) => eb.fn<number>(ctx.database.dialect === 'postgres' ? 'greatest' : 'max', [eb.ref('excluded.pulled_at'), eb.ref('cache_pulls.pulled_at')]),
        }),
      )
      .execute();
  }
}

/**
 * Deletes, through the ordinary manifest delete (which locks and re-checks), every manifest in a
 * repository below one of the prefixes that was neither pulled nor stored since `before`. Rounds
 * repeat so an index goes first and its children in the next round; a child that a kept index
 * still references is kept.
 */
export async function pruneCache(ctx: Context, repository: (name: RepositoryName) => Repository, options: CachePruneOptions): Promise<CachePruneReport> {
  const report: CachePruneReport = { manifestsDeleted: 0, manifestsKept: 0 };
  if (options.prefixes.length === 0) return report;
  const done = new Set<string>();
  for (;;) {
    const candidates = (await unused(ctx, options)).filter((c) => !done.has(`${c.name}@${c.digest}`));
    if (candidates.length === 0) break;
    let progress = false;
    for (const c of candidates) {
      const key = `${c.name}@${c.digest}`;
      if (options.dryRun) {
        done.add(key);
        report.manifestsDeleted++;
        continue;
      }
      try {
        await repository(c.name as RepositoryName).manifests.delete({ kind: 'digest', digest: c.digest as Digest });
        await ctx.database.db.deleteFrom('cache_pulls').where('repository_id', '=', c.repository_id).where('digest', '=', c.digest).execute();
        report.manifestsDeleted++;
        progress = true;
        done.add(key);
      } catch (err) {
        if (err instanceof RegistryError && err.code === ErrorCode.MANIFEST_REFERENCED) continue;
        if (err instanceof RegistryError && err.code === ErrorCode.MANIFEST_UNKNOWN) {
          done.add(key);
          continue;
        }
        throw err;
      }
    }
    if (!progress) {
      report.manifestsKept += candidates.filter((c) => !done.has(`${c.name}@${c.digest}`)).length;
      break;
    }
  }
  return report;
}

async function unused(ctx: Context, options: CachePruneOptions) {
  const db = ctx.database.db;
  return db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .leftJoin('cache_pulls as p', (j) => j.onRef('p.repository_id', '=', 'm.repository_id').onRef('p.digest', '=', 'm.digest'))
    .select(['r.name', 'm.digest', 'm.repository_id'])
    .where((eb) => eb.or(options.prefixes.map((prefix) => eb(sql<string>`substr(${sql.ref('r.name')}, 1, ${prefix.length + 1})`, '=', `${prefix}/`))))
    .where('m.pushed_at', '<', options.before)
    .where((eb) => eb.or([eb('p.pulled_at', 'is', null), eb('p.pulled_at', '<', options.before)]))
    .orderBy('r.name')
    .orderBy('m.digest')
    .execute();
}
