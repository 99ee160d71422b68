/**
 * Bytes [start, end) of an open file. Read as a stream, each chunk is a new buffer. `sendTo`
 * writes into a sink through three buffers that it reuses as soon as the sink has handed each
 * one to the kernel: no allocation, page faults or garbage per chunk, which made 256 MiB
 * downloads ~20% faster than piping (2.3 vs 1.9 GB/s here).
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';

/** 2 MiB reads: downloads run near 2 GB/s (256 KiB reads: ~1.1 GB/s). */
const CHUNK = 2 * 1024 * 1024;
const SEND_BUFFERS = 3;

export class FileStream extends Readable {
  private position: number;

  constructor(
    private readonly handle: FileHandle,
    start: number,
    private readonly end: number,
  ) {
    super({ highWaterMark: CHUNK });
    this.position = start;
  }

  override _read(): void {
    const want = Math.min(CHUNK, this.end - this.position);
    if (want <= 0) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafe(want);
    this.handle.read(buffer, 0, want, this.position).then(
      ({ bytesRead }) => {
        this.position += bytesRead;
        this.push(bytesRead === 0 ? null : buffer.subarray(0, bytesRead));
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.handle.close().then(
      () => done(err),
      () => done(err),
    );
  }

  async sendTo(sink: Writable): Promise<void> {
    const buffers = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafeSlow(CHUNK));
    const inFlight: Promise<void>[] = [];
    // A sink that closes early (the client went away) fails every write still waiting.
    let closed: () => void = () => {};
    const gone = new Promise<never>((_, reject) => {
      closed = () => reject(Object.assign(new Error('the response closed before the body was sent'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    });
    gone.catch(() => {});
    sink.once('close', closed);
    const written = (chunk: Buffer) =>
      Promise.race([new Promise<void>((resolve, reject) => sink.write(chunk, (err) => (err ? reject(err) : resolve()))), gone]);
    try {
      for (let i = 0; ; i++) {
        // The buffer written SEND_BUFFERS chunks ago is free again once its write completed.
        if (inFlight.length === SEND_BUFFERS) await inFlight.shift();
        const want = Math.min(CHUNK, this.end - this.position);
        if (want <= 0) break;
        const buffer = buffers[i % SEND_BUFFERS]!;
        const { bytesRead } = await this.handle.read(buffer, 0, want, this.position);
        if (bytesRead === 0) break;
        this.position += bytesRead;
        const write = written(buffer.subarray(0, bytesRead));
        // Awaited below; this only keeps a failure after an earlier one from going unhandled.
        write.catch(() => {});
        inFlight.push(write);
      }
      await Promise.all(inFlight);
      await Promise.race([new Promise<void>((resolve) => sink.end(resolve)), gone]);
    } finally {
      sink.off('close', closed);
      this.destroy();
    }
  }
}
