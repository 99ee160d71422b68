/**
 * The query behind `cache prune`: cached manifests neither stored nor pulled since a time, by
 * the pull times every manifest GET notes in batches (pulls.ts).
 */
import { sql } from 'kysely';
import type { CachePruneOptions, CachePruneReport } from '../../core/cache.js';
import { ErrorCode, RegistryError } from '../../core/errors.js';
import type { Digest } from '../../core/digest.js';
import type { Repository } from '../../core/interfaces.js';
import type { RepositoryName } from '../../core/names.js';
import type { Context } from './context.js';

/**
 * Deletes, through the ordinary manifest delete (which locks and re-checks), every manifest in a
 * repository below one of the prefixes that was neither pulled nor stored since `before`. Rounds
 * repeat so an index goes first and its children in the next round; a child that a kept index
 * still references is kept.
 */
export async function pruneCache(ctx: Context, repository: (name: RepositoryName) => Repository, options: CachePruneOptions): Promise<CachePruneReport> {
  const report: CachePruneReport = { manifestsDeleted: 0, manifestsKept: 0 };
  if (options.prefixes.length === 0) return report;
  // Pulls this process noted but has not written yet count too.
  await ctx.pulls?.flush();
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
    .select(['r.name', 'm.digest'])
    .where((eb) => eb.or(options.prefixes.map((prefix) => eb(sql<string>`substr(${sql.ref('r.name')}, 1, ${prefix.length + 1})`, '=', `${prefix}/`))))
    .where('m.pushed_at', '<', options.before)
    .where((eb) => eb.or([eb('m.last_pulled_at', 'is', null), eb('m.last_pulled_at', '<', options.before)]))
    .orderBy('r.name')
    .orderBy('m.digest')
    .execute();
}
