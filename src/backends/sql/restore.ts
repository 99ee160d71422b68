/**
 * Loads a snapshot's rows into an empty store of either engine: the schema is brought to the
 * snapshot's migration, every table is filled in one transaction (foreign keys checked as rows
 * go in, parents first), PostgreSQL's id sequences are moved past the restored ids, and only
 * then do later migrations of this build run.
 */
import { Migrator, sql, type Kysely } from 'kysely';
import type { RestoreInput, SnapshotValue } from '../../core/snapshot.js';
import type { Database, Executor } from './database.js';
import { migrations } from './schema.js';
import { bulkLoad } from './summaries.js';

/** State that means nothing outside the process that held it: open upload sessions, leases. */
export const TRANSIENT_TABLES: ReadonlySet<string> = new Set(['uploads', 'upload_chunks', 'leases']);
/**
 * Rows computed from other tables: recounted once the tables are loaded (summaries.ts
 * `bulkLoad`), or filled by migration 0009 when the backup is older, so the backup's copies are
 * not loaded.
 */
export const DERIVED_TABLES: ReadonlySet<string> = new Set(['repository_summaries']);

const BATCH_VALUES = 20_000;
const BATCH_BYTES = 8 * 1024 * 1024;

export interface RestoreReport {
  tables: { name: string; rows: number }[];
  skipped: string[];
  migrated: string[];
}

export async function restoreSnapshot(database: Database, input: RestoreInput): Promise<RestoreReport> {
  const known = migrations(database.dialect);
  const unknown = input.migrations.filter((m) => !(m in known));
  if (unknown.length) throw new Error(`the backup's schema is newer than this Portfolio (${unknown.join(', ')}): restore with a newer version`);
  const migrator = new Migrator({ db: database.db as unknown as Kysely<unknown>, provider: { getMigrations: async () => known } });
  const applied = (await migrator.getMigrations()).filter((m) => m.executedAt !== undefined).map((m) => m.name);
  if (applied.length === 0) {
    const last = input.migrations.at(-1);
    if (last) await check(migrator.migrateTo(last));
  } else if (applied.join() !== input.migrations.join()) {
    throw new Error(`the store's schema (${applied.at(-1)}) differs from the backup's (${input.migrations.at(-1) ?? 'none'}): restore into a new, empty store`);
  }
  const report: RestoreReport = { tables: [], skipped: [], migrated: [] };
  // PostgreSQL: one plain transaction, not the retrying runner (a conflict in an empty store is a bad backup, not a race).
  const inOneTransaction = <T>(work: (trx: Executor) => Promise<T>) => (database.postgres ? database.db.transaction().execute(work) : database.tx(work));
  await inOneTransaction((trx) => bulkLoad(trx, database.dialect, () => loadTables(trx), () => 'all'));
  report.migrated = await check(migrator.migrateToLatest());
  return report;

  async function loadTables(trx: Executor): Promise<void> {
    for await (const table of input.tables()) {
      if (TRANSIENT_TABLES.has(table.name) || DERIVED_TABLES.has(table.name)) {
        report.skipped.push(table.name);
        for await (const _row of table.rows) void _row;
        continue;
      }
      const present = await columnsOf(trx, database.dialect, table.name);
      if (present.length === 0) throw new Error(`the store has no table ${table.name}`);
      const missing = table.columns.filter((c) => !present.includes(c));
      if (missing.length) throw new Error(`table ${table.name} has no column ${missing.join(', ')}`);
      const any = await sql`select 1 from ${sql.table(table.name)} limit 1`.execute(trx);
      if (any.rows.length) throw new Error(`the store is not empty (table ${table.name} has rows): restore into a new, empty store`);
      let rows = 0;
      let batch: SnapshotValue[][] = [];
      let bytes = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const values = batch.map((row) => sql`(${sql.join(row.map((v) => (typeof v === 'boolean' && database.dialect === 'sqlite' ? Number(v) : v)))})`);
        await sql`insert into ${sql.table(table.name)} (${sql.join(table.columns.map((c) => sql.ref(c)))}) values ${sql.join(values)}`.execute(trx);
        batch = [];
        bytes = 0;
      };
      for await (const row of table.rows) {
        if (row.length !== table.columns.length) throw new Error(`table ${table.name}: a row of ${row.length} values for ${table.columns.length} columns`);
        batch.push(row);
        rows++;
        for (const v of row) bytes += Buffer.isBuffer(v) ? v.length : typeof v === 'string' ? v.length : 8;
        if ((batch.length + 1) * table.columns.length > BATCH_VALUES || bytes > BATCH_BYTES) await flush();
      }
      await flush();
      report.tables.push({ name: table.name, rows });
    }
    if (database.postgres) await resetSequences(trx);
  }
}

async function check(run: Promise<{ error?: unknown; results?: readonly { migrationName: string; status: string }[] }>): Promise<string[]> {
  const { error, results } = await run;
  if (error) throw new Error(`database migration failed: ${(error as Error).message ?? String(error)}`);
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

async function columnsOf(trx: Executor, dialect: string, table: string): Promise<string[]> {
  const rows =
    dialect === 'postgres'
      ? await sql<{ name: string }>`select column_name as name from information_schema.columns where table_schema = current_schema() and table_name = ${table}`.execute(trx)
      : await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(trx);
  return rows.rows.map((r) => r.name);
}

/** Every serial column's sequence continues after the largest restored value. */
async function resetSequences(trx: Executor): Promise<void> {
  const serials = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns
    where table_schema = current_schema() and column_default like 'nextval(%'`.execute(trx);
  for (const { table_name, column_name } of serials.rows) {
    await sql`select setval(pg_get_serial_sequence(${table_name}, ${column_name}), coalesce((select max(${sql.ref(column_name)}) from ${sql.table(table_name)}), 0) + 1, false)`.execute(trx);
  }
}
