/**
 * Deterministic pseudo-random data for the benchmark, generated chunk by chunk so that no large
 * blob is ever held in memory: a 1 MiB base buffer filled from a seeded xorshift generator, and
 * each chunk a copy of it with the chunk counter and the seed written into its first bytes (so no
 * two chunks, and no two blobs of different seeds, share content).
 */
import { createHash } from 'node:crypto';

export const MiB = 1024 * 1024;
export const CHUNK = MiB;

/** xorshift32 seeded generator (fast, deterministic; not for cryptography). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = (seed ^ 0x9e3779b9) >>> 0 || 0x1234567;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x;
  }
  fill(buf: Buffer): Buffer {
    let i = 0;
    for (; i + 4 <= buf.length; i += 4) buf.writeUInt32LE(this.next(), i);
    for (; i < buf.length; i++) buf[i] = this.next() & 0xff;
    return buf;
  }
  bytes(n: number): Buffer {
    return this.fill(Buffer.allocUnsafe(n));
  }
  hex(n: number): string {
    return this.bytes(Math.ceil(n / 2)).toString('hex').slice(0, n);
  }
}

/** A large blob that exists only as a recipe: size, seed, and (after `prepare`) its digest. */
export class SeededBlob {
  private readonly base: Buffer;
  private cachedDigest: string | undefined;

  constructor(
    readonly size: number,
    readonly seed: number,
  ) {
    this.base = new Rng(seed).bytes(CHUNK);
  }

  /** Chunk `index` (CHUNK bytes, the last one possibly shorter), freshly allocated. */
  chunk(index: number): Buffer {
    const start = index * CHUNK;
    const len = Math.min(CHUNK, this.size - start);
    const out = Buffer.allocUnsafe(len);
    this.base.copy(out, 0, 0, len);
    if (len >= 8) {
      out.writeUInt32LE(index >>> 0, 0);
      out.writeUInt32LE(this.seed >>> 0, 4);
    }
    return out;
  }

  get chunkCount(): number {
    return Math.ceil(this.size / CHUNK);
  }

  /** The bytes [start, end) as a sequence of buffers, generated lazily. */
  *range(start = 0, end = this.size): Generator<Buffer> {
    let pos = start;
    while (pos < end) {
      const index = Math.floor(pos / CHUNK);
      const chunk = this.chunk(index);
      const from = pos - index * CHUNK;
      const to = Math.min(chunk.length, end - index * CHUNK);
      yield from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to);
      pos = index * CHUNK + to;
    }
  }

  /** sha256 digest, computed in a first pass over the generated data without storing it. */
  get digest(): string {
    if (this.cachedDigest === undefined) {
      const h = createHash('sha256');
      for (const c of this.range()) h.update(c);
      this.cachedDigest = `sha256:${h.digest('hex')}`;
    }
    return this.cachedDigest;
  }
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
