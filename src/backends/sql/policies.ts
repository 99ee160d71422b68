/**
 * Policies in the database (docs/policies.md): every replica reads the same rules, inside the
 * transaction that commits the change they govern, so no concurrent push slips past a check.
 */
import {
  immutableRuleFor,
  policyId,
  quotaExceeded,
  tagImmutable,
  type ImmutableRule,
  type PolicyAdmin,
  type PolicyRule,
  type PolicySource,
  type QuotaRule,
  type QuotaUsage,
  type RetentionReport,
  type StoredPolicy,
} from '../../core/policies.js';
import { runRetention } from './retention.js';
import { RepositoryPattern } from '../../core/patterns.js';
import type { Context } from './context.js';
import type { Executor } from './database.js';
import { prepare } from './prepared.js';

const RULES = prepare((exec, _pg, kind: string) => exec.selectFrom('policies').select('rule').where('kind', '=', kind).orderBy('id'));

async function rulesOf<R extends PolicyRule>(exec: Executor, ctx: Context, kind: R['kind']): Promise<R[]> {
  return (await RULES.execute(exec, ctx.database.dialect, kind)).rows.map((row) => JSON.parse(row.rule) as R);
}

/** The immutable rule protecting `tag` of `repository`, read in the caller's transaction. */
export async function immutableRule(exec: Executor, ctx: Context, repository: string, tag: string): Promise<ImmutableRule | undefined> {
  return immutableRuleFor(await rulesOf<ImmutableRule>(exec, ctx, 'immutable'), repository, tag);
}

/** Refuses (TAG_IMMUTABLE) deleting a manifest that an immutable tag points to. */
export async function refuseImmutableManifestDelete(exec: Executor, ctx: Context, repository: string, manifestId: number, digest: string): Promise<void> {
  const tags = await exec.selectFrom('tags').select('name').where('manifest_id', '=', manifestId).execute();
  if (tags.length === 0) return;
  const rules = await rulesOf<ImmutableRule>(exec, ctx, 'immutable');
  for (const { name } of tags) {
    const rule = immutableRuleFor(rules, repository, name);
    if (rule) throw tagImmutable(repository, name, rule, `manifest ${digest} cannot be deleted while the tag points to it`);
  }
}

/**
 * Refuses (403 DENIED) linking a blob into `repository` when that takes a quota scope over its
 * limit. A blob already linked anywhere in the scope adds nothing (each blob counts once per
 * scope). On PostgreSQL each scope's policy row is locked first, in id order, so links into one
 * scope commit one at a time and each sees the usage the previous one left.
 */
export async function enforceQuota(trx: Executor, ctx: Context, repository: string, repositoryId: number, blob: { id: number; size: number }): Promise<void> {
  const all = await rulesOf<QuotaRule>(trx, ctx, 'quota');
  if (all.length === 0) return;
  const rules = all.filter((r) => new RepositoryPattern(r.scope, 'quota').matches(repository));
  if (rules.length === 0) return;
  const linked = await trx.selectFrom('repository_blobs').select('blob_id').where('repository_id', '=', repositoryId).where('blob_id', '=', blob.id).executeTakeFirst();
  if (linked) return;
  for (const rule of rules) {
    if (ctx.database.postgres) await trx.selectFrom('policies').select('id').where('id', '=', policyId(rule)).forUpdate().execute();
    const { used, blobs } = await scopeUsage(trx, rule.scope);
    if (blobs.has(blob.id)) continue;
    if (used + blob.size > rule.limit) throw quotaExceeded({ scope: rule.scope, used, limit: rule.limit }, blob.size);
  }
}

/**
 * Bytes of the distinct blobs linked in the repositories a scope matches. The pattern's literal
 * leading segments narrow the scan to a range of the name index; the rest is matched here.
 */
async function scopeUsage(exec: Executor, scope: string): Promise<{ used: number; blobs: Set<number> }> {
  const pattern = new RepositoryPattern(scope, 'quota');
  const literal: string[] = [];
  for (const s of pattern.segments) {
    if (s.includes('*')) break;
    literal.push(s);
  }
  let query = exec
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .innerJoin('blobs as b', 'b.id', 'rb.blob_id')
    .select(['r.name', 'b.id', 'b.size']);
  if (literal.length === pattern.segments.length) query = query.where('r.name', '=', scope);
  else if (literal.length > 0) {
    // `a/**` also matches `a` itself; names between `a` and `a0` ('0' follows '/') are filtered below.
    const head = literal.join('/');
    query = query.where('r.name', '>=', head).where('r.name', '<', `${head}0`);
  }
  const rows = await query.execute();
  const blobs = new Set<number>();
  let used = 0;
  for (const row of rows) {
    if (blobs.has(row.id) || !pattern.matches(row.name)) continue;
    blobs.add(row.id);
    used += row.size;
  }
  return { used, blobs };
}

export class SqlPolicies implements PolicyAdmin {
  constructor(private readonly ctx: Context) {}

  async listPolicies(): Promise<StoredPolicy[]> {
    const rows = await this.ctx.database.db.selectFrom('policies').selectAll().orderBy('id').execute();
    return rows.map((r) => ({ id: r.id, source: r.source as PolicySource, rule: JSON.parse(r.rule) as PolicyRule, updatedAt: r.updated_at }));
  }

  async putPolicy(rule: PolicyRule, source: PolicySource): Promise<StoredPolicy> {
    const stored = { id: policyId(rule), source, rule, updatedAt: Date.now() };
    await this.ctx.database.db
      .insertInto('policies')
      .values({ id: stored.id, kind: rule.kind, rule: JSON.stringify(rule), source, updated_at: stored.updatedAt })
      .onConflict((oc) => oc.column('id').doUpdateSet({ rule: JSON.stringify(rule), source, updated_at: stored.updatedAt }))
      .execute();
    return stored;
  }

  async deletePolicy(id: string): Promise<boolean> {
    const result = await this.ctx.database.db.deleteFrom('policies').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /**
   * The file wins: each of its rules replaces the stored rule of the same id, whoever set it;
   * rules the file set before and no longer lists are removed; API rules of other ids stay.
   */
  async applyConfigPolicies(rules: PolicyRule[]): Promise<{ added: number; removed: number }> {
    const now = Date.now();
    const wanted = new Map(rules.map((r) => [policyId(r), r]));
    return this.ctx.database.tx(async (trx) => {
      const existing = await trx.selectFrom('policies').select(['id', 'rule', 'source']).execute();
      let removed = 0;
      for (const row of existing) {
        if (row.source === 'config' && !wanted.has(row.id)) {
          await trx.deleteFrom('policies').where('id', '=', row.id).execute();
          removed++;
        }
      }
      let added = 0;
      for (const [id, rule] of wanted) {
        const before = existing.find((row) => row.id === id);
        if (before && before.source === 'config' && before.rule === JSON.stringify(rule)) continue;
        added++;
        await trx
          .insertInto('policies')
          .values({ id, kind: rule.kind, rule: JSON.stringify(rule), source: 'config', updated_at: now })
          .onConflict((oc) => oc.column('id').doUpdateSet({ rule: JSON.stringify(rule), source: 'config', updated_at: now }))
          .execute();
      }
      return { added, removed };
    });
  }

  async quotaUsage(): Promise<QuotaUsage[]> {
    const db = this.ctx.database.db;
    const rules = await rulesOf<QuotaRule>(db, this.ctx, 'quota');
    const out: QuotaUsage[] = [];
    for (const rule of rules) out.push({ scope: rule.scope, used: (await scopeUsage(db, rule.scope)).used, limit: rule.limit });
    return out;
  }

  retention(options: { dryRun?: boolean }): Promise<RetentionReport> {
    return runRetention(this.ctx, options);
  }

  async quotaRoom(repository: string): Promise<QuotaUsage | null> {
    const db = this.ctx.database.db;
    const rules = (await rulesOf<QuotaRule>(db, this.ctx, 'quota')).filter((r) => new RepositoryPattern(r.scope, 'quota').matches(repository));
    let tightest: QuotaUsage | null = null;
    for (const rule of rules) {
      const usage = { scope: rule.scope, used: (await scopeUsage(db, rule.scope)).used, limit: rule.limit };
      if (!tightest || usage.limit - usage.used < tightest.limit - tightest.used) tightest = usage;
    }
    return tightest;
  }
}
