/**
 * `portfolio backup` and `portfolio restore`. A backup is a consistent snapshot of the metadata
 * (taken while serving) plus the objects it names, copied (each checked against its digest on
 * the way) or only listed for the operator's own bucket replication. Garbage collection waits
 * until the objects are copied. A restore puts the objects in first and then the rows, so
 * nothing ever points at missing bytes.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHasher, digestAlgorithm, finishDigest, parseDigest } from '../../core/digest.js';
import type { SnapshotObject } from '../../core/snapshot.js';
import type { ObjectStore } from '../../backends/objects/object-store.js';
import { holdCollection, openSnapshot } from '../../backends/sql/snapshot.js';
import { restoreSnapshot, type RestoreReport } from '../../backends/sql/restore.js';
import type { Engine } from '../engine.js';
import {
  BACKUP_FORMAT,
  BACKUP_VERSION,
  backupObjects,
  backupTables,
  encodeValue,
  readManifest,
  stagingDirectory,
  writeLines,
  type BackupManifest,
} from './backup-format.js';
import type { Progress } from './progress.js';

export interface BackupOptions {
  dest: string;
  objects: 'copy' | 'list';
  /** How long to wait for a running garbage collection. */
  waitMs: number;
  progress?: Progress;
}

export async function backup(engine: Engine, options: BackupOptions): Promise<BackupManifest> {
  const staging = await stagingDirectory(options.dest);
  const hold = await holdCollection(engine.database, options.waitMs);
  try {
    // The SQLite copy sits beside the backup (same file system, same free space), removed once read.
    const snapshot = await openSnapshot(engine.databaseUrl, staging.path);
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      created: new Date().toISOString(),
      engine: snapshot.engine,
      migrations: snapshot.migrations,
      tables: [],
      objects: { mode: options.objects, count: 0, bytes: 0, file: 'objects.jsonl', directory: options.objects === 'copy' ? 'objects' : null },
    };
    try {
      for await (const table of snapshot.tables()) {
        const file = `tables/${table.name}.jsonl`;
        const rows = await writeLines(
          join(staging.path, file),
          (async function* () {
            for await (const row of table.rows) yield row.map(encodeValue);
          })(),
        );
        manifest.tables.push({ name: table.name, columns: table.columns, rows, file });
        options.progress?.item();
      }
      let total = 0;
      await writeLines(
        join(staging.path, manifest.objects.file),
        (async function* () {
          for await (const object of snapshot.objects()) {
            total += object.size;
            yield object;
          }
        })(),
      );
      options.progress?.expect(total);
    } finally {
      // The database snapshot is no longer needed: the objects it names stay, collection being held off.
      await snapshot.close();
    }
    for await (const object of backupObjects(staging.path, manifest)) {
      if (options.objects === 'copy') await copyOut(engine.objects, object, join(staging.path, 'objects', object.key), options.progress);
      manifest.objects.count++;
      manifest.objects.bytes += object.size;
      options.progress?.item();
    }
    await staging.commit(manifest);
    return manifest;
  } catch (err) {
    await staging.abort();
    throw err;
  } finally {
    await hold.release();
  }
}

/** Copies an object to a file, checking its size and digest. */
async function copyOut(store: ObjectStore, object: SnapshotObject, path: string, progress: Progress | undefined): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const digest = parseDigest(object.digest);
  const hash = createHasher(digestAlgorithm(digest));
  let size = 0;
  const check = new Transform({
    transform(chunk: Buffer, _e, done) {
      hash.update(chunk);
      size += chunk.length;
      progress?.bytes(chunk.length);
      done(null, chunk);
    },
  });
  await pipeline(await store.read(object.key), check, createWriteStream(path));
  if (size !== object.size) throw new Error(`object ${object.key} has ${size} bytes, its blob ${object.size}`);
  const got = finishDigest(digestAlgorithm(digest), hash);
  if (got !== digest) throw new Error(`object ${object.key} does not match its digest ${digest} (got ${got})`);
}

export interface RestoreSummary extends RestoreReport {
  objects: { copied: number; present: number; bytes: number };
}

export async function restore(engine: Engine, src: string, progress?: Progress): Promise<RestoreSummary> {
  const manifest = await readManifest(src);
  progress?.expect(manifest.objects.bytes);
  const objects = { copied: 0, present: 0, bytes: 0 };
  const missing: string[] = [];
  for await (const object of backupObjects(src, manifest)) {
    const there = await engine.objects.stat(object.key);
    if (there && there.size === object.size) {
      objects.present++;
      progress?.skipped(object.size);
      continue;
    }
    if (manifest.objects.mode === 'list') {
      missing.push(object.key);
      continue;
    }
    const file = join(src, manifest.objects.directory ?? 'objects', object.key);
    const size = (await stat(file)).size;
    if (size !== object.size) throw new Error(`${file}: ${size} bytes, the backup lists ${object.size}`);
    const state = await engine.objects.beginUpload(object.key);
    try {
      const body = createReadStream(file);
      if (progress) body.on('end', () => progress.bytes(size));
      const written = await engine.objects.appendUpload(object.key, state, 0, body);
      await engine.objects.completeUpload(object.key, written.state, size);
    } catch (err) {
      await engine.objects.abortUpload(object.key, state).catch(() => undefined);
      throw err;
    }
    objects.copied++;
    objects.bytes += size;
    progress?.item();
  }
  if (missing.length) {
    throw new Error(
      `${missing.length} objects the backup lists are not in ${engine.describe.storage} (first: ${missing[0]}); copy them there first (the backup only listed them)`,
    );
  }
  const report = await restoreSnapshot(engine.database, { migrations: manifest.migrations, tables: () => backupTables(src, manifest) });
  return { ...report, objects };
}
