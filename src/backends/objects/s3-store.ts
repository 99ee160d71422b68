/**
 * ObjectStore on S3 (AWS, Ceph RADOS Gateway, or any S3 API), for `s3://BUCKET[/PREFIX]`.
 *
 * Configuration comes from the SDK's standard environment: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_S3 (path-style addressing when set).
 *
 * How uploads are stored (figures measured on radosgw 16 memstore, 2 cores):
 *
 * An upload is a list of *segments*, each a complete, readable S3 object, whose concatenation is
 * the bytes so far. The state (compact JSON kept by the metadata) is that list:
 * `{"v":1,"n":SIZE,"s":[["",N0],["NONCE",N1],...]}`.
 *
 * - The first append writes its bytes at the upload's final key itself (segment name ""):
 *   a PutObject, or a multipart upload of PART_SIZE parts completed when the body ends. So the
 *   usual docker push (one streamed PATCH, then PUT) costs no copy at all: completeUpload only
 *   checks the object's size.
 * - Later appends write one new staging object each, `<prefix>/.staging/<base64url key>/<nonce>`
 *   (multipart when larger than a part), with a fresh random nonce: an append never overwrites an
 *   object that an earlier state refers to, so a failed or concurrent append leaves every
 *   returned state valid. A failed append aborts its multipart upload; leftovers of a crash are
 *   removed by completeUpload/abortUpload, which delete the whole staging folder of the key.
 * - S3 parts must be >= 5 MiB except the last, but OCI chunks can be tiny. Segments of at least
 *   5 MiB are "big"; only the trailing segments may be small (their total is < 5 MiB). The next
 *   append reads the small ones back into its part buffer before its own bytes, so they become
 *   part of its segment. When an append is itself small, it merges only the trailing small
 *   segments no larger than what it brings (size-tiered), so each byte is re-read O(log) times
 *   instead of once per append (many 1 KiB appends stay near-linear).
 * - Unfinished multipart parts cannot be read back (radosgw has no GetObject partNumber on an
 *   unfinished upload), which is why every segment is a completed object: readUpload streams
 *   the segments with ranged GETs.
 * - completeUpload: one segment at the key → nothing to do (a HEAD); everything < 5 MiB → read
 *   and PutObject; one staging segment ≤ 5 GiB → CopyObject (radosgw does it by reference);
 *   otherwise a multipart upload at the key built by server-side UploadPartCopy of 64 MiB
 *   ranges of every segment (4 at a time; the bytes do not pass through Node, but radosgw copies
 *   them: ~170-330 MB/s here, 0.8-1.6 s per 256 MiB), the trailing small segments as the last part. The final object
 *   carries a marker (x-amz-meta-portfolio-upload = hash of the state) so that a retried
 *   completion of the same state, after a crash before the metadata committed, is a no-op. The
 *   segment at the key stays readable until the final object replaces it, and the final object
 *   begins with the same bytes, so old states stay readable too.
 * - Memory: at most one part buffer (PART_SIZE, 8 MiB) per running append, never the whole body,
 *   grown as the bytes arrive (part-buffer.ts: a slow client holds what it sent, not a part); two
 *   full-size buffers are kept for reuse (allocating one per append doubled the CPU of 8 MiB
 *   appends).
 *   Parts are sent one at a time, after the buffer filled: receiving and sending overlap only
 *   through the sockets' buffers (measured: 256 MiB in one append ~115-160 MB/s, in 8 MiB
 *   appends ~60-100 MB/s including the copy at completion).
 *
 * Reads of completed objects from an `http://` endpoint (an in-cluster gateway) GET a presigned URL
 * over a plain socket into reused buffers (s3-direct-read.ts), at a third of the SDK's CPU per MB;
 * any other answer, and every `https://` endpoint, goes through the SDK.
 *
 * Staging objects are hidden from list() (a garbage collector comparing list() with the
 * metadata must not delete the staging objects of live uploads); listStagedUploads() names the
 * uploads that have some, and abortUpload(key) removes them.
 */
import { randomBytes, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { BlobStream, ByteRange } from '../../core/interfaces.js';
import type { ObjectInfo, ObjectStore } from './object-store.js';
import { PartBuffer, PartPool } from './part-buffer.js';
import { directRead } from './s3-direct-read.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** S3's minimum size of every multipart part but the last. */
export const MIN_PART = 5 * MiB;
/** S3's maximum part size, and the largest single CopyObject. */
const MAX_PART = 5 * GiB;
const MAX_PARTS = 10_000;
const DEFAULT_PART_SIZE = 8 * MiB;
/** Size of the ranges copied server-side by completeUpload, and how many run at once. */
const COPY_PIECE = 64 * MiB;
const COPY_CONCURRENCY = 4;
/** Staging objects live under this folder of the store prefix, hidden from list(). */
const STAGING = '.staging/';
const MARKER = 'portfolio-upload';
/** Part buffers kept for reuse by later appends (allocating 8 MiB per append costs GC time). */
const SPARE_BUFFERS = 2;
/**
 * Presigned URLs of direct reads are kept per key for reuse (a URL names the key, whatever it
 * holds): presigning in the SDK cost ~0.6 ms of CPU per GET under load, more than the rest of a
 * 200 KB blob's GET. A URL is signed for 15 minutes and used for 10, so a connection made near
 * the end still has time; one that fails (expired credentials) is dropped and the read goes
 * through the SDK.
 */
const DIRECT_READ_URL_SECONDS = 15 * 60;
const DIRECT_READ_URL_REUSE_MS = 10 * 60_000;
const DIRECT_READ_URLS_KEPT = 4096;

export interface S3ObjectStoreOptions {
  /** Bytes buffered and sent per multipart part (default 8 MiB; at least 5 MiB). */
  partSize?: number;
  /** Extra S3 client settings (tests); merged over the ones derived from the environment. */
  client?: S3ClientConfig;
  /** Parts per multipart upload before an append goes on in a new object (tests; default 10,000). */
  maxParts?: number;
  /**
   * Read objects over a plain socket (s3-direct-read.ts) rather than through the SDK. Only for
   * `http://` endpoints; createS3ObjectStore turns it on for those.
   */
  directReads?: boolean;
}

/** One stored piece of an upload: staging nonce ("" = the upload's own key) and size. */
type Segment = [name: string, size: number];

interface UploadStateV1 {
  v: 1;
  /** Total bytes. */
  n: number;
  s: Segment[];
}

export class S3ObjectStore implements ObjectStore {
  readonly description: string;
  /** Non-final S3 parts must be at least this large; smaller chunks are staged and merged. */
  readonly minChunkBytes = MIN_PART;
  private readonly partSize: number;
  private readonly maxParts: number;
  private readonly pool: PartPool;
  private readonly directReads: boolean;
  /** Presigned URLs of direct reads by key, oldest first, with when they stop being reused. */
  private readonly readUrls = new Map<string, { url: URL; until: number }>();

  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
    /** Key prefix without slashes at either end; '' for the bucket root. */
    readonly prefix: string,
    options: S3ObjectStoreOptions = {},
  ) {
    this.description = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.maxParts = Math.min(MAX_PARTS, Math.max(1, options.maxParts ?? MAX_PARTS));
    this.directReads = options.directReads ?? false;
    if (!Number.isInteger(this.partSize) || this.partSize < MIN_PART || this.partSize > 1024 * MiB) {
      throw new Error(`S3 part size must be an integer between 5 MiB and 1 GiB, not ${this.partSize}`);
    }
    this.pool = new PartPool(this.partSize, SPARE_BUFFERS);
  }

  // ---- keys --------------------------------------------------------------------------------

  private full(key: string): string {
    if (key.length === 0 || key.startsWith('/') || key.startsWith(STAGING)) {
      throw new Error(`invalid object key ${JSON.stringify(key)}`);
    }
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private stagingFolder(key: string): string {
    this.full(key);
    // base64url: no '/' (so no folder is a prefix of another) and no '%' (radosgw mis-decodes
    // an escaped '%' in UploadPartCopy's copy source).
    const folder = `${STAGING}${Buffer.from(key).toString('base64url')}/`;
    return this.prefix ? `${this.prefix}/${folder}` : folder;
  }

  /** The full S3 key of a segment of the upload at `key`. */
  private segmentKey(key: string, name: string): string {
    return name === '' ? this.full(key) : this.stagingFolder(key) + name;
  }

  private copySource(fullKey: string): string {
    return `${this.bucket}/${fullKey.split('/').map(encodeURIComponent).join('/')}`;
  }

  // ---- objects -----------------------------------------------------------------------------

  async read(key: string, range?: ByteRange): Promise<BlobStream> {
    if (this.directReads) {
      const url = await this.readUrl(key);
      const body = await directRead(url, range);
      if (body) return body;
      // Refused (credentials rotated, the object gone) or not plain: the next read signs anew.
      this.readUrls.delete(key);
    }
    return this.get(this.full(key), range);
  }

  private async readUrl(key: string): Promise<URL> {
    const now = Date.now();
    const kept = this.readUrls.get(key);
    if (kept && kept.until > now) return kept.url;
    const url = new URL(await this.presignRead(key, DIRECT_READ_URL_SECONDS));
    this.readUrls.delete(key);
    if (this.readUrls.size >= DIRECT_READ_URLS_KEPT) this.readUrls.delete(this.readUrls.keys().next().value!);
    this.readUrls.set(key, { url, until: now + DIRECT_READ_URL_REUSE_MS });
    return url;
  }

  presignRead(key: string, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key) }), { expiresIn: expiresInSeconds });
  }

  private async get(fullKey: string, range?: ByteRange): Promise<Readable> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: fullKey, Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
      );
      return out.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) {
        throw Object.assign(new Error(`object not found: ${this.description} ${fullKey}`), { code: 'ENOENT' });
      }
      throw err;
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
      return { key, size: out.ContentLength ?? 0, modified: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    // S3 deletes are idempotent: a missing key answers 204 too.
    this.readUrls.delete(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const base = this.prefix ? `${this.prefix}/` : '';
    for await (const object of this.listFull(base + prefix)) {
      const key = object.key.slice(base.length);
      if (key.startsWith(STAGING)) continue;
      yield { ...object, key };
    }
  }

  /** Every object under a full S3 prefix, keys unchanged. */
  private async *listFull(prefix: string): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield { key: object.Key, size: object.Size ?? 0, modified: object.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private async deleteFull(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const out = await this.client.send(
        new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
      );
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) throw new Error(`S3 delete of ${failed[0]?.Key} failed: ${failed[0]?.Code} ${failed[0]?.Message ?? ''}`);
    }
  }

  // ---- uploads -----------------------------------------------------------------------------

  async beginUpload(key: string): Promise<string> {
    this.full(key);
    // Nothing to create: the first append writes the key itself.
    return encodeState({ v: 1, n: 0, s: [] });
  }

  async appendUpload(key: string, state: string, offset: number, body: Readable): Promise<{ state: string; size: number }> {
    const st = decodeState(state);
    if (offset !== st.n) {
      throw new Error(`S3 upload ${key}: append at offset ${offset}, but the upload state holds ${st.n} bytes`);
    }
    const first = st.s.length === 0;
    // The trailing small segments: merged into this append's segment (all of them if it is big).
    let smallFrom = st.s.length;
    while (smallFrom > 0 && st.s[smallFrom - 1]![1] < MIN_PART) smallFrom--;
    const pending = st.s.slice(smallFrom);
    const pendingBytes = sum(pending);
    // Invariant of the state: the trailing small segments hold less than one part.
    if (pendingBytes >= MIN_PART) throw new Error(`S3 upload ${key}: invalid state (${pendingBytes} bytes in small segments)`);

    const part = new PartBuffer(this.pool);
    const writer = new SegmentWriter(this, key, first ? '' : nonce(), part, pendingBytes, (target) => this.readSegments(key, pending, target), this.maxParts);
    try {
      let received = 0;
      for await (const data of body) {
        const chunk = typeof data === 'string' ? Buffer.from(data) : (data as Buffer);
        received += chunk.length;
        await writer.write(chunk);
      }
      if (received === 0) {
        this.pool.release(part);
        return { state, size: st.n };
      }
      let kept: Segment[];
      let added: Segment[];
      if (writer.streaming) {
        kept = st.s.slice(0, smallFrom);
        added = await writer.endStreaming();
      } else if (first || pendingBytes + received >= MIN_PART) {
        kept = st.s.slice(0, smallFrom);
        added = [await writer.endBuffered(pendingBytes, (target) => this.readSegments(key, pending, target))];
      } else {
        // A small segment: merge only the trailing small segments no larger than what it holds
        // so far, so that each byte is re-read a logarithmic number of times.
        let count = 0;
        let acc = received;
        while (count < pending.length && pending[pending.length - 1 - count]![1] <= acc) {
          acc += pending[pending.length - 1 - count]![1];
          count++;
        }
        const merged = pending.slice(pending.length - count);
        kept = st.s.slice(0, st.s.length - count);
        added = [await writer.endBuffered(sum(merged), (target) => this.readSegments(key, merged, target))];
      }
      const next: UploadStateV1 = { v: 1, n: st.n + received, s: [...kept, ...added] };
      if (sum(next.s) !== next.n) throw new Error(`S3 upload ${key}: internal size mismatch`);
      // Every request that used the buffer has finished (after a failure one might still hold it).
      this.pool.release(part);
      return { state: encodeState(next), size: next.n };
    } catch (err) {
      await writer.discard();
      throw err;
    }
  }

  /** Reads whole segments, in order, into `target` (exactly their size). */
  private async readSegments(key: string, segments: Segment[], target: Buffer): Promise<void> {
    let at = 0;
    for (const [name, size] of segments) {
      const stream = await this.get(this.segmentKey(key, name), { start: 0, end: size - 1 });
      let got = 0;
      for await (const data of stream) {
        const chunk = data as Buffer;
        if (got + chunk.length > size) throw new Error(`S3 upload ${key}: segment ${name || '(key)'} is longer than recorded`);
        chunk.copy(target, at + got);
        got += chunk.length;
      }
      if (got !== size) throw new Error(`S3 upload ${key}: segment ${name || '(key)'} has ${got} bytes, expected ${size}`);
      at += size;
    }
  }

  async readUpload(key: string, state: string, size: number): Promise<Readable> {
    const st = decodeState(state);
    if (size > st.n || size < 0) throw new Error(`S3 upload ${key}: cannot read ${size} bytes, the upload holds ${st.n}`);
    const self = this;
    async function* bytes(): AsyncGenerator<Buffer> {
      let left = size;
      for (const [name, length] of st.s) {
        if (left === 0) break;
        const take = Math.min(length, left);
        const stream = await self.get(self.segmentKey(key, name), { start: 0, end: take - 1 });
        for await (const chunk of stream) yield chunk as Buffer;
        left -= take;
      }
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  async completeUpload(key: string, state: string, size: number): Promise<void> {
    const st = decodeState(state);
    if (size !== st.n) throw new Error(`S3 upload ${key}: completing ${size} bytes, but the upload state holds ${st.n}`);
    const target = this.full(key);
    const marker = createHash('sha256').update(state).digest('hex').slice(0, 32);
    const segments = st.s;

    if (segments.length === 0) {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: target, Body: Buffer.alloc(0), ContentLength: 0 }));
    } else if (segments.length === 1 && segments[0]![0] === '') {
      // The only append wrote the key itself.
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: target }));
      if (head.ContentLength !== size) throw new Error(`S3 upload ${key}: the object holds ${head.ContentLength} bytes, expected ${size}`);
    } else if (!(await this.completedBefore(target, marker, size))) {
      if (size < MIN_PART) {
        const buffer = Buffer.allocUnsafe(size);
        await this.readSegments(key, segments, buffer);
        await this.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: target, Body: buffer, ContentLength: size, Metadata: { [MARKER]: marker } }),
        );
      } else if (segments.length === 1 && size <= MAX_PART) {
        await this.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: target,
            CopySource: this.copySource(this.segmentKey(key, segments[0]![0])),
            MetadataDirective: 'REPLACE',
            Metadata: { [MARKER]: marker },
          }),
        );
      } else {
        await this.assemble(key, segments, marker);
      }
    }
    // The staging objects are garbage now; failing to delete them must not fail the upload.
    await this.cleanupStaging(key).catch(() => {});
  }

  private async completedBefore(target: string, marker: string, size: number): Promise<boolean> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: target }));
      return head.Metadata?.[MARKER] === marker && head.ContentLength === size;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Builds the final object server-side from the segments with a multipart copy. */
  private async assemble(key: string, segments: Segment[], marker: string): Promise<void> {
    const target = this.full(key);
    let small = segments.length;
    while (small > 0 && segments[small - 1]![1] < MIN_PART) small--;
    const big = segments.slice(0, small);
    const tail = segments.slice(small);
    const total = sum(big);
    // Ranges of at least COPY_PIECE (for parallel copies), more if the part count needs it.
    const piece = Math.min(MAX_PART, Math.max(COPY_PIECE, Math.ceil(total / (MAX_PARTS - 10))));
    type Job = { source: string; start: number; end: number } | { segments: Segment[]; size: number };
    const jobs: Job[] = [];
    for (const [name, size] of big) {
      const count = Math.ceil(size / piece);
      const each = Math.ceil(size / count);
      for (let start = 0; start < size; start += each) {
        jobs.push({ source: this.segmentKey(key, name), start, end: Math.min(size, start + each) - 1 });
      }
    }
    if (tail.length === 1) {
      jobs.push({ source: this.segmentKey(key, tail[0]![0]), start: 0, end: tail[0]![1] - 1 });
    } else if (tail.length > 1) {
      jobs.push({ segments: tail, size: sum(tail) });
    }
    if (jobs.length > MAX_PARTS) throw new Error(`S3 upload ${key}: ${jobs.length} parts exceed S3's limit of ${MAX_PARTS}`);

    const created = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target, Metadata: { [MARKER]: marker } }),
    );
    const uploadId = created.UploadId!;
    try {
      const parts = await mapLimit(jobs, COPY_CONCURRENCY, async (job, i): Promise<CompletedPart> => {
        const PartNumber = i + 1;
        if ('source' in job) {
          const out = await this.client.send(
            new UploadPartCopyCommand({
              Bucket: this.bucket,
              Key: target,
              UploadId: uploadId,
              PartNumber,
              CopySource: this.copySource(job.source),
              CopySourceRange: `bytes=${job.start}-${job.end}`,
            }),
          );
          return { PartNumber, ETag: out.CopyPartResult?.ETag };
        }
        const buffer = Buffer.allocUnsafe(job.size);
        await this.readSegments(key, job.segments, buffer);
        const out = await this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, PartNumber, Body: buffer, ContentLength: job.size }),
        );
        return { PartNumber, ETag: out.ETag };
      });
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
      );
    } catch (err) {
      await this.abortMultipart(target, uploadId).catch(() => {});
      throw err;
    }
  }

  /** One streaming append of the file and its completion: parts of `partSize`, the file's memory never held. */
  async putFile(key: string, path: string, size: number): Promise<void> {
    const state = await this.beginUpload(key);
    try {
      const written = await this.appendUpload(key, state, 0, createReadStream(path, { highWaterMark: MiB }));
      if (written.size !== size) throw new Error(`putFile ${key}: the file holds ${written.size} bytes, expected ${size}`);
      await this.completeUpload(key, written.state, size);
    } catch (err) {
      await this.abortUpload(key, state).catch(() => {});
      throw err;
    }
  }

  async abortUpload(key: string, _state: string): Promise<void> {
    const target = this.full(key);
    // A multipart upload left at the key by a crash in the middle of an append or a completion.
    for await (const upload of this.listMultipart(target)) {
      if (upload.key === target) await this.abortMultipart(upload.key, upload.id);
    }
    await this.cleanupStaging(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: target }));
  }

  /** Deletes every staging object and multipart upload of the upload at `key`. */
  private async cleanupStaging(key: string): Promise<void> {
    const folder = this.stagingFolder(key);
    for await (const upload of this.listMultipart(folder)) await this.abortMultipart(upload.key, upload.id);
    const keys: string[] = [];
    for await (const object of this.listFull(folder)) keys.push(object.key);
    await this.deleteFull(keys);
  }

  private async *listMultipart(prefix: string): AsyncIterable<{ key: string; id: string }> {
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker, UploadIdMarker }),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key !== undefined && upload.UploadId !== undefined) yield { key: upload.Key, id: upload.UploadId };
      }
      if (!page.IsTruncated) return;
      KeyMarker = page.NextKeyMarker;
      UploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async discardStaged(key: string): Promise<void> {
    const target = this.full(key);
    for await (const upload of this.listMultipart(target)) {
      if (upload.key === target) await this.abortMultipart(upload.key, upload.id);
    }
    await this.cleanupStaging(key);
  }

  async *listStagedUploads(): AsyncIterable<ObjectInfo> {
    // Staging objects are few (only chunked uploads in progress have them): list them all and
    // report each upload once, with its newest staging object's time and the total size.
    const base = (this.prefix ? `${this.prefix}/` : '') + STAGING;
    const uploads = new Map<string, ObjectInfo>();
    for await (const object of this.listFull(base)) {
      const encoded = object.key.slice(base.length).split('/')[0];
      if (!encoded) continue;
      const key = Buffer.from(encoded, 'base64url').toString();
      const seen = uploads.get(key);
      if (!seen) uploads.set(key, { key, size: object.size, modified: object.modified });
      else {
        seen.size += object.size;
        if (object.modified > seen.modified) seen.modified = object.modified;
      }
    }
    yield* uploads.values();
  }


  /** @internal */
  async abortMultipart(fullKey: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }));
    } catch (err) {
      if ((err as { name?: string }).name !== 'NoSuchUpload') throw err;
    }
  }

  /** @internal The S3 client and key of a segment, for SegmentWriter. */
  target(key: string, name: string): { client: S3Client; bucket: string; key: string } {
    return { client: this.client, bucket: this.bucket, key: this.segmentKey(key, name) };
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/**
 * Writes one append's segment: the pending (small, earlier) segments' bytes, read back in front
 * of the append's body, then the body. The body's bytes go to the start of the part buffer as
 * they arrive; the pending bytes are read in front of them (shifting them) only when the first
 * part goes out or the segment ends. Parts go out as a part's worth has arrived; the segment is
 * a PutObject when it fits in one part, otherwise a multipart upload completed at the end.
 */
class SegmentWriter {
  /** Bytes of the current part in the buffer. */
  private fill = 0;
  /** Pending bytes that belong in front of the first part and are not loaded yet. */
  private pendingLeft: number;
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  /** Segments already completed because a multipart upload reached S3's part limit. */
  private readonly sealed: Segment[] = [];
  /** Bytes sent in the parts of the current multipart upload. */
  private sent = 0;
  private readonly partSize: number;

  constructor(
    private readonly store: S3ObjectStore,
    private readonly key: string,
    private name: string,
    /** One part: the only bytes of the body held in memory. */
    private readonly part: PartBuffer,
    pendingBytes: number,
    private readonly loadPending: (target: Buffer) => Promise<void>,
    private readonly maxParts: number,
  ) {
    this.partSize = part.capacity;
    this.pendingLeft = pendingBytes;
  }

  async write(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      // Flush lazily, once more bytes arrive: an append of exactly one part stays a PutObject.
      if (this.pendingLeft + this.fill === this.partSize) await this.flush();
      const n = Math.min(chunk.length - offset, this.partSize - this.pendingLeft - this.fill);
      chunk.copy(this.part.reserve(this.fill + n), this.fill, offset, offset + n);
      this.fill += n;
      offset += n;
    }
  }

  /** Moves the buffered bytes up by `bytes` and loads that many in front of them. */
  private async prepend(bytes: number, load: (target: Buffer) => Promise<void>): Promise<void> {
    const buffer = this.part.reserve(bytes + this.fill);
    buffer.copyWithin(bytes, 0, this.fill);
    await load(buffer.subarray(0, bytes));
    this.fill += bytes;
  }

  private async flush(): Promise<void> {
    if (this.pendingLeft > 0) {
      await this.prepend(this.pendingLeft, this.loadPending);
      this.pendingLeft = 0;
    }
    if (this.parts.length === this.maxParts) {
      // S3 allows 10,000 parts: seal this segment and go on in a new staging object.
      await this.completeMultipart();
      this.name = nonce();
    }
    const { client, bucket, key } = this.store.target(this.key, this.name);
    if (this.uploadId === undefined) {
      const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      this.uploadId = created.UploadId!;
    }
    const PartNumber = this.parts.length + 1;
    const out = await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: this.uploadId,
        PartNumber,
        Body: this.part.bytes.subarray(0, this.fill),
        ContentLength: this.fill,
      }),
    );
    this.parts.push({ PartNumber, ETag: out.ETag });
    this.sent += this.fill;
    this.fill = 0;
  }

  private async completeMultipart(): Promise<void> {
    const { client, bucket, key } = this.store.target(this.key, this.name);
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts } }),
    );
    this.uploadId = undefined;
    this.parts.length = 0;
    this.sealed.push([this.name, this.sent]);
    this.sent = 0;
  }

  /** Whether parts went out (then every pending segment was merged into this one). */
  get streaming(): boolean {
    return this.uploadId !== undefined;
  }

  /** Ends a segment whose parts went out (so the pending bytes are in it): the buffer is its last part. */
  async endStreaming(): Promise<Segment[]> {
    if (this.fill > 0) await this.flush();
    await this.completeMultipart();
    return this.sealed;
  }

  /** Ends a segment that is all in the buffer, with `mergedBytes` (loaded by `load`) in front of the body. */
  async endBuffered(mergedBytes: number, load: (target: Buffer) => Promise<void>): Promise<Segment> {
    if (mergedBytes > 0) await this.prepend(mergedBytes, load);
    const { client, bucket, key } = this.store.target(this.key, this.name);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: this.part.bytes.subarray(0, this.fill), ContentLength: this.fill }));
    return [this.name, this.fill];
  }

  /** Abandons an unfinished multipart upload (best effort). */
  async discard(): Promise<void> {
    if (this.uploadId === undefined) return;
    const { key } = this.store.target(this.key, this.name);
    const id = this.uploadId;
    this.uploadId = undefined;
    await this.store.abortMultipart(key, id).catch(() => {});
  }
}

// ---- state -----------------------------------------------------------------------------------

function encodeState(state: UploadStateV1): string {
  return JSON.stringify(state);
}

function decodeState(text: string): UploadStateV1 {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('invalid S3 upload state: not JSON');
  }
  const st = value as UploadStateV1;
  const valid =
    st !== null &&
    typeof st === 'object' &&
    st.v === 1 &&
    Number.isSafeInteger(st.n) &&
    Array.isArray(st.s) &&
    st.s.every(
      (seg, i) =>
        Array.isArray(seg) &&
        seg.length === 2 &&
        typeof seg[0] === 'string' &&
        (seg[0] === '' ? i === 0 : /^[A-Za-z0-9_-]{1,64}$/.test(seg[0])) &&
        Number.isSafeInteger(seg[1]) &&
        seg[1] > 0,
    ) &&
    sum(st.s) === st.n;
  if (!valid) throw new Error('invalid S3 upload state');
  return st;
}

function sum(segments: Segment[]): number {
  let total = 0;
  for (const [, size] of segments) total += size;
  return total;
}

function nonce(): string {
  return randomBytes(9).toString('base64url');
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// ---- errors ----------------------------------------------------------------------------------

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/** A one-line description of an SDK or network error. */
function describe(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: string; errors?: unknown[]; $metadata?: { httpStatusCode?: number } };
  let text = e.message || e.code || e.name || String(err);
  if ((!e.message || e.name === 'AggregateError') && Array.isArray(e.errors) && e.errors.length > 0) {
    text = (e.errors as { message?: string }[]).map((x) => x.message).join('; ');
  }
  const status = e.$metadata?.httpStatusCode;
  return `${text}${status && !text.includes(String(status)) ? ` (HTTP ${status})` : ''}`.replace(/\s+/g, ' ').trim();
}

// ---- construction ----------------------------------------------------------------------------

export interface S3Location {
  bucket: string;
  prefix: string;
}

/** Parses `s3://BUCKET[/PREFIX]`. */
export function parseS3Url(url: string): S3Location {
  const match = /^s3:\/\/([^/?#]+)(?:\/([^?#]*))?$/.exec(url);
  if (!match) throw new Error(`invalid S3 storage URL ${JSON.stringify(url)}: expected s3://BUCKET[/PREFIX]`);
  const bucket = match[1]!;
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{1,254}$/.test(bucket)) throw new Error(`invalid S3 bucket name ${JSON.stringify(bucket)}`);
  if (prefix.split('/').some((part) => part === '' || part === '.' || part === '..') && prefix !== '') {
    throw new Error(`invalid S3 key prefix ${JSON.stringify(prefix)}`);
  }
  return { bucket, prefix };
}

function endpointFromEnv(): string | undefined {
  return process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
}

/** The S3 client settings from the SDK's standard environment. */
export function s3ClientConfig(overrides: S3ClientConfig = {}): S3ClientConfig {
  // This SDK release supports Node 20 but warns on every start that later ones will not.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const endpoint = endpointFromEnv();
  const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || (endpoint ? 'us-east-1' : undefined);
  const config: S3ClientConfig = {
    // radosgw 16 rejects the aws-chunked uploads with CRC32 trailers that the SDK sends by default.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: 5_000,
      httpAgent: { keepAlive: true, maxSockets: 256 },
      httpsAgent: { keepAlive: true, maxSockets: 256 },
    },
  };
  if (endpoint) {
    config.endpoint = endpoint;
    config.forcePathStyle = true;
  }
  if (region) config.region = region;
  return { ...config, ...overrides };
}

function where(location: S3Location, config: S3ClientConfig): string {
  const endpoint = typeof config.endpoint === 'string' ? config.endpoint : endpointFromEnv();
  return `s3://${location.bucket}${endpoint ? ` at ${endpoint}` : ''}`;
}

/** Opens `s3://BUCKET[/PREFIX]`, checking that the bucket exists and is reachable. */
export async function createS3ObjectStore(url: string, options: S3ObjectStoreOptions = {}): Promise<S3ObjectStore> {
  const location = parseS3Url(url);
  const config = s3ClientConfig(options.client);
  const client = new S3Client(config);
  try {
    await client.send(new HeadBucketCommand({ Bucket: location.bucket }));
  } catch (err) {
    client.destroy();
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const name = (err as { name?: string }).name;
    if (status === 404 || name === 'NotFound' || name === 'NoSuchBucket') {
      throw new Error(`S3 bucket "${location.bucket}" does not exist (${where(location, config)})`);
    }
    if (status === 403) {
      throw new Error(`S3 access to bucket "${location.bucket}" denied (${where(location, config)}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`);
    }
    if (name === 'CredentialsProviderError') {
      throw new Error(`no S3 credentials for bucket "${location.bucket}": set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (${describe(err)})`);
    }
    if (status === 301) {
      throw new Error(`S3 bucket "${location.bucket}" is in another region than ${config.region ?? 'the configured one'}: set AWS_REGION`);
    }
    throw new Error(`cannot reach S3 bucket "${location.bucket}" (${where(location, config)}): ${describe(err)}`);
  }
  const plainHttp = typeof config.endpoint === 'string' && config.endpoint.startsWith('http://');
  return new S3ObjectStore(client, location.bucket, location.prefix, { ...options, directReads: options.directReads ?? plainHttp });
}

/** Creates the bucket of `s3://BUCKET[/PREFIX]` if it does not exist (tests, local setups). */
export async function ensureBucket(url: string, options: S3ObjectStoreOptions = {}): Promise<void> {
  const location = parseS3Url(url);
  const client = new S3Client(s3ClientConfig(options.client));
  try {
    await client.send(new CreateBucketCommand({ Bucket: location.bucket }));
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') {
      throw new Error(`cannot create S3 bucket "${location.bucket}": ${describe(err)}`);
    }
  } finally {
    client.destroy();
  }
}
