/**
 * Builds a registry backend from the engine flags shared by every command: metadata in SQLite
 * (default, in the data directory) or PostgreSQL; bytes on the filesystem (default) or in S3.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Database, redact } from '../backends/sql/database.js';
import { SqlRegistry } from '../backends/sql/registry.js';
import { FsObjectStore } from '../backends/objects/fs-store.js';
import type { ObjectStore } from '../backends/objects/object-store.js';
import type { EventRouting } from '../core/events.js';
import type { StorageObserver } from '../core/observer.js';

export interface EngineOptions {
  dataDir: string;
  databaseUrl?: string;
  storage?: string;
  uploadTtlMs: number;
  maxBlobBytes?: number;
  /** Blobs up to this size live in their database row (see SqlRegistryOptions). */
  inlineBlobBytes?: number;
  sqliteSync?: 'FULL' | 'NORMAL';
  /** Answer blob GETs with a redirect to a presigned URL valid this long (ms), where the store can. */
  redirectMs?: number;
  /** Run pending migrations (serve and migrate do; read-only tools need not). */
  migrate: boolean;
  /** Told about transaction retries (metrics). */
  observer?: StorageObserver;
  /** Which event sinks get which events of the changes this process makes. */
  events?: EventRouting;
}

export interface Engine {
  registry: SqlRegistry;
  database: Database;
  objects: ObjectStore;
  /** `sqlite:PATH` or the PostgreSQL URL. */
  databaseUrl: string;
  /** Where metadata and blobs are, in words: `SQLite at PATH`, `PostgreSQL at URL` (password hidden), `files in DIR`, `S3 bucket s3://…`. */
  describe: { database: string; storage: string };
}

export async function openEngine(options: EngineOptions): Promise<Engine> {
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true });
  const databaseUrl = options.databaseUrl || `sqlite:${join(dataDir, 'metadata.db')}`;
  const objects = await openObjectStore(options.storage, dataDir);
  if (options.redirectMs && !objects.presignRead) {
    await objects.close();
    throw new Error(`--blob-redirect needs an object store that can presign URLs (s3://…), not ${objects.description}`);
  }
  let database: Database;
  try {
    database = await Database.open({ url: databaseUrl, sqliteSync: options.sqliteSync, observer: options.observer });
  } catch (err) {
    await objects.close();
    throw err;
  }
  if (options.migrate) {
    try {
      await database.migrate();
    } catch (err) {
      await database.close();
      await objects.close();
      throw err;
    }
  }
  const registry = new SqlRegistry(database, objects, {
    uploadTtlMs: options.uploadTtlMs,
    maxBlobBytes: options.maxBlobBytes,
    inlineBlobBytes: options.inlineBlobBytes,
    maxPageSize: 10_000,
    redirectSeconds: options.redirectMs ? Math.max(1, Math.round(options.redirectMs / 1000)) : undefined,
  });
  if (options.events) registry.routeEvents(options.events);
  return {
    registry,
    database,
    objects,
    databaseUrl,
    describe: {
      database: database.postgres ? `PostgreSQL at ${redact(databaseUrl)}` : `SQLite at ${databaseUrl.replace(/^sqlite:/, '')}`,
      storage: objects.description.startsWith('file:') ? `files in ${objects.description.slice('file:'.length)}` : `S3 bucket ${objects.description}`,
    },
  };
}

async function openObjectStore(storage: string | undefined, dataDir: string): Promise<ObjectStore> {
  if (!storage || storage.startsWith('file:')) {
    const path = storage ? storage.replace(/^file:(\/\/)?/, '') : join(dataDir, 'objects');
    return FsObjectStore.open(resolve(path));
  }
  if (storage.startsWith('s3://')) {
    // Loaded on demand: the AWS SDK is large and the embedded default never needs it.
    const { createS3ObjectStore } = await import('../backends/objects/s3-store.js');
    return createS3ObjectStore(storage);
  }
  throw new Error(`unsupported --storage ${JSON.stringify(storage)}: use s3://BUCKET[/PREFIX] or file:PATH`);
}
