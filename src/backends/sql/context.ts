/** What the SQL stores share: the database, the object store, settings and the repository lookups. */
import type { RepositoryName } from '../../core/names.js';
import type { ObjectStore } from '../objects/object-store.js';
import type { Database, Executor } from './database.js';
import type { Outbox } from './events.js';
import type { HashCache } from './hash-cache.js';
import type { PullLog } from './pulls.js';
import { prepare } from './prepared.js';
import type { Dialect } from './schema.js';

export interface SqlRegistryOptions {
  /** How long an idle upload session lives (ms). */
  uploadTtlMs: number;
  /** Largest accepted blob (bytes); undefined means no limit. */
  maxBlobBytes?: number;
  /** Largest page a list endpoint returns when the client asks for more or names no size. */
  maxPageSize: number;
  /**
   * Blobs up to this size (bytes) are kept in their database row instead of the object store:
   * one commit instead of an object write and sync. 0 or undefined keeps every blob in the store.
   */
  inlineBlobBytes?: number;
  /** Send blob GETs to a presigned object-store URL valid this long (seconds), where the store can. */
  redirectSeconds?: number;
}

export interface Context {
  database: Database;
  objects: ObjectStore;
  options: SqlRegistryOptions;
  /** Running digests of uploads this process is writing (see hash-cache.ts). */
  hashes: HashCache;
  /** Where changes record their events, in their own transaction. */
  events: Outbox;
  /** Last-pulled times, written in batches (retention). */
  pulls?: PullLog;
}

export async function findRepositoryId(exec: Executor, dialect: Dialect, name: RepositoryName): Promise<number | null> {
  return (await REPOSITORY_ID.first(exec, dialect, name))?.id ?? null;
}

export async function ensureRepositoryId(exec: Executor, dialect: Dialect, name: RepositoryName): Promise<number> {
  const existing = await findRepositoryId(exec, dialect, name);
  if (existing !== null) return existing;
  await CREATE_REPOSITORY.execute(exec, dialect, name, Date.now());
  const id = await findRepositoryId(exec, dialect, name);
  if (id === null) throw new Error(`repository ${name} vanished while being created`);
  return id;
}

const REPOSITORY_ID = prepare((exec, _pg, name: string) => exec.selectFrom('repositories').select('id').where('name', '=', name));

const CREATE_REPOSITORY = prepare((exec, _pg, name: string, now: number) =>
  exec
    .insertInto('repositories')
    .values({ name, created_at: now })
    .onConflict((oc) => oc.column('name').doNothing()),
);

/** Keyset paging over a sorted text column: fetch one extra row to learn whether more remain. */
export function pageOf(rows: { name: string }[], limit: number): { items: string[]; more: boolean } {
  const more = rows.length > limit;
  return { items: rows.slice(0, limit).map((r) => r.name), more };
}

export function pageLimit(requested: number | undefined, max: number): number {
  return requested === undefined ? max : Math.min(requested, max);
}
