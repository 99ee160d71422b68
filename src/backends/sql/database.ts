/**
 * Opens the metadata database (SQLite file or PostgreSQL URL), runs migrations, and provides
 * the transaction runner. Everything that differs between the two engines at run time is here.
 */
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, sql, type SqliteDatabase as SqliteDialectDatabase, type Transaction } from 'kysely';
import type pg from 'pg';
import type { StorageObserver } from '../../core/observer.js';
import { migrations, type Dialect, type Schema } from './schema.js';
import { BusyRetryDialect } from './sqlite-busy.js';

/** The PostgreSQL client, loaded on first use: a SQLite server never holds it. */
export async function loadPg(): Promise<typeof pg> {
  const { default: client } = await import('pg');
  // int8 columns (sizes, times, ids) fit in a double; read them as numbers on PostgreSQL too.
  client.types.setTypeParser(20, (value) => Number(value));
  return client;
}

/** Advisory lock key that serializes schema migrations across replicas. */
const MIGRATION_LOCK = 0x706f7274;
/** How long a SQLite statement waits in all for another process's write lock before failing (ms). */
const SQLITE_BUSY_MAX_WAIT_MS = 10_000;

export type Executor = Kysely<Schema> | Transaction<Schema>;

export interface DatabaseOptions {
  /** `sqlite:PATH` style path to a SQLite file, or a postgres:// URL. */
  url: string;
  /**
   * SQLite synchronous mode (WAL). NORMAL: a commit survives any process crash, but the last
   * ones may roll back on power loss (never half-applied; the bytes they named were fsynced
   * first, so nothing ever points at missing bytes). FULL: also survives power loss, at an
   * fsync per commit on the event loop.
   */
  sqliteSync?: 'FULL' | 'NORMAL';
  poolSize?: number;
  /** Told about transaction retries (for metrics). */
  observer?: StorageObserver;
}

export class Database {
  private constructor(
    readonly db: Kysely<Schema>,
    readonly dialect: Dialect,
    private readonly observer: StorageObserver | undefined,
    /** The SQLite handle (absent on PostgreSQL). */
    private readonly sqlite?: SqliteDatabase.Database,
  ) {}

  static async open(options: DatabaseOptions): Promise<Database> {
    if (/^postgres(ql)?:\/\//.test(options.url)) {
      const pg = await loadPg();
      const pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 16 });
      // A dead connection in the pool must not take the process down.
      pool.on('error', () => {});
      const client = await pool.connect().catch((err: Error) => {
        throw new Error(`cannot connect to PostgreSQL at ${redact(options.url)}: ${err.message}`);
      });
      client.release();
      return new Database(new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) }), 'postgres', options.observer);
    }
    const path = options.url.replace(/^sqlite:/, '');
    let sqlite: SqliteDatabase.Database;
    try {
      sqlite = new SqliteDatabase(path);
    } catch (err) {
      throw new Error(`cannot open SQLite database ${path}: ${(err as Error).message}`);
    }
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma(`synchronous = ${options.sqliteSync ?? 'NORMAL'}`);
    sqlite.pragma('foreign_keys = ON');
    // Never a synchronous busy-wait: a statement that meets another process's write lock is
    // retried asynchronously (sqlite-busy.ts), so the event loop serves on while it waits.
    sqlite.pragma('busy_timeout = 0');
    const dialect = new BusyRetryDialect(
      { database: withStatementCache(sqlite) },
      { inTransaction: () => sqlite.inTransaction, waited: () => options.observer?.busyWaited?.(), maxWaitMs: SQLITE_BUSY_MAX_WAIT_MS },
    );
    return new Database(new Kysely<Schema>({ dialect }), 'sqlite', options.observer, sqlite);
  }

  get postgres(): boolean {
    return this.dialect === 'postgres';
  }

  /** Brings the schema up to date; concurrent callers (replicas starting together) serialize on a lock. */
  async migrate(): Promise<string[]> {
    const all = migrations(this.dialect);
    const migrator = new Migrator({ db: this.db, provider: { getMigrations: async () => all } });
    const run = () => migrator.migrateToLatest();
    // Replicas starting together: one migrates, the others wait and then find nothing to do.
    const { error, results } = this.postgres
      ? await this.db.connection().execute(async (conn) => {
          await sql`select pg_advisory_lock(${MIGRATION_LOCK})`.execute(conn);
          try {
            return await run();
          } finally {
            await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`.execute(conn);
          }
        })
      : await this.withSqliteBusyTimeout(run);
    if (error) throw new Error(`database migration failed: ${(error as Error).message ?? String(error)}`);
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  }

  /**
   * Migrations run deferred transactions (Kysely's migrator), which cannot be retried statement by
   * statement: they wait in SQLite's own busy handler instead, once, at start-up.
   */
  private async withSqliteBusyTimeout<T>(work: () => Promise<T>): Promise<T> {
    this.sqlite?.pragma(`busy_timeout = ${SQLITE_BUSY_MAX_WAIT_MS}`);
    try {
      return await work();
    } finally {
      this.sqlite?.pragma('busy_timeout = 0');
    }
  }

  /** Names of the migrations this build knows that the database has not applied yet. */
  async pendingMigrations(): Promise<string[]> {
    const all = migrations(this.dialect);
    const migrator = new Migrator({ db: this.db, provider: { getMigrations: async () => all } });
    return (await migrator.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name);
  }

  /**
   * Runs `work` in one transaction. SQLite takes the write lock up front (BEGIN IMMEDIATE), so
   * processes sharing the file queue (waiting asynchronously, sqlite-busy.ts) instead of failing
   * on a lock upgrade; PostgreSQL retries
   * serialization failures, deadlocks and unique-key races, which `work` must tolerate by
   * re-reading its state.
   */
  async tx<T>(work: (trx: Executor) => Promise<T>): Promise<T> {
    if (this.dialect === 'sqlite') {
      return this.db.connection().execute(async (conn) => {
        await sql`begin immediate`.execute(conn);
        try {
          const result = await work(conn);
          await sql`commit`.execute(conn);
          return result;
        } catch (err) {
          await sql`rollback`.execute(conn).catch(() => {});
          throw err;
        }
      });
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute(work);
      } catch (err) {
        if (attempt >= 8 || !isRetryable(err)) throw err;
        this.observer?.transactionRetried();
        await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
      }
    }
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/**
 * Kysely prepares every query anew; preparing costs more than running most of ours. The
 * registry issues a small, fixed set of SQL texts, so prepared statements are kept by text.
 */
function withStatementCache(sqlite: SqliteDatabase.Database): SqliteDialectDatabase {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      let statement = statements.get(text);
      if (!statement) {
        statement = sqlite.prepare(text);
        // Texts with variable-length IN lists vary; keep the cache bounded.
        if (statements.size >= 2000) statements.clear();
        statements.set(text, statement);
      }
      return statement as unknown as ReturnType<SqliteDialectDatabase['prepare']>;
    },
  };
}

function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === '40001' || code === '40P01' || code === '23505' || code === '23503';
}

/** True when the error is a unique-key violation (a concurrent insert of the same row). */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** True when the error is a NOT NULL violation. */
export function isNotNullViolation(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === '23502' || code === 'SQLITE_CONSTRAINT_NOTNULL';
}

/** True when the error is a foreign-key violation (a row it refers to went away meanwhile). */
export function isForeignKeyViolation(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY';
}

export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}
