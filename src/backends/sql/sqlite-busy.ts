/**
 * SQLite shared by several processes (`serve --workers N`): a statement that finds another
 * process holding the write lock fails at once (busy_timeout 0) and is run again after an
 * asynchronous, jittered wait, so the event loop keeps serving while it waits. SQLite's own busy
 * handler would sleep inside the synchronous call and stall every request of the process.
 *
 * Only statements outside a transaction are retried: that includes `BEGIN IMMEDIATE`, where
 * writers queue for the lock (Database.tx), and single-statement writes. Inside a transaction the
 * error goes up unchanged (a deferred transaction that cannot upgrade must start over, not spin).
 */
import {
  SqliteDialect,
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type QueryResult,
  type SqliteDialectConfig,
  type TransactionSettings,
} from 'kysely';

export interface BusyRetry {
  /** Whether the connection is inside a transaction now (better-sqlite3's `inTransaction`). */
  inTransaction(): boolean;
  /** Told of every wait (for metrics). Must not throw. */
  waited(): void;
  /** Give up after waiting this long in all (ms); the statement's SQLITE_BUSY goes up. */
  maxWaitMs: number;
}

/** First wait's upper bound (ms); each further wait doubles it up to MAX_STEP_MS. Write transactions are short. */
const FIRST_STEP_MS = 1;
const MAX_STEP_MS = 50;

export class BusyRetryDialect extends SqliteDialect {
  constructor(
    config: SqliteDialectConfig,
    private readonly retry: BusyRetry,
  ) {
    super(config);
  }

  override createDriver(): Driver {
    return new BusyRetryDriver(super.createDriver(), this.retry);
  }
}

export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_'));
}

/** Runs `statement` again while it fails with SQLITE_BUSY outside a transaction, waiting without blocking. */
export async function withBusyRetry<T>(retry: BusyRetry, statement: () => Promise<T>): Promise<T> {
  let step = FIRST_STEP_MS;
  let waitedMs = 0;
  for (;;) {
    try {
      return await statement();
    } catch (err) {
      // SQLITE_BUSY_SNAPSHOT inside a transaction is fixed only by starting the transaction over.
      if (!isBusy(err) || retry.inTransaction() || waitedMs >= retry.maxWaitMs) throw err;
      retry.waited();
      // Full jitter: processes that collided do not wake together and collide again.
      const wait = Math.random() * step;
      waitedMs += wait;
      await new Promise((resolve) => setTimeout(resolve, wait));
      step = Math.min(step * 2, MAX_STEP_MS);
    }
  }
}

class BusyRetryConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    private readonly retry: BusyRetry,
  ) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return withBusyRetry(this.retry, () => this.inner.executeQuery<R>(query));
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

/** SqliteDriver with its one connection wrapped; everything else passes through. */
class BusyRetryDriver implements Driver {
  private connection: BusyRetryConnection | undefined;

  constructor(
    private readonly inner: Driver,
    private readonly retry: BusyRetry,
  ) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await this.inner.acquireConnection();
    if (this.connection?.inner !== inner) this.connection = new BusyRetryConnection(inner, this.retry);
    return this.connection;
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(connection);
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    await this.inner.savepoint?.(connection, name, compile);
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    await this.inner.rollbackToSavepoint?.(connection, name, compile);
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    await this.inner.releaseSavepoint?.(connection, name, compile);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(connection);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}
