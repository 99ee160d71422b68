/**
 * The backup directory (docs/backup.md): `backup.json` (written last: a backup without it is
 * incomplete), `tables/<table>.jsonl` with one JSON array per row, `objects.jsonl` listing the
 * objects the rows name, and `objects/<key>` with their bytes unless only listed.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import type { SnapshotObject, SnapshotTable, SnapshotValue } from '../../core/snapshot.js';

export const BACKUP_FORMAT = 'portfolio-backup';
export const BACKUP_VERSION = 1;

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  version: number;
  created: string;
  /** The engine the snapshot came from (`sqlite`, `postgres`); restore takes either. */
  engine: string;
  /** Schema migrations applied in the snapshot. */
  migrations: string[];
  tables: { name: string; columns: string[]; rows: number; file: string }[];
  objects: { mode: 'copy' | 'list'; count: number; bytes: number; file: string; directory: string | null };
}

/** A row value as JSON: bytes as `{"base64": …}`, everything else as itself. */
export function encodeValue(value: SnapshotValue): unknown {
  return Buffer.isBuffer(value) ? { base64: value.toString('base64') } : value;
}

export function decodeValue(value: unknown): SnapshotValue {
  if (value !== null && typeof value === 'object') {
    const b64 = (value as { base64?: unknown }).base64;
    if (typeof b64 !== 'string') throw new Error('a row value is neither a scalar nor {"base64": …}');
    return Buffer.from(b64, 'base64');
  }
  if (value === null || typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return value;
  throw new Error(`unexpected row value ${JSON.stringify(value)}`);
}

export async function writeLines(path: string, lines: AsyncIterable<unknown>): Promise<number> {
  await mkdir(dirname(path), { recursive: true });
  const out = createWriteStream(path);
  let count = 0;
  try {
    for await (const line of lines) {
      if (!out.write(JSON.stringify(line) + '\n')) await once(out, 'drain');
      count++;
    }
  } finally {
    out.end();
    await once(out, 'close');
  }
  return count;
}

export async function* readLines<T>(path: string): AsyncIterable<T> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) if (line) yield JSON.parse(line) as T;
}

export async function readManifest(dir: string): Promise<BackupManifest> {
  let text: string;
  try {
    text = await readFile(join(dir, 'backup.json'), 'utf8');
  } catch {
    throw new Error(`${dir}: no backup.json (not a backup, or an incomplete one)`);
  }
  const manifest = JSON.parse(text) as BackupManifest;
  if (manifest.format !== BACKUP_FORMAT) throw new Error(`${dir}: not a Portfolio backup`);
  if (manifest.version !== BACKUP_VERSION) throw new Error(`${dir}: backup format version ${manifest.version}; this Portfolio reads version ${BACKUP_VERSION}`);
  return manifest;
}

/** The tables of a backup, as restore reads them. */
export async function* backupTables(dir: string, manifest: BackupManifest): AsyncIterable<SnapshotTable> {
  for (const t of manifest.tables) {
    yield {
      name: t.name,
      columns: t.columns,
      rows: (async function* () {
        for await (const row of readLines<unknown[]>(join(dir, t.file))) yield row.map(decodeValue);
      })(),
    };
  }
}

export function backupObjects(dir: string, manifest: BackupManifest): AsyncIterable<SnapshotObject> {
  return readLines<SnapshotObject>(join(dir, manifest.objects.file));
}

/** Writes into `<dest>.partial`, renamed to `dest` once backup.json is in. */
export async function stagingDirectory(dest: string): Promise<{ path: string; commit(manifest: BackupManifest): Promise<void>; abort(): Promise<void> }> {
  const path = `${resolve(dest)}.partial`;
  await rm(path, { recursive: true, force: true });
  await mkdir(path, { recursive: true });
  return {
    path,
    async commit(manifest) {
      await writeFile(join(path, 'backup.json'), JSON.stringify(manifest, null, 2) + '\n');
      await rename(path, dest).catch((err: NodeJS.ErrnoException) => {
        throw new Error(err.code === 'ENOTEMPTY' || err.code === 'EEXIST' ? `${dest} exists and is not empty` : err.message);
      });
    },
    abort: () => rm(path, { recursive: true, force: true }),
  };
}

