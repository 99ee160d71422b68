/**
 * The memory of one multipart part, grown as bytes arrive: a slow client holds about what it
 * sent, not a whole part. It starts at GROW_FROM bytes and doubles (the copies add less than one
 * part's worth per part); past SPARE_FROM it takes a full-size buffer from a pool instead, so
 * fast appends reuse buffers (allocating a fresh part per append doubled their CPU cost).
 */
const GROW_FROM = 64 * 1024;
const SPARE_FROM = 1024 * 1024;

/** Full-size part buffers kept for reuse between appends. */
export class PartPool {
  private readonly spare: Buffer[] = [];

  constructor(
    readonly partSize: number,
    private readonly keep: number,
  ) {}

  take(): Buffer | undefined {
    return this.spare.pop();
  }

  /** Gives back a part buffer once no request uses it; only full-size ones are kept. */
  release(part: PartBuffer): void {
    const bytes = part.detach();
    if (bytes.length === this.partSize && this.spare.length < this.keep) this.spare.push(bytes);
  }
}

export class PartBuffer {
  private storage: Buffer = Buffer.alloc(0);

  constructor(private readonly pool: PartPool) {}

  /** The buffer, with room for at least `end` bytes (at most the part size). */
  reserve(end: number): Buffer {
    if (end <= this.storage.length) return this.storage;
    const partSize = this.pool.partSize;
    if (end > partSize) throw new Error(`part buffer: ${end} bytes exceed the part size ${partSize}`);
    let size = Math.max(GROW_FROM, this.storage.length * 2);
    while (size < end) size *= 2;
    size = Math.min(size, partSize);
    const next = (size > SPARE_FROM ? this.pool.take() : undefined) ?? Buffer.allocUnsafeSlow(size);
    this.storage.copy(next, 0, 0, this.storage.length);
    this.storage = next;
    return next;
  }

  /** The part size: the most this buffer grows to. */
  get capacity(): number {
    return this.pool.partSize;
  }

  get bytes(): Buffer {
    return this.storage;
  }

  /** Hands over the memory (to the pool) and leaves this buffer empty. */
  detach(): Buffer {
    const bytes = this.storage;
    this.storage = Buffer.alloc(0);
    return bytes;
  }
}
