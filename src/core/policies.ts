/**
 * Storage policies (docs/policies.md): quotas on repository scopes and immutable tags. A backend
 * decides them inside the transaction that commits a push or a delete; this module holds the
 * rules' shape, their validation and the messages a person reads.
 */
import { formatBytes } from './bytes.js';
import { RegistryError, ErrorCode } from './errors.js';
import { RepositoryPattern } from './patterns.js';

/** At most `limit` bytes of distinct blobs linked in the repositories `scope` matches. */
export interface QuotaRule {
  kind: 'quota';
  scope: string;
  limit: number;
}

/** Tags matching `tags` in repositories matching `repositories` never move and are never deleted. */
export interface ImmutableRule {
  kind: 'immutable';
  repositories: string;
  tags: string;
}

/**
 * Retention in the repositories `repositories` matches (docs/policies.md): of the tags matching
 * `keepTags` (default every tag), keep the `keepLast` most recent and those pushed or pulled
 * within `keepPulledWithin` (ms), delete the rest; delete untagged manifests neither pushed nor
 * pulled within `deleteUntaggedAfter` (ms).
 */
export interface RetentionRule {
  kind: 'retention';
  repositories: string;
  keepLast?: number;
  keepTags?: string;
  keepPulledWithin?: number;
  deleteUntaggedAfter?: number;
}

export type PolicyRule = QuotaRule | ImmutableRule | RetentionRule;
export type PolicySource = 'config' | 'api';

export interface StoredPolicy {
  id: string;
  source: PolicySource;
  rule: PolicyRule;
  updatedAt: number;
}

/** A quota scope's bytes: used now and allowed. */
export interface QuotaUsage {
  scope: string;
  used: number;
  limit: number;
}

/** Run-time management of policies (admin API, `portfolio policy …`), offered by backends that enforce them. */
export interface PolicyAdmin {
  listPolicies(): Promise<StoredPolicy[]>;
  /** Creates or replaces the rule with the same id. */
  putPolicy(rule: PolicyRule, source: PolicySource): Promise<StoredPolicy>;
  deletePolicy(id: string): Promise<boolean>;
  /** Makes the `config` rules exactly `rules` (see docs/policies.md for which wins). */
  applyConfigPolicies(rules: PolicyRule[]): Promise<{ added: number; removed: number }>;
  quotaUsage(): Promise<QuotaUsage[]>;
  /** The tightest quota left for a repository, or null when no quota covers it. */
  quotaRoom(repository: string): Promise<QuotaUsage | null>;
  /** Retention's plan (`dryRun`) or run. */
  retention(options: { dryRun?: boolean }): Promise<RetentionReport>;
}

/** One rule per scope: a quota per repository pattern, an immutable rule per pattern pair. */
export function policyId(rule: PolicyRule): string {
  if (rule.kind === 'quota') return `quota:${rule.scope}`;
  if (rule.kind === 'immutable') return `immutable:${rule.repositories}:${rule.tags}`;
  return `retention:${rule.repositories}`;
}

/** Parses `30d`, `12h`, `15m`, `90s` (a bare number is seconds) into milliseconds. */
export function parsePolicyDuration(value: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(String(value).trim());
  if (!m) throw new Error(`invalid duration ${JSON.stringify(value)} (examples: 30d, 12h)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(m[1]) * scale);
}

/**
 * A tag pattern: `*` (and `**`, the same, since a tag has no `/`) matches any run of characters;
 * everything else is literal. `v*` matches v1 and v1.2.3; `release-**` every release- tag.
 */
export class TagPattern {
  private readonly regex: RegExp;

  constructor(
    readonly pattern: string,
    where: string,
  ) {
    if (!/^[A-Za-z0-9_.*-]{1,128}$/.test(pattern)) throw new Error(`${where}: invalid tag pattern ${JSON.stringify(pattern)} (letters, digits, _ . - and *)`);
    const body = pattern
      .replace(/\*+/g, '*')
      .split('*')
      .map((part) => part.replace(/[.]/g, '\\.'))
      .join('.*');
    this.regex = new RegExp(`^${body}$`);
  }

  matches(tag: string): boolean {
    return this.regex.test(tag);
  }
}

/** Parses `10GiB`, `512MiB`, `1G`, `1000` (bytes; binary units) into bytes. */
export function parsePolicySize(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`invalid size ${value}`);
    return value;
  }
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?$/.exec(value.trim());
  if (!m) throw new Error(`invalid size ${JSON.stringify(value)} (examples: 512MiB, 10GiB)`);
  const unit = (m[2] ?? '').charAt(0).toLowerCase();
  const scale = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[unit as '' | 'b' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * scale);
}

/** Validates a rule from JSON or YAML (sizes as text or bytes); throws an Error saying what is wrong. */
export function parsePolicyRule(input: unknown, where = 'policy'): PolicyRule {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw new Error(`${where}: expected an object`);
  const o = input as Record<string, unknown>;
  const kind = o.kind ?? ('scope' in o ? 'quota' : 'tags' in o ? 'immutable' : 'repositories' in o ? 'retention' : undefined);
  if (kind === 'quota') {
    if (typeof o.scope !== 'string') throw new Error(`${where}: a quota needs a scope (a repository pattern such as team-a/**)`);
    new RepositoryPattern(o.scope, where);
    if (typeof o.limit !== 'string' && typeof o.limit !== 'number') throw new Error(`${where}: a quota needs a limit (such as 10GiB)`);
    const limit = parsePolicySize(o.limit);
    extraKeys(o, ['kind', 'scope', 'limit'], where);
    return { kind, scope: o.scope, limit };
  }
  if (kind === 'immutable') {
    if (typeof o.repositories !== 'string') throw new Error(`${where}: an immutable rule needs repositories (a repository pattern)`);
    if (typeof o.tags !== 'string') throw new Error(`${where}: an immutable rule needs tags (a tag pattern such as v*)`);
    new RepositoryPattern(o.repositories, where);
    new TagPattern(o.tags, where);
    extraKeys(o, ['kind', 'repositories', 'tags'], where);
    return { kind, repositories: o.repositories, tags: o.tags };
  }
  if (kind === 'retention') {
    if (typeof o.repositories !== 'string') throw new Error(`${where}: a retention rule needs repositories (a repository pattern)`);
    new RepositoryPattern(o.repositories, where);
    const rule: RetentionRule = { kind, repositories: o.repositories };
    if (o.keepLast !== undefined) {
      const n = Number(o.keepLast);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${where}: keepLast must be a non-negative integer`);
      rule.keepLast = n;
    }
    if (o.keepTags !== undefined) {
      if (typeof o.keepTags !== 'string') throw new Error(`${where}: keepTags must be a tag pattern`);
      new TagPattern(o.keepTags, where);
      rule.keepTags = o.keepTags;
    }
    if (o.keepPulledWithin !== undefined) rule.keepPulledWithin = parsePolicyDuration(o.keepPulledWithin as string | number);
    if (o.deleteUntaggedAfter !== undefined) rule.deleteUntaggedAfter = parsePolicyDuration(o.deleteUntaggedAfter as string | number);
    extraKeys(o, ['kind', 'repositories', 'keepLast', 'keepTags', 'keepPulledWithin', 'deleteUntaggedAfter'], where);
    return rule;
  }
  throw new Error(`${where}: kind must be quota, immutable or retention`);
}

function extraKeys(o: Record<string, unknown>, allowed: string[], where: string): void {
  const extra = Object.keys(o).find((k) => !allowed.includes(k));
  if (extra) throw new Error(`${where}: unknown key ${JSON.stringify(extra)}`);
}

/** The immutable rule protecting `tag` of `repository`, if any. */
export function immutableRuleFor(rules: ImmutableRule[], repository: string, tag: string): ImmutableRule | undefined {
  return rules.find((r) => new TagPattern(r.tags, 'rule').matches(tag) && new RepositoryPattern(r.repositories, 'rule').matches(repository));
}


/** 403 DENIED: the write would take a scope over its quota. */
export function quotaExceeded(usage: QuotaUsage, needs: number): RegistryError {
  return new RegistryError(
    403,
    ErrorCode.DENIED,
    `quota exceeded for ${usage.scope}: ${formatBytes(usage.used, true)} of ${formatBytes(usage.limit, true)} used, this push needs ${formatBytes(needs, true)}`,
    { reason: 'QUOTA_EXCEEDED', scope: usage.scope, used: usage.used, limit: usage.limit, needs },
  );
}

/** 409 DENIED: the change would move or delete an immutable tag; the body names the rule. */
export function tagImmutable(repository: string, tag: string, rule: ImmutableRule, what: string): RegistryError {
  return new RegistryError(
    409,
    ErrorCode.TAG_IMMUTABLE,
    `tag ${tag} of ${repository} is immutable (rule: repositories ${rule.repositories}, tags ${rule.tags}): ${what}`,
    { repository, tag, rule: { repositories: rule.repositories, tags: rule.tags } },
  );
}

/** One deletion retention plans: a tag, or a manifest (with its tags), and the rule that decided. */
export interface RetentionDeletion {
  repository: string;
  /** Set for a tag deletion; absent when the manifest itself goes. */
  tag?: string;
  digest: string;
  rule: string;
  reason: string;
}

export interface RetentionReport {
  deletions: RetentionDeletion[];
  /** Deletions the run attempted that failed (e.g. the manifest became referenced meanwhile). */
  failed: { deletion: RetentionDeletion; error: string }[];
  /** False when another process held the collection lease. */
  ran: boolean;
}
