/**
 * ObjectStore on a local directory. Every write is fsynced (file, then its directory when the
 * file is new) before it resolves, so the metadata that makes bytes visible never commits first.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ByteRange } from '../../core/interfaces.js';
import type { ObjectInfo, ObjectStore } from './object-store.js';

export class FsObjectStore implements ObjectStore {
  readonly description: string;

  constructor(private readonly root: string) {
    this.description = `file:${root}`;
  }

  static async open(root: string): Promise<FsObjectStore> {
    await mkdir(root, { recursive: true });
    return new FsObjectStore(root);
  }

  private path(key: string): string {
    if (key.length === 0 || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.' || part === '')) {
      throw new Error(`invalid object key ${JSON.stringify(key)}`);
    }
    return join(this.root, key);
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    // Open first so that a missing object fails here, before any response header is sent.
    const handle = await open(this.path(key), 'r');
    return createReadStream('', { fd: handle.fd, start: range?.start, end: range?.end, highWaterMark: 256 * 1024, autoClose: true });
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const s = await stat(this.path(key));
      return s.isFile() ? { key, size: s.size, modified: s.mtime } : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* this.walk(this.root, prefix);
  }

  private async *walk(dir: string, prefix: string): AsyncIterable<ObjectInfo> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = join(dir, entry.name);
      const key = relative(this.root, full).split(sep).join('/');
      if (entry.isDirectory()) {
        if (key.startsWith(prefix) || prefix.startsWith(key + '/')) yield* this.walk(full, prefix);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        const s = await stat(full).catch(() => null);
        if (s) yield { key, size: s.size, modified: s.mtime };
      }
    }
  }

  async beginUpload(key: string): Promise<string> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(path, 'wx');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await syncDirectory(dirname(path));
    return '';
  }

  async appendUpload(key: string, state: string, offset: number, body: Readable): Promise<{ state: string; size: number }> {
    const handle = await open(this.path(key), 'r+');
    try {
      // Bytes past `offset` belong to an append that failed before the metadata moved on.
      await handle.truncate(offset);
      const out = createWriteStream('', { fd: handle.fd, start: offset, autoClose: false, highWaterMark: 1024 * 1024 });
      await pipeline(body, out);
      await handle.sync();
      return { state, size: offset + out.bytesWritten };
    } finally {
      await handle.close();
    }
  }

  async readUpload(key: string, _state: string, size: number): Promise<Readable> {
    if (size === 0) {
      const empty = new PassThrough();
      empty.end();
      return empty;
    }
    return this.read(key, { start: 0, end: size - 1 });
  }

  async completeUpload(key: string, _state: string, size: number): Promise<void> {
    const handle = await open(this.path(key), 'r+');
    try {
      await handle.truncate(size);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async abortUpload(key: string): Promise<void> {
    await this.delete(key);
  }

  async close(): Promise<void> {}
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
