/**
 * A blob on its way from the upstream, in a local file: written at the upstream's pace, read by
 * any number of clients at theirs, each from its own position, waiting for bytes not there yet.
 * A slow reader costs disk, not memory, and never holds up the writer. Each reader's last byte is
 * withheld until the fill verified the digest, so no reader ever completes a transfer of bytes
 * that turn out wrong: it sees a cut-off transfer instead.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { SEND_CHUNK as CHUNK, sendThroughBuffers } from '../core/buffered-send.js';

/** Spool files older than this in the directory are leftovers of a process that died mid-fill. */
const LEFTOVER_MS = 24 * 60 * 60 * 1000;
const PREFIX = 'fill-';

const swept = new Set<string>();

/** Creates the directory, and on first use in this process removes leftovers of dead fills. */
async function prepare(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (swept.has(dir)) return;
  swept.add(dir);
  const old = Date.now() - LEFTOVER_MS;
  for (const name of await readdir(dir).catch(() => [])) {
    if (!name.startsWith(PREFIX)) continue;
    const path = join(dir, name);
    const s = await stat(path).catch(() => null);
    if (s && s.mtimeMs < old) await rm(path, { force: true }).catch(() => undefined);
  }
}

export class Spool {
  /** Bytes in the file so far. */
  private written = 0;
  private verified = false;
  private failure: Error | null = null;
  private removed = false;
  private readers = 0;
  private readonly waiting = new Set<() => void>();

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    /** The size the upstream announced: readers get all but its last byte before verification. */
    readonly size: number,
  ) {}

  static async create(dir: string, size: number): Promise<Spool> {
    await prepare(dir);
    const path = join(dir, `${PREFIX}${process.pid}-${randomUUID()}`);
    // The mode of the store's own files: on the file store this file becomes the blob (a link).
    const handle = await open(path, 'wx+', 0o644);
    return new Spool(path, handle, size);
  }

  /** Appends bytes (one positional write for the batch). */
  async write(chunks: Buffer[]): Promise<void> {
    let buffers = chunks;
    while (buffers.length > 0) {
      const { bytesWritten } = await this.handle.writev(buffers, this.written);
      this.written += bytesWritten;
      buffers = remainder(buffers, bytesWritten);
    }
    this.wake();
  }

  /** The digest verified: readers may have every byte. */
  release(): void {
    this.verified = true;
    this.wake();
  }

  /** The fill failed before verification: readers fail with `err` once past what they may have. */
  fail(err: Error): void {
    if (this.verified) return;
    this.failure = err;
    this.wake();
  }

  /**
   * Unlinks the file. Readers still under way keep reading it (they hold it open); the handle is
   * closed once the last of them is done.
   */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    this.fail(new Error('the fill ended before the bytes were released'));
    await rm(this.path, { force: true });
    if (this.readers === 0) await this.handle.close().catch(() => undefined);
  }

  /** A stream of bytes [start, end) as they arrive; null once the fill failed or the spool is gone. */
  reader(start = 0, end = this.size): Readable | null {
    if (this.failure || (this.removed && this.readers === 0)) return null;
    this.readers++;
    return new SpoolReader(this, start, end);
  }

  /** How many bytes readers may have now. */
  get available(): number {
    return this.verified ? this.written : Math.min(this.written, this.size - 1);
  }

  get released(): boolean {
    return this.verified;
  }

  get error(): Error | null {
    return this.failure;
  }

  /** Resolves on the next write, release or failure. */
  progress(): Promise<void> {
    return new Promise((resolve) => this.waiting.add(resolve));
  }

  read(target: Buffer, length: number, position: number): Promise<number> {
    return this.handle.read(target, 0, length, position).then((r) => r.bytesRead);
  }

  /** A reader is done with the file. */
  detach(): void {
    this.readers--;
    if (this.removed && this.readers === 0) this.handle.close().catch(() => undefined);
  }

  private wake(): void {
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const resolve of waiting) resolve();
  }
}

class SpoolReader extends Readable {
  private reading = false;

  constructor(
    private readonly spool: Spool,
    private position: number,
    private readonly end: number,
  ) {
    super({ highWaterMark: CHUNK });
  }

  override _read(): void {
    if (this.reading) return;
    this.reading = true;
    this.next().then(
      () => (this.reading = false),
      (err: Error) => this.destroy(err),
    );
  }

  private async next(): Promise<void> {
    const buffer = await this.fill(() => Buffer.allocUnsafe(CHUNK));
    if (!this.destroyed) this.push(buffer);
  }

  /**
   * The next bytes once the spool has them, read into a buffer from `take`; null at the end.
   * Every response's last byte, a range's too, and the end of an empty one wait for verification:
   * no client completes a transfer of bytes that turn out wrong.
   */
  private async fill(take: () => Buffer): Promise<Buffer | null> {
    for (;;) {
      const released = this.spool.released;
      if (this.position >= this.end && released) return null;
      const limit = Math.min(released ? this.end : this.end - 1, this.spool.available);
      if (this.position < limit) {
        const buffer = take();
        const got = await this.spool.read(buffer, Math.min(buffer.length, limit - this.position), this.position);
        if (got === 0) throw new Error('spool file shorter than written');
        this.position += got;
        return buffer.subarray(0, got);
      }
      if (this.spool.error) throw this.spool.error;
      if (this.destroyed) return null;
      await this.spool.progress();
    }
  }

  /** What the http layer uses instead of piping: writes through reused buffers (core/buffered-send.ts). */
  async sendTo(sink: Writable): Promise<void> {
    try {
      await sendThroughBuffers(sink, (buffer) => this.fill(() => buffer));
    } catch (err) {
      // A failed fill cuts the transfer off: the client must not see a clean end.
      sink.destroy(err as Error);
      throw err;
    } finally {
      this.destroy();
    }
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.spool.detach();
    done(err);
  }
}

/** The buffers left after the first `bytes` of them were written. */
function remainder(buffers: Buffer[], bytes: number): Buffer[] {
  let i = 0;
  while (i < buffers.length && bytes >= buffers[i]!.length) bytes -= buffers[i++]!.length;
  if (i === buffers.length) return [];
  return [buffers[i]!.subarray(bytes), ...buffers.slice(i + 1)];
}
