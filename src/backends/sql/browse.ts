/**
 * The read queries of the web interface's JSON API (core/browse.ts). A repository page is one
 * statement over the name index joined to each row's summary (summaries.ts: counts and sizes
 * kept as they change); a tag page is one statement over the tag index with indexed subqueries
 * for the page's sizes, plus at most one statement for the rows' inline config blobs.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Browse, ManifestDetail, RepositoryQuery, RepositorySummary, TagQuery, TagSummary, UsageSummary } from '../../core/browse.js';
import type { RepositoryName } from '../../core/names.js';
import type { Context } from './context.js';

/** Configs larger than this are not parsed for a tag list's platforms. */
const MAX_CONFIG_BYTES = 1 << 20;

interface RepositoryRow {
  name: string;
  tags: number | string;
  manifests: number | string;
  blob_bytes: number | string | null;
  manifest_bytes: number | string | null;
  last_push: number | string | null;
}

interface TagRow {
  name: string;
  updated_at: number | string;
  digest: string;
  media_type: string;
  artifact_type: string | null;
  content: Buffer | Uint8Array;
  size: number | string | null;
  last_pulled_at: number | string | null;
}

export class SqlBrowse implements Browse {
  constructor(private readonly ctx: Context) {}

  private get db() {
    return this.ctx.database.db;
  }

  private get postgres(): boolean {
    return this.ctx.database.dialect === 'postgres';
  }

  async repositories(query: RepositoryQuery): Promise<{ items: RepositorySummary[]; more: boolean }> {
    const where: RawBuilder<unknown>[] = [
      // As the catalog: a repository appears once it holds something.
      sql`(s.manifests > 0 or s.blobs > 0)`,
    ];
    if (query.after !== undefined) where.push(sql`r.name > ${query.after}`);
    const search = query.search?.toLowerCase() ?? '';
    if (search !== '') {
      if (query.match === 'prefix') where.push(sql`r.name >= ${search} and r.name < ${successor(search)}`);
      // PostgreSQL estimates a LIKE pattern's matches from the name statistics (strpos it
      // guesses at a third of all rows), so it walks the name index for a common text, stopping
      // at the page's end, and scans and sorts the few matches of a rare one.
      else if (this.postgres) where.push(sql`r.name like ${`%${search.replace(/[\\%_]/g, '\\$&')}%`}`);
      else where.push(sql`instr(r.name, ${search}) > 0`);
    }
    const filter = query.filter;
    if (filter) {
      if (filter.names.length === 0 && filter.prefixes.length === 0) return { items: [], more: false };
      const terms: RawBuilder<unknown>[] = [];
      if (filter.names.length) terms.push(sql`r.name in (${sql.join([...filter.names])})`);
      for (const p of filter.prefixes) terms.push(p === '' ? sql`1 = 1` : sql`(r.name >= ${p} and r.name < ${successor(p)})`);
      where.push(sql`(${sql.join(terms, sql` or `)})`);
    }
    const rows = await sql<RepositoryRow>`
      select r.name, ${summaryColumns()}
      from repositories r join repository_summaries s on s.repository_id = r.id
      where ${sql.join(where, sql` and `)}
      order by r.name
      limit ${query.limit + 1}`.execute(this.db);
    const items = rows.rows.slice(0, query.limit).map(toSummary);
    return { items, more: rows.rows.length > query.limit };
  }

  async repositorySummary(name: RepositoryName): Promise<RepositorySummary | null> {
    const rows = await sql<RepositoryRow>`
      select r.name, ${summaryColumns()} from repositories r join repository_summaries s on s.repository_id = r.id where r.name = ${name}`.execute(this.db);
    const row = rows.rows[0];
    return row ? toSummary(row) : null;
  }

  async tags(name: RepositoryName, query: TagQuery): Promise<{ items: TagSummary[]; more: boolean } | null> {
    const repository = await this.db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst();
    if (!repository) return null;
    const where: RawBuilder<unknown>[] = [sql`t.repository_id = ${repository.id}`];
    let order: RawBuilder<unknown>;
    if (query.sort === 'pushed') {
      // Newest first; ties by name.
      if (query.after) where.push(sql`(t.updated_at < ${query.after.pushedAt} or (t.updated_at = ${query.after.pushedAt} and t.name > ${query.after.name}))`);
      order = sql`t.updated_at desc, t.name`;
    } else {
      if (query.after) where.push(sql`t.name > ${query.after.name}`);
      order = sql`t.name`;
    }
    // Pulls noted in this process are written first, so the page shows them.
    await this.ctx.pulls?.flush();
    // The page's keys first, sorted as narrow rows; sizes and contents only for the page.
    const rows = await sql<TagRow>`
      select t.name, t.updated_at, m.digest, m.media_type, m.artifact_type, m.content, m.last_pulled_at, ${manifestSize(sql`m`)} as size
      from (select t.name, t.updated_at, t.manifest_id from tags t where ${sql.join(where, sql` and `)} order by ${order} limit ${query.limit + 1}) t
      join manifests m on m.id = t.manifest_id
      order by ${order}`.execute(this.db);
    const page = rows.rows.slice(0, query.limit);
    const parsed = page.map((r) => parseJson(r.content));
    const configs = await this.inlineBlobs(parsed.map(configDigest).filter((d): d is string => d !== null));
    const items = page.map((r, i): TagSummary => ({
      name: r.name,
      digest: r.digest,
      mediaType: r.media_type,
      artifactType: r.artifact_type,
      size: Number(r.size ?? 0),
      platforms: platformsOf(parsed[i] ?? null, configs),
      pushedAt: Number(r.updated_at),
      lastPulledAt: r.last_pulled_at === null ? null : Number(r.last_pulled_at),
    }));
    return { items, more: rows.rows.length > query.limit };
  }

  async manifest(name: RepositoryName, reference: string): Promise<ManifestDetail | null> {
    const repository = await this.db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst();
    if (!repository) return null;
    let query = this.db
      .selectFrom('manifests as m')
      .select(['m.id', 'm.digest', 'm.media_type', 'm.artifact_type', 'm.size', 'm.content', 'm.pushed_at'])
      .where('m.repository_id', '=', repository.id);
    query = reference.includes(':')
      ? query.where('m.digest', '=', reference)
      : query.innerJoin('tags as t', 't.manifest_id', 'm.id').where('t.repository_id', '=', repository.id).where('t.name', '=', reference);
    const m = await query.executeTakeFirst();
    if (!m) return null;
    const [tags, blobs, referrers] = await Promise.all([
      this.db.selectFrom('tags').select('name').where('manifest_id', '=', m.id).orderBy('name').limit(1000).execute(),
      this.db
        .selectFrom('manifest_blobs as mb')
        .innerJoin('blobs as b', 'b.id', 'mb.blob_id')
        .select(['b.digest', 'b.size', 'b.content'])
        .where('mb.manifest_id', '=', m.id)
        .execute(),
      this.db
        .selectFrom('manifests')
        .select(['digest', 'media_type', 'artifact_type', 'size', 'annotations'])
        .where('repository_id', '=', repository.id)
        .where('subject_digest', '=', m.digest)
        .orderBy('digest')
        .limit(1000)
        .execute(),
    ]);
    return {
      digest: m.digest,
      mediaType: m.media_type,
      artifactType: m.artifact_type,
      size: Number(m.size),
      pushedAt: Number(m.pushed_at),
      content: Buffer.from(m.content),
      tags: tags.map((t) => t.name),
      blobs: new Map(blobs.map((b) => [b.digest, { size: Number(b.size), inline: b.content && Number(b.size) <= MAX_CONFIG_BYTES ? Buffer.from(b.content) : null }])),
      referrers: referrers.map((r) => ({
        digest: r.digest,
        mediaType: r.media_type,
        artifactType: r.artifact_type,
        size: Number(r.size),
        annotations: r.annotations ? (JSON.parse(r.annotations) as Record<string, string>) : null,
      })),
    };
  }

  async usageSummary(): Promise<UsageSummary> {
    const blobs = await sql<{ n: number | string; bytes: number | string | null }>`select count(*) as n, coalesce(sum(size), 0) as bytes from blobs`.execute(this.db);
    const repositories = await sql<{ n: number | string }>`select count(*) as n from repositories`.execute(this.db);
    return { storedBytes: Number(blobs.rows[0]?.bytes ?? 0), blobs: Number(blobs.rows[0]?.n ?? 0), repositories: Number(repositories.rows[0]?.n ?? 0) };
  }

  /** Inline bytes of small blobs by digest (configs kept in their rows). */
  private async inlineBlobs(digests: string[]): Promise<Map<string, Buffer>> {
    const wanted = [...new Set(digests)];
    if (wanted.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('blobs')
      .select(['digest', 'content'])
      .where('digest', 'in', wanted)
      .where('content', 'is not', null)
      .where('size', '<=', MAX_CONFIG_BYTES)
      .execute();
    return new Map(rows.filter((r) => r.content).map((r) => [r.digest, Buffer.from(r.content!)]));
  }
}

/** A repository's figures from its summary row `s`. */
function summaryColumns(): RawBuilder<unknown> {
  return sql`s.tags, s.manifests, s.blob_bytes, s.manifest_bytes, s.last_push`;
}

/** The manifest's bytes, its blobs, and for an index its children's bytes and blobs. */
function manifestSize(m: RawBuilder<unknown>): RawBuilder<unknown> {
  const blobsOf = (x: RawBuilder<unknown>) =>
    sql`coalesce((select sum(b.size) from manifest_blobs mb join blobs b on b.id = mb.blob_id where mb.manifest_id = ${x}.id), 0)`;
  return sql`(${m}.size + ${blobsOf(m)} + coalesce((select sum(c.size + ${blobsOf(sql`c`)}) from manifest_children mc join manifests c on c.id = mc.child_id where mc.parent_id = ${m}.id), 0))`;
}

function toSummary(row: RepositoryRow): RepositorySummary {
  return {
    name: row.name,
    tags: Number(row.tags),
    manifests: Number(row.manifests),
    bytes: Number(row.blob_bytes ?? 0) + Number(row.manifest_bytes ?? 0),
    lastPush: row.last_push === null ? null : Number(row.last_push),
  };
}

type Json = Record<string, unknown>;

function parseJson(bytes: Buffer | Uint8Array): Json | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : null;
  } catch {
    return null;
  }
}

function configDigest(manifest: Json | null): string | null {
  const config = manifest?.config as Json | undefined;
  return config && typeof config.digest === 'string' ? config.digest : null;
}

/** `os/arch[/variant]` of a platform object, or null. */
export function platformName(p: unknown): string | null {
  if (p === null || typeof p !== 'object') return null;
  const { os, architecture, variant } = p as Json;
  if (typeof os !== 'string' || typeof architecture !== 'string') return null;
  return [os, architecture, ...(typeof variant === 'string' && variant ? [variant] : [])].join('/');
}

function platformsOf(manifest: Json | null, configs: Map<string, Buffer>): string[] {
  if (!manifest) return [];
  if (Array.isArray(manifest.manifests)) {
    return [...new Set((manifest.manifests as Json[]).map((d) => platformName(d?.platform)).filter((p): p is string => p !== null && p !== 'unknown/unknown'))];
  }
  const digest = configDigest(manifest);
  const config = digest ? configs.get(digest) : undefined;
  const name = config ? platformName(parseJson(config)) : null;
  return name ? [name] : [];
}

/** The least string above every string that starts with `prefix`. */
function successor(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
