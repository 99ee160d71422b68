/**
 * Copies one blob from the upstream into the local store. The body goes to a spool file at the
 * upstream's pace and is hashed on the way; clients read along from the spool at their own pace
 * (spool.ts), so neither a slow client nor the store holds up the transfer. Once the digest is
 * verified the readers get the last byte, and the store takes the blob from the spool file (on
 * the file store a link, no copy); it becomes visible when its row commits. The fill belongs to
 * no client: one that hangs up only stops reading.
 */
import type { Readable } from 'node:stream';
import { createHasher, digestAlgorithm, finishDigest, type Digest } from '../core/digest.js';
import type { Spool } from './spool.js';
import { UpstreamUnavailable } from './upstream.js';

/** The upstream sent other bytes than the digest names (or fewer or more than it announced). */
export class UpstreamLied extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamLied';
  }
}

/** Bytes gathered from the socket's small chunks before one write to the spool. */
const WRITE_BATCH = 1024 * 1024;

export interface FillOptions {
  body: Readable & { setTimeout?(ms: number, callback: () => void): unknown };
  digest: Digest;
  /** Announced by the upstream (Content-Length); null when it did not say. */
  size: number | null;
  spool: Spool;
  /** Makes the verified spool file a visible blob (UploadStore.putFile). */
  store(path: string, size: number): Promise<unknown>;
  /** The upstream body may be silent this long before the fill fails. */
  idleMs: number;
  onBytes?(bytes: number): void;
  /** Called as the readers learn of a failure, before the spool's removal: nobody may join it after. */
  onFail?(): void;
}

/** Resolves once the blob is stored; the spool is removed either way. */
export async function fillBlob(options: FillOptions): Promise<void> {
  const { body, digest, size, spool, idleMs } = options;
  body.setTimeout?.(idleMs, () => body.destroy(new UpstreamUnavailable(`upstream body silent for ${idleMs} ms`)));
  const algorithm = digestAlgorithm(digest);
  const hash = createHasher(algorithm);
  let received = 0;
  let batch: Buffer[] = [];
  let batched = 0;
  // One write in flight while the next batch gathers: the upstream is read no faster than the
  // disk takes its bytes, and at most two batches are in memory.
  let writing: Promise<void> = Promise.resolve();
  const flush = async () => {
    const chunks = batch;
    batch = [];
    batched = 0;
    await writing;
    writing = spool.write(chunks);
    writing.catch(() => undefined); // awaited at the next flush or at the end
  };
  try {
    try {
      for await (const chunk of body) {
        const bytes = chunk as Buffer;
        received += bytes.length;
        options.onBytes?.(bytes.length);
        if (size !== null && received > size) throw new UpstreamLied(`upstream sent more than the ${size} bytes it announced for ${digest}`);
        hash.update(bytes);
        batch.push(bytes);
        batched += bytes.length;
        if (batched >= WRITE_BATCH) await flush();
      }
      if (batched > 0) await flush();
      await writing;
      if (size !== null && received !== size) throw new UpstreamLied(`upstream sent ${received} of the ${size} bytes it announced for ${digest}`);
      if (finishDigest(algorithm, hash) !== digest) throw new UpstreamLied(`upstream sent bytes whose digest is not ${digest}`);
    } catch (err) {
      body.destroy();
      await writing.catch(() => undefined);
      spool.fail(err as Error);
      options.onFail?.();
      throw err;
    }
    spool.release();
    // Readers have every byte now; storing failing leaves them be and only means a later fetch.
    await options.store(spool.path, received);
  } finally {
    await spool.remove();
  }
}
