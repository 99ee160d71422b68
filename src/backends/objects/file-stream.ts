/**
 * Bytes [start, end) of an open file. Read as a stream, each chunk is a new buffer; `sendTo`
 * writes into a sink through reused buffers instead (core/buffered-send.ts).
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { SEND_CHUNK as CHUNK, sendThroughBuffers } from '../../core/buffered-send.js';

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
    try {
      await sendThroughBuffers(sink, async (buffer) => {
        const want = Math.min(buffer.length, this.end - this.position);
        if (want <= 0) return null;
        const { bytesRead } = await this.handle.read(buffer, 0, want, this.position);
        if (bytesRead === 0) return null;
        this.position += bytesRead;
        return buffer.subarray(0, bytesRead);
      });
    } finally {
      this.destroy();
    }
  }
}
