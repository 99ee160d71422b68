/**
 * Retention (docs/policies.md): plans which tags and manifests the rules delete, and deletes them
 * the way a client would (the manifest delete path, so events are recorded and immutable tags and
 * index children are refused there too), under the garbage-collection lease so one replica runs it.
 */
import { RegistryError } from '../../core/errors.js';
import type { EventOrigin } from '../../core/events.js';
import { parseReference, type RepositoryName } from '../../core/names.js';
import { RepositoryPattern } from '../../core/patterns.js';
import { immutableRuleFor, policyId, TagPattern, type ImmutableRule, type RetentionDeletion, type RetentionReport, type RetentionRule } from '../../core/policies.js';
import type { Context } from './context.js';
import { tryAcquireLease } from './leases.js';
import { SqlManifestStore } from './manifests.js';

const LEASE_MS = 60_000;

interface ManifestRow {
  id: number;
  digest: string;
  subject: string | null;
  pushedAt: number;
  pulledAt: number;
}

interface TagRow {
  name: string;
  updatedAt: number;
  manifestId: number;
}

async function rulesOf<R>(ctx: Context, kind: string): Promise<R[]> {
  const rows = await ctx.database.db.selectFrom('policies').select('rule').where('kind', '=', kind).orderBy('id').execute();
  return rows.map((r) => JSON.parse(r.rule) as R);
}

/** Every deletion the rules decide now, repository by repository, referrers before their subjects. */
export async function planRetention(ctx: Context, now = Date.now()): Promise<RetentionDeletion[]> {
  await ctx.pulls?.flush();
  const rules = await rulesOf<RetentionRule>(ctx, 'retention');
  if (rules.length === 0) return [];
  const immutable = await rulesOf<ImmutableRule>(ctx, 'immutable');
  const db = ctx.database.db;
  const repositories = await db.selectFrom('repositories').select(['id', 'name']).orderBy('name').execute();
  const out: RetentionDeletion[] = [];
  for (const repository of repositories) {
    const matching = rules.filter((r) => new RepositoryPattern(r.repositories, 'retention').matches(repository.name));
    if (matching.length === 0) continue;
    const manifests = (
      await db.selectFrom('manifests').select(['id', 'digest', 'subject_digest', 'pushed_at', 'last_pulled_at']).where('repository_id', '=', repository.id).execute()
    ).map((m): ManifestRow => ({ id: m.id, digest: m.digest, subject: m.subject_digest, pushedAt: m.pushed_at, pulledAt: m.last_pulled_at ?? 0 }));
    const byId = new Map(manifests.map((m) => [m.id, m]));
    const tags = (await db.selectFrom('tags').select(['name', 'updated_at', 'manifest_id']).where('repository_id', '=', repository.id).execute()).map(
      (t): TagRow => ({ name: t.name, updatedAt: t.updated_at, manifestId: t.manifest_id }),
    );
    const children = new Set(
      (
        await db
          .selectFrom('manifest_children as c')
          .innerJoin('manifests as p', 'p.id', 'c.parent_id')
          .select('c.child_id')
          .where('p.repository_id', '=', repository.id)
          .execute()
      ).map((c) => c.child_id),
    );
    out.push(...planRepository(repository.name, matching, immutable, manifests, byId, tags, children, now));
  }
  return out;
}

function planRepository(
  repository: string,
  rules: RetentionRule[],
  immutable: ImmutableRule[],
  manifests: ManifestRow[],
  byId: Map<number, ManifestRow>,
  tags: TagRow[],
  children: Set<number>,
  now: number,
): RetentionDeletion[] {
  // Tags: a tag goes when a rule that considers it would delete it and no rule keeps it.
  const doomed = new Map<string, { rule: string; reason: string }>();
  const kept = new Set<string>();
  for (const rule of rules) {
    if (rule.keepLast === undefined && rule.keepPulledWithin === undefined) continue;
    const pattern = new TagPattern(rule.keepTags ?? '*', 'retention');
    const considered = tags.filter((t) => pattern.matches(t.name)).sort((a, b) => b.updatedAt - a.updatedAt || (a.name < b.name ? 1 : -1));
    considered.forEach((t, rank) => {
      const manifest = byId.get(t.manifestId)!;
      const recent = rule.keepPulledWithin !== undefined && Math.max(t.updatedAt, manifest.pulledAt) >= now - rule.keepPulledWithin;
      if ((rule.keepLast !== undefined && rank < rule.keepLast) || recent) kept.add(t.name);
      else if (!doomed.has(t.name)) {
        const why = [
          ...(rule.keepLast !== undefined ? [`not among the ${rule.keepLast} most recent tags matching ${rule.keepTags ?? '*'}`] : []),
          ...(rule.keepPulledWithin !== undefined ? [`neither pushed nor pulled within ${days(rule.keepPulledWithin)}`] : []),
        ].join(', ');
        doomed.set(t.name, { rule: policyId(rule), reason: why });
      }
    });
  }
  for (const t of tags) if (immutableRuleFor(immutable, repository, t.name)) kept.add(t.name);
  for (const name of kept) doomed.delete(name);

  const out: RetentionDeletion[] = [];
  const deletedManifests = new Map<number, { rule: string; reason: string }>();
  const tagsOf = new Map<number, TagRow[]>();
  for (const t of tags) tagsOf.set(t.manifestId, [...(tagsOf.get(t.manifestId) ?? []), t]);
  // A manifest all of whose tags go (and that no index holds) goes with them, so its bytes can be
  // collected; otherwise only the tags go.
  for (const [manifestId, list] of tagsOf) {
    const gone = list.filter((t) => doomed.has(t.name));
    if (gone.length === 0) continue;
    const manifest = byId.get(manifestId)!;
    if (gone.length === list.length && !children.has(manifestId)) {
      const first = doomed.get(gone[0]!.name)!;
      deletedManifests.set(manifestId, { rule: first.rule, reason: `tags ${gone.map((t) => t.name).join(', ')}: ${first.reason}` });
    } else {
      for (const t of gone) out.push({ repository, tag: t.name, digest: manifest.digest, ...doomed.get(t.name)! });
    }
  }
  // Untagged manifests: neither pushed nor pulled within the rule's age, not held by an index,
  // and not a referrer (referrers follow their subject instead).
  for (const rule of rules) {
    if (rule.deleteUntaggedAfter === undefined) continue;
    const cutoff = now - rule.deleteUntaggedAfter;
    for (const m of manifests) {
      if (tagsOf.has(m.id) || children.has(m.id) || deletedManifests.has(m.id)) continue;
      if (m.subject !== null && manifests.some((s) => s.digest === m.subject)) continue;
      if (Math.max(m.pushedAt, m.pulledAt) >= cutoff) continue;
      deletedManifests.set(m.id, { rule: policyId(rule), reason: `untagged, neither pushed nor pulled within ${days(rule.deleteUntaggedAfter)}` });
    }
  }
  // Referrers (signatures, SBOMs) follow their subject, and are deleted before it.
  const emit = (id: number, why: { rule: string; reason: string }, seen: Set<number>) => {
    if (seen.has(id)) return;
    seen.add(id);
    const m = byId.get(id)!;
    for (const r of manifests) {
      if (r.subject === m.digest && !children.has(r.id) && !(tagsOf.get(r.id) ?? []).some((t) => kept.has(t.name))) {
        emit(r.id, { rule: why.rule, reason: `referrer of ${m.digest}` }, seen);
      }
    }
    out.push({ repository, digest: m.digest, ...why });
  };
  const seen = new Set<number>();
  for (const [id, why] of deletedManifests) emit(id, why, seen);
  return out;
}

function days(ms: number): string {
  return ms % 86_400_000 === 0 ? `${ms / 86_400_000}d` : ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : `${ms / 1000}s`;
}

/** Plans and deletes, under the collection lease; each deletion through the manifest delete path. */
export async function runRetention(ctx: Context, options: { dryRun?: boolean; origin?: EventOrigin } = {}): Promise<RetentionReport> {
  if (options.dryRun) return { deletions: await planRetention(ctx), failed: [], ran: true };
  if ((await rulesOf<RetentionRule>(ctx, 'retention')).length === 0) return { deletions: [], failed: [], ran: true };
  const lease = await tryAcquireLease(ctx.database, 'gc', LEASE_MS);
  if (!lease) return { deletions: [], failed: [], ran: false };
  const renewal = setInterval(() => void lease.renew(), LEASE_MS / 4);
  try {
    const deletions = await planRetention(ctx);
    const failed: RetentionReport['failed'] = [];
    for (const d of deletions) {
      if (!lease.valid()) throw new Error('garbage collection lease lost');
      const store = new SqlManifestStore(ctx, d.repository as RepositoryName, options.origin);
      try {
        await store.delete(parseReference(d.tag ?? d.digest));
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
        failed.push({ deletion: d, error: err.message });
      }
    }
    return { deletions, failed, ran: true };
  } finally {
    clearInterval(renewal);
    await lease.release().catch(() => {});
  }
}
