import type { Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { errors } from '../../core/errors.js';

/**
 * Counts and hashes the bytes of an upload chunk on their way to the object store, and stops
 * the stream when the chunk outgrows the blob size limit or the length the client declared.
 */
export class Meter extends Transform {
  bytes = 0;

  constructor(
    private readonly hash: Hash | null,
    /** Bytes this chunk may carry before the blob is too large. */
    private readonly remaining: number,
    private readonly maxBlobBytes: number | undefined,
    private readonly declaredLength: number | undefined,
    /** Asked before each piece is passed on: false stops the stream (the writer lost its claim). */
    private readonly mayWrite: () => boolean = () => true,
  ) {
    // Chunks pass on one by one, as objects: a byte-mode reader's read() would join whatever
    // is buffered into one new buffer, a copy of every byte (and garbage to collect) before the
    // object store copies or writes them anyway. Up to 1 MiB waits on either side.
    super({ writableHighWaterMark: 1024 * 1024, readableObjectMode: true, readableHighWaterMark: 16 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (!this.mayWrite()) return done(errors.rangeInvalid('another request took over this upload'));
    this.bytes += chunk.length;
    if (this.bytes > this.remaining) return done(errors.tooLarge('blob', this.maxBlobBytes ?? this.remaining));
    if (this.declaredLength !== undefined && this.bytes > this.declaredLength) {
      return done(errors.rangeInvalid('chunk is longer than declared'));
    }
    this.hash?.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.declaredLength !== undefined && this.bytes !== this.declaredLength) {
      return done(errors.sizeInvalid(`chunk carried ${this.bytes} bytes, declared ${this.declaredLength}`));
    }
    done();
  }
}
