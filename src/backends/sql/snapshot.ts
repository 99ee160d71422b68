/**
 * Consistent snapshots of the metadata database while it serves, for backups. SQLite: the
 * online backup API copies the file at one instant (a read transaction, so writers go on), and
 * the copy is read at leisure. PostgreSQL: one REPEATABLE READ READ ONLY transaction, each
 * table read through a cursor. Tables come from the database's own catalog, so tables that
 * later migrations add are included without a change here; garbage collection is held off
 * (its lease) until the snapshot's objects have been copied.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import type pg from 'pg';
import type { MetadataSnapshot, SnapshotObject, SnapshotTable, SnapshotValue } from '../../core/snapshot.js';
import { loadPg, type Database } from './database.js';
import { tryAcquireLease, type Lease } from './leases.js';

/** Kysely's own bookkeeping: the migrations list travels separately. */
const MIGRATION_TABLES = new Set(['kysely_migration', 'kysely_migration_lock']);
const FETCH_ROWS = 500;

/** `workDir`: where a SQLite snapshot's copy of the database is kept while it is read (default: the temporary directory). */
export async function openSnapshot(databaseUrl: string, workDir = tmpdir()): Promise<MetadataSnapshot> {
  return /^postgres(ql)?:\/\//.test(databaseUrl) ? postgresSnapshot(databaseUrl) : sqliteSnapshot(databaseUrl.replace(/^sqlite:/, ''), workDir);
}

async function sqliteSnapshot(path: string, workDir: string): Promise<MetadataSnapshot> {
  const dir = await mkdtemp(join(workDir, 'snapshot-'));
  const copyPath = join(dir, 'metadata.db');
  try {
    const source = new SqliteDatabase(path, { fileMustExist: true });
    try {
      source.pragma('busy_timeout = 10000');
      // All remaining pages in one step: one read transaction, one instant.
      await source.backup(copyPath, { progress: () => 0x7fffffff });
    } finally {
      source.close();
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const db = new SqliteDatabase(copyPath, { readonly: true });
  const names = (db.prepare(`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`).pluck().all() as string[]).filter(
    (n) => !MIGRATION_TABLES.has(n),
  );
  const parents = new Map<string, string[]>();
  for (const name of names) {
    parents.set(name, (db.prepare(`select "table" from pragma_foreign_key_list(?)`).pluck().all(name) as string[]));
  }
  const migrations = hasTable(db, 'kysely_migration') ? (db.prepare('select name from kysely_migration order by name').pluck().all() as string[]) : [];
  return {
    engine: 'sqlite',
    migrations,
    async *tables(): AsyncIterable<SnapshotTable> {
      for (const name of dependencyOrder(names, parents)) {
        const columns = db.prepare(`select name from pragma_table_info(?) order by cid`).pluck().all(name) as string[];
        const statement = db.prepare(`select ${columns.map(quote).join(', ')} from ${quote(name)}`).raw(true);
        yield {
          name,
          columns,
          rows: (async function* () {
            for (const row of statement.iterate()) yield row as SnapshotValue[];
          })(),
        };
      }
    },
    async *objects(): AsyncIterable<SnapshotObject> {
      for (const row of db.prepare('select object_key as key, digest, size from blobs where content is null order by object_key').iterate()) yield row as SnapshotObject;
    },
    async close() {
      db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function hasTable(db: SqliteDatabase.Database, name: string): boolean {
  return db.prepare(`select 1 from sqlite_master where type = 'table' and name = ?`).get(name) !== undefined;
}

async function postgresSnapshot(url: string): Promise<MetadataSnapshot> {
  const client = new (await loadPg()).Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('begin isolation level repeatable read read only');
    const names = (
      await client.query<{ table_name: string }>(
        `select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`,
      )
    ).rows
      .map((r) => r.table_name)
      .filter((n) => !MIGRATION_TABLES.has(n));
    const parents = new Map<string, string[]>(names.map((n) => [n, []]));
    const fks = await client.query<{ child: string; parent: string }>(
      `select c.relname as child, p.relname as parent from pg_constraint k
         join pg_class c on c.oid = k.conrelid join pg_class p on p.oid = k.confrelid
         where k.contype = 'f' and k.connamespace = current_schema()::regnamespace`,
    );
    for (const { child, parent } of fks.rows) parents.get(child)?.push(parent);
    const migrations = (
      await client.query<{ name: string }>(
        `select name from kysely_migration where exists (select 1 from information_schema.tables where table_schema = current_schema() and table_name = 'kysely_migration') order by name`,
      ).catch(() => ({ rows: [] as { name: string }[] }))
    ).rows.map((r) => r.name);
    return {
      engine: 'postgres',
      migrations,
      async *tables(): AsyncIterable<SnapshotTable> {
        for (const name of dependencyOrder(names, parents)) {
          const columns = (
            await client.query<{ column_name: string }>(
              `select column_name from information_schema.columns where table_schema = current_schema() and table_name = $1 order by ordinal_position`,
              [name],
            )
          ).rows.map((r) => r.column_name);
          yield { name, columns, rows: cursorRows(client, name, columns) };
        }
      },
      async *objects(): AsyncIterable<SnapshotObject> {
        const rows = cursorRows(client, 'blobs', ['object_key', 'digest', 'size'], 'content is null order by object_key');
        for await (const [key, digest, size] of rows) yield { key: String(key), digest: String(digest), size: Number(size) };
      },
      async close() {
        await client.query('rollback').catch(() => undefined);
        await client.end();
      },
    };
  } catch (err) {
    await client.end();
    throw err;
  }
}

/** A table's rows through a cursor in the snapshot's transaction, a batch at a time. */
async function* cursorRows(client: pg.Client, table: string, columns: string[], where?: string): AsyncIterable<SnapshotValue[]> {
  await client.query(`declare snapshot_rows no scroll cursor for select ${columns.map(quote).join(', ')} from ${quote(table)}${where ? ` where ${where}` : ''}`);
  try {
    for (;;) {
      const batch = await client.query<unknown[]>({ text: `fetch ${FETCH_ROWS} from snapshot_rows`, rowMode: 'array' });
      for (const row of batch.rows) yield row.map(neutral);
      if (batch.rows.length < FETCH_ROWS) return;
    }
  } finally {
    await client.query('close snapshot_rows');
  }
}

/** PostgreSQL values in the snapshot's types: dates as ISO text, JSON as its text, big integers as numbers when exact. */
function neutral(value: unknown): SnapshotValue {
  if (value === null || typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean' || Buffer.isBuffer(value)) return value;
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Date) return value.toISOString();
  return JSON.stringify(value);
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

/** Tables ordered so that each comes after the tables its foreign keys point to (then by name). */
export function dependencyOrder(names: string[], parents: Map<string, string[]>): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string) => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new Error(`foreign keys form a cycle through ${name}`);
    state.set(name, 'visiting');
    for (const parent of [...(parents.get(name) ?? [])].sort()) if (parent !== name && names.includes(parent)) visit(parent);
    state.set(name, 'done');
    order.push(name);
  };
  for (const name of [...names].sort()) visit(name);
  return order;
}

/**
 * Keeps garbage collection from running (it takes the same lease) while a backup copies the
 * objects its snapshot names, so none of them is deleted underneath it. Waits up to `waitMs`
 * for a running collection to finish.
 */
export async function holdCollection(database: Database, waitMs: number): Promise<{ release(): Promise<void> }> {
  const ttl = 60_000;
  const deadline = Date.now() + waitMs;
  let lease: Lease | null;
  while (!(lease = await tryAcquireLease(database, 'gc', ttl))) {
    if (Date.now() > deadline) throw new Error('garbage collection is running; try again when it is done');
    await new Promise((r) => setTimeout(r, 1000));
  }
  const held = lease;
  const renewal = setInterval(() => void held.renew(), ttl / 4);
  renewal.unref();
  return {
    async release() {
      clearInterval(renewal);
      await held.release().catch(() => undefined);
    },
  };
}
