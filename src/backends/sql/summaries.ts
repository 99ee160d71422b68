/**
 * Per-repository summary rows (tag and manifest counts, linked blobs, bytes, last push), kept by
 * triggers in the transaction of every change to tags, manifests and repository links, so that
 * list pages read one row per repository instead of aggregating its contents. Triggers rather
 * than code at each writer: every path (pushes, deletes, collection, retention, cache pruning,
 * repository deletion and its cascades, restores, imports, direct loads) is covered by the same
 * definition, and a future writer cannot forget it.
 *
 * Concurrency: each trigger adjusts the row with `n = n + delta` (on PostgreSQL an UPDATE waits
 * for the row and re-reads it, so no increment is lost). On PostgreSQL the triggers are
 * constraint triggers deferred to commit: the summary row is locked last, after every lock the
 * transaction's own statements take (manifest rows, blob links, the event stream), so two
 * transactions can never wait on each other in opposite orders through it; the row is held only
 * from then until the commit completes. The price: commits into one repository queue on its row
 * (as they already do on its event stream when events are on). SQLite has one writer at a time.
 *
 * "Bytes" is defined as the list always computed it: the sizes of the blobs linked into the
 * repository (uploaded or mounted there; each once) plus the sizes of its manifests.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database, Executor } from './database.js';
import type { Dialect, Schema } from './schema.js';

export interface RepositorySummariesTable {
  repository_id: number;
  tags: number;
  manifests: number;
  manifest_bytes: number;
  /** Blobs linked into the repository. */
  blobs: number;
  /** Their sizes, summed. */
  blob_bytes: number;
  /** Latest `pushed_at` of its manifests; null without manifests. */
  last_push: number | null;
}

export const SUMMARY_COLUMNS = ['tags', 'manifests', 'manifest_bytes', 'blobs', 'blob_bytes', 'last_push'] as const;
export type SummaryValues = Record<(typeof SUMMARY_COLUMNS)[number], number | null>;

/**
 * The summary of repository `r` computed from scratch (the definition the triggers maintain):
 * migration 0009 fills the table with it, fsck compares the rows with it.
 */
export function aggregateColumns(r: RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`
    (select count(*) from tags t where t.repository_id = ${r}.id) as tags,
    (select count(*) from manifests m where m.repository_id = ${r}.id) as manifests,
    coalesce((select sum(m.size) from manifests m where m.repository_id = ${r}.id), 0) as manifest_bytes,
    (select count(*) from repository_blobs rb where rb.repository_id = ${r}.id) as blobs,
    coalesce((select sum(b.size) from repository_blobs rb join blobs b on b.id = rb.blob_id where rb.repository_id = ${r}.id), 0) as blob_bytes,
    (select max(m.pushed_at) from manifests m where m.repository_id = ${r}.id) as last_push`;
}

/** Migration 0009: the table, its triggers, and the rows of the repositories already there. */
export async function createRepositorySummaries(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const int = pg ? sql`bigint` : sql`integer`;
  const create = db.schema
    .createTable('repository_summaries')
    .addColumn('repository_id', int, (c) => c.primaryKey().references('repositories.id').onDelete('cascade'))
    .addColumn('tags', int, (c) => c.notNull().defaultTo(0))
    .addColumn('manifests', int, (c) => c.notNull().defaultTo(0))
    .addColumn('manifest_bytes', int, (c) => c.notNull().defaultTo(0))
    .addColumn('blobs', int, (c) => c.notNull().defaultTo(0))
    .addColumn('blob_bytes', int, (c) => c.notNull().defaultTo(0))
    .addColumn('last_push', int);
  const fill = sql`insert into repository_summaries (repository_id, tags, manifests, manifest_bytes, blobs, blob_bytes, last_push)
    select r.id, ${aggregateColumns(sql`r`)} from repositories r
    where true -- (SQLite: an upsert's SELECT needs a WHERE to parse)
    on conflict (repository_id) do nothing`;
  if (pg) {
    // One transaction (the migrator's): creating the triggers locks the tables against writes
    // until commit, so the fill counts exactly what the triggers will not.
    await create.execute();
    for (const statement of POSTGRES_TRIGGERS) await sql.raw(statement).execute(db);
    await fill.execute(db);
    // A list page walks the name index joined to the summaries while the planner expects more
    // matches than the page holds; with the default 100 histogram buckets it estimated a prefix
    // of 1,000 names (of 100,000) at 13, and read and sorted all of them instead.
    await sql`alter table repositories alter column name set statistics 1000`.execute(db);
    // Not on an empty table: statistics saying "no rows" make the planner scan it whole (a
    // sequential scan per foreign-key check into it) until autovacuum looks again, where a
    // table never analyzed gets index lookups.
    const rows = await sql<{ any: boolean }>`select exists (select 1 from repositories) as any`.execute(db);
    if (rows.rows[0]?.any) {
      await sql`analyze repositories`.execute(db);
      await sql`analyze repository_summaries`.execute(db);
    }
    return;
  }
  // SQLite migrations run outside a transaction: take the write lock for all of it.
  await sql`begin immediate`.execute(db);
  try {
    await create.execute();
    for (const statement of SQLITE_TRIGGERS) await sql.raw(statement).execute(db);
    await fill.execute(db);
    await sql`commit`.execute(db);
  } catch (err) {
    await sql`rollback`.execute(db).catch(() => {});
    throw err;
  }
}

/** The latest push left in a repository, after its latest one went or moved back. */
const LATEST = (id: string) => `(select max(pushed_at) from manifests where repository_id = ${id})`;

const SQLITE_TRIGGERS = [
  `create trigger repositories_summary after insert on repositories begin
     insert into repository_summaries (repository_id) values (new.id);
   end`,
  `create trigger manifests_summary_insert after insert on manifests begin
     update repository_summaries set manifests = manifests + 1, manifest_bytes = manifest_bytes + new.size,
       last_push = max(coalesce(last_push, new.pushed_at), new.pushed_at)
     where repository_id = new.repository_id;
   end`,
  `create trigger manifests_summary_delete after delete on manifests begin
     update repository_summaries set manifests = manifests - 1, manifest_bytes = manifest_bytes - old.size,
       last_push = case when old.pushed_at >= last_push then ${LATEST('old.repository_id')} else last_push end
     where repository_id = old.repository_id;
   end`,
  `create trigger manifests_summary_push after update of pushed_at on manifests begin
     update repository_summaries set last_push = case
         when new.pushed_at >= coalesce(last_push, new.pushed_at) then new.pushed_at
         when old.pushed_at >= last_push then ${LATEST('new.repository_id')}
         else last_push end
     where repository_id = new.repository_id;
   end`,
  `create trigger tags_summary_insert after insert on tags begin
     update repository_summaries set tags = tags + 1 where repository_id = new.repository_id;
   end`,
  `create trigger tags_summary_delete after delete on tags begin
     update repository_summaries set tags = tags - 1 where repository_id = old.repository_id;
   end`,
  // A link's blob row outlives it (links reference blobs), so its size is there to read.
  `create trigger repository_blobs_summary_insert after insert on repository_blobs begin
     update repository_summaries set blobs = blobs + 1, blob_bytes = blob_bytes + (select size from blobs where id = new.blob_id)
     where repository_id = new.repository_id;
   end`,
  `create trigger repository_blobs_summary_delete after delete on repository_blobs begin
     update repository_summaries set blobs = blobs - 1, blob_bytes = blob_bytes - (select size from blobs where id = old.blob_id)
     where repository_id = old.repository_id;
   end`,
];

const POSTGRES_TRIGGERS = [
  `create function repository_summaries_create() returns trigger language plpgsql as $$
   begin
     insert into repository_summaries (repository_id) values (new.id);
     return null;
   end $$`,
  `create trigger repositories_summary after insert on repositories for each row execute function repository_summaries_create()`,
  // The recount of the latest push runs only after the UPDATE has locked the row, as a
  // statement of its own: its fresh snapshot sees every transaction that changed the row before.
  `create function repository_summaries_manifests() returns trigger language plpgsql as $$
   declare latest bigint;
   begin
     if tg_op = 'INSERT' then
       update repository_summaries set manifests = manifests + 1, manifest_bytes = manifest_bytes + new.size,
         last_push = greatest(last_push, new.pushed_at)
       where repository_id = new.repository_id;
     elsif tg_op = 'DELETE' then
       update repository_summaries set manifests = manifests - 1, manifest_bytes = manifest_bytes - old.size
       where repository_id = old.repository_id returning last_push into latest;
       if found and old.pushed_at >= latest then
         update repository_summaries set last_push = ${LATEST('old.repository_id')} where repository_id = old.repository_id;
       end if;
     else
       update repository_summaries set last_push = greatest(last_push, new.pushed_at)
       where repository_id = new.repository_id returning last_push into latest;
       if found and new.pushed_at < old.pushed_at and old.pushed_at >= latest then
         update repository_summaries set last_push = ${LATEST('new.repository_id')} where repository_id = new.repository_id;
       end if;
     end if;
     return null;
   end $$`,
  `create constraint trigger manifests_summary after insert or delete or update of pushed_at on manifests
     deferrable initially deferred for each row execute function repository_summaries_manifests()`,
  `create function repository_summaries_tags() returns trigger language plpgsql as $$
   begin
     if tg_op = 'INSERT' then
       update repository_summaries set tags = tags + 1 where repository_id = new.repository_id;
     else
       update repository_summaries set tags = tags - 1 where repository_id = old.repository_id;
     end if;
     return null;
   end $$`,
  `create constraint trigger tags_summary after insert or delete on tags
     deferrable initially deferred for each row execute function repository_summaries_tags()`,
  // Deferred, the trigger reads the blob's size at commit: no transaction deletes a link and its
  // blob row together (collection deletes blob rows in statements of their own), and one that
  // did would fail here rather than leave a wrong sum.
  `create function repository_summaries_links() returns trigger language plpgsql as $$
   declare
     link repository_blobs;
     sign int;
     bytes bigint;
   begin
     if tg_op = 'INSERT' then link := new; sign := 1; else link := old; sign := -1; end if;
     select size into bytes from blobs where id = link.blob_id;
     if not found then
       raise exception 'repository summary: blob % of repository % is gone', link.blob_id, link.repository_id;
     end if;
     update repository_summaries set blobs = blobs + sign, blob_bytes = blob_bytes + sign * bytes
     where repository_id = link.repository_id;
     return null;
   end $$`,
  `create constraint trigger repository_blobs_summary after insert or delete on repository_blobs
     deferrable initially deferred for each row execute function repository_summaries_links()`,
];

/** The PostgreSQL triggers that adjust a summary row once per changed row, by table. */
const ROW_TRIGGERS = [
  ['manifests', 'manifests_summary'],
  ['tags', 'tags_summary'],
  ['repository_blobs', 'repository_blobs_summary'],
] as const;

/**
 * Runs a bulk load (the generator's groups, a restore) in `trx` with the per-row summary
 * triggers off, then recounts the summaries of the repositories `recount` names from the
 * result (`all`: every one) in the same transaction. A PostgreSQL transaction that updates one
 * row N times leaves N versions that every later update of the row walks, so per-row triggers
 * make a load into one repository quadratic (10,000 tags: three minutes). Turning triggers off
 * is transactional, and holds off other writers of the three tables (not readers) until the
 * commit. SQLite updates the row in place: its triggers stay on.
 */
export async function bulkLoad<T>(trx: Executor, dialect: Dialect, work: () => Promise<T>, recount: (result: T) => readonly number[] | 'all'): Promise<T> {
  if (dialect !== 'postgres') return work();
  // A restore loads at the backup's migration, which may predate the summaries.
  const present = await sql<{ t: string | null }>`select to_regclass('repository_summaries')::text as t`.execute(trx);
  if (!present.rows[0]?.t) return work();
  for (const [table, trigger] of ROW_TRIGGERS) await sql`alter table ${sql.table(table)} disable trigger ${sql.ref(trigger)}`.execute(trx);
  const result = await work();
  const which = recount(result);
  if (which === 'all' || which.length > 0) {
    await sql`update repository_summaries as s set (${sql.join(SUMMARY_COLUMNS.map((c) => sql.ref(c)))}) =
      (select ${aggregateColumns(sql`r`)} from repositories r where r.id = s.repository_id)
      ${which === 'all' ? sql`` : sql`where s.repository_id = any(${[...which]}::bigint[])`}`.execute(trx);
  }
  for (const [table, trigger] of ROW_TRIGGERS) await sql`alter table ${sql.table(table)} enable trigger ${sql.ref(trigger)}`.execute(trx);
  return result;
}

export interface SummaryCheck {
  repositoryId: number;
  name: string;
  /** `column: stored → actual` for each column that differs (or `no summary row`); empty when exact. */
  differences: string[];
}

/**
 * Every repository's summary row against a count from scratch, `page` repositories per
 * statement. Each statement reads the row and the count in one snapshot, so concurrent writes
 * (whose triggers commit with them) cannot make a correct row look wrong.
 */
export async function* checkSummaries(db: Kysely<Schema>, page = 200): AsyncGenerator<SummaryCheck> {
  for (let after = -1; ; ) {
    const rows = await sql<Record<string, number | string | null> & { id: number; name: string; present: number | string }>`
      select r.id, r.name, case when s.repository_id is null then 0 else 1 end as present,
        ${sql.join(SUMMARY_COLUMNS.map((c) => sql`s.${sql.ref(c)} as ${sql.ref(`stored_${c}`)}`))},
        ${aggregateColumns(sql`r`)}
      from repositories r left join repository_summaries s on s.repository_id = r.id
      where r.id > ${after}
      order by r.id
      limit ${page}`.execute(db);
    for (const row of rows.rows) {
      const num = (v: number | string | null | undefined) => (v === null || v === undefined ? null : Number(v));
      const differences = Number(row.present)
        ? SUMMARY_COLUMNS.filter((c) => num(row[`stored_${c}`]) !== num(row[c])).map((c) => `${c}: ${num(row[`stored_${c}`])} → ${num(row[c])}`)
        : ['no summary row'];
      yield { repositoryId: Number(row.id), name: row.name, differences };
    }
    const last = rows.rows[rows.rows.length - 1];
    if (!last || rows.rows.length < page) return;
    after = Number(last.id);
  }
}

/** Recounts one repository's summary from scratch, under its row lock (the triggers' deltas of transactions still open apply on top). */
export async function recountSummary(database: Database, repositoryId: number): Promise<void> {
  await database.tx(async (trx) => {
    await sql`insert into repository_summaries (repository_id) values (${repositoryId}) on conflict (repository_id) do nothing`.execute(trx);
    if (database.postgres) await sql`select 1 from repository_summaries where repository_id = ${repositoryId} for update`.execute(trx);
    // A statement after the lock: on PostgreSQL its snapshot holds every commit that changed the row.
    await sql`update repository_summaries set (${sql.join(SUMMARY_COLUMNS.map((c) => sql.ref(c)))}) =
      (select ${aggregateColumns(sql`r`)} from repositories r where r.id = ${repositoryId})
      where repository_id = ${repositoryId}`.execute(trx);
  });
}
