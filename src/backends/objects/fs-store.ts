/**
 * ObjectStore on a local directory. A completed upload is fsynced (the file, then its
 * directory entry) before completeUpload resolves, so the metadata that makes bytes visible
 * never commits first. Appends are not fsynced one by one: an offset that outlived its bytes
 * in a power loss is caught by the digest check when the upload completes.
 */
import { constants } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { BlobStream, ByteRange } from '../../core/interfaces.js';
import { FileStream } from './file-stream.js';
import type { ObjectInfo, ObjectStore } from './object-store.js';

const WRITE_BATCH = 1024 * 1024;

export class FsObjectStore implements ObjectStore {
  readonly description: string;
  /** Outside `blobs/`, so that collection and fsck never take a spooled file for an object. */
  readonly spoolDirectory: string;
  /** Blob directories known to exist (there are at most 256). */
  private readonly directories = new Set<string>();

  constructor(private readonly root: string) {
    this.description = `file:${root}`;
    this.spoolDirectory = join(root, 'spool');
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

  async read(key: string, range?: ByteRange): Promise<BlobStream> {
    // Open first so that a missing object fails here, before any response header is sent.
    const handle = await open(this.path(key), 'r');
    return new FileStream(handle, range?.start ?? 0, range ? range.end + 1 : Infinity);
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

  /** Nothing to do: the first append creates the file (an upload may never need one). */
  async beginUpload(key: string): Promise<string> {
    this.path(key);
    return '';
  }

  /** Opens (creating) an upload's file, and its directory on first use. */
  private async openForWrite(key: string) {
    const path = this.path(key);
    await this.directoryOf(path);
    return open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
  }

  private async directoryOf(path: string): Promise<void> {
    const dir = dirname(path);
    if (!this.directories.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.directories.add(dir);
    }
  }

  async putFile(key: string, source: string, size: number): Promise<void> {
    const path = this.path(key);
    await this.directoryOf(path);
    try {
      // Same filesystem: a second name for the same bytes, nothing copied.
      await link(source, path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EMLINK') throw err;
      await copyFile(source, path, constants.COPYFILE_EXCL);
    }
    try {
      const handle = await open(path, 'r+');
      try {
        const { size: actual } = await handle.stat();
        if (actual !== size) throw new Error(`putFile ${key}: the file holds ${actual} bytes, expected ${size}`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await syncDirectory(dirname(path));
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
  }

  async appendUpload(key: string, state: string, offset: number, body: Readable): Promise<{ state: string; size: number }> {
    const handle = await this.openForWrite(key);
    try {
      // Bytes past `offset` belong to an append that failed before the metadata moved on.
      await handle.truncate(offset);
      let position = offset;
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      // One writev per batch: the socket's chunks go to the file as they are, never copied
      // into one buffer (a copy of every byte, and garbage the size of the upload).
      const flush = async () => {
        let chunks = pending;
        pending = [];
        pendingBytes = 0;
        while (chunks.length > 0) {
          let { bytesWritten } = await handle.writev(chunks, position);
          position += bytesWritten;
          // A short write: drop what went out and write the rest.
          let first = 0;
          while (first < chunks.length && bytesWritten >= chunks[first]!.length) bytesWritten -= chunks[first++]!.length;
          chunks = chunks.slice(first);
          if (bytesWritten > 0) chunks[0] = chunks[0]!.subarray(bytesWritten);
        }
      };
      // Coalesce the socket's small chunks into large writes.
      for await (const chunk of body) {
        pending.push(chunk as Buffer);
        pendingBytes += (chunk as Buffer).length;
        if (pendingBytes >= WRITE_BATCH) await flush();
      }
      if (pendingBytes > 0) await flush();
      return { state, size: position };
    } finally {
      await handle.close();
    }
  }

  async readUpload(key: string, _state: string, size: number): Promise<Readable> {
    if (size === 0) {
      // No append yet: there may be no file.
      const empty = new PassThrough();
      empty.end();
      return empty;
    }
    return this.read(key, { start: 0, end: size - 1 });
  }

  async completeUpload(key: string, _state: string, size: number): Promise<void> {
    const path = this.path(key);
    const handle = await this.openForWrite(key);
    try {
      await handle.truncate(size);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await syncDirectory(dirname(path));
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
