/**
 * Upload sessions: the store the http layer drives. The session row is the truth (offset,
 * object-store state, expiry), so any process can continue any upload; its transitions are in
 * upload-sessions.ts, the writer's claim in upload-lease.ts, the inline policy in
 * upload-inline.ts and the running digests in hash-cache.ts. This module sequences them.
 */
import { randomUUID, type Hash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { createHasher, digestAlgorithm, finishDigest, type Digest, type DigestAlgorithm } from '../../core/digest.js';
import { errors } from '../../core/errors.js';
import type { AppendOptions, BlobInfo, UploadState, UploadStore } from '../../core/interfaces.js';
import type { RepositoryName } from '../../core/names.js';
import { linkBlob } from './blobs.js';
import { ensureRepositoryId, type Context } from './context.js';
import { isUniqueViolation } from './database.js';
import { Meter } from './meter.js';
import { enforceQuota } from './policies.js';
import { prepare } from './prepared.js';
import { readUpTo, spill, toClientError, type Head } from './upload-inline.js';
import { UploadLease } from './upload-lease.js';
import { Sessions, type SessionRow } from './upload-sessions.js';

/** The algorithm hashed while streaming; others are computed at completion. */
const STREAM_ALGORITHM: DigestAlgorithm = 'sha256';

/** A session about to be committed: inline ones carry all their bytes. */
type Finished = SessionRow & { content: Buffer | null };

export class SqlUploadStore implements UploadStore {
  private readonly sessions: Sessions;

  constructor(
    private readonly ctx: Context,
    private readonly repository: RepositoryName,
  ) {
    this.sessions = new Sessions(ctx);
  }

  async start(): Promise<UploadState> {
    const row = await this.open();
    if (!row.inline) this.ctx.hashes.put(row.id, 0, createHasher(STREAM_ALGORITHM));
    return this.state(row);
  }

  /** A new, empty session: its row, as written. */
  private async open(): Promise<SessionRow> {
    const id = randomUUID();
    const key = objectKeyFor(id);
    const state = await this.ctx.objects.beginUpload(key);
    const now = Date.now();
    const expires = now + this.ctx.options.uploadTtlMs;
    const inline = (this.ctx.options.inlineBlobBytes ?? 0) > 0;
    // One statement when the repository exists; otherwise it is created and the insert tried
    // again (a repository deleted in between is created once more).
    for (let attempt = 1; ; attempt++) {
      const repositoryId = await this.sessions.create(id, this.repository, key, state, now, expires, inline);
      if (repositoryId !== null) return { id, repository_id: repositoryId, object_key: key, store_state: state, size: 0, expires_at: expires, inline };
      if (attempt >= 3) throw new Error(`repository ${this.repository} was deleted while an upload started, ${attempt} times`);
      await ensureRepositoryId(this.ctx.database.db, this.ctx.database.dialect, this.repository);
    }
  }

  async get(id: string): Promise<UploadState> {
    return this.state(await this.row(id));
  }

  async append(id: string, body: Readable, options: AppendOptions): Promise<UploadState> {
    const row = await this.row(id);
    this.checkChunk(row, options);
    const head = await this.readInline(row, body, options);
    if (head && head.rest === null) {
      // A chunk held in memory needs no lease: one conditional write applies it only if no
      // other request moved or holds the session meanwhile.
      const chunk = this.chunkOf(row, head, options);
      const expires = Date.now() + this.ctx.options.uploadTtlMs;
      if (!(await this.sessions.appendInline(id, row.size, chunk, expires))) {
        throw errors.rangeInvalid('another request is writing this upload', { offset: row.size });
      }
      return this.state({ ...row, size: row.size + chunk.length, expires_at: expires });
    }
    const lease = await UploadLease.acquire(this.sessions, id, row.size);
    try {
      return this.state(await this.write(row, body, head, options, lease, true));
    } finally {
      await lease.release();
    }
  }

  async complete(id: string, digest: Digest, body: Readable | null, options: AppendOptions): Promise<BlobInfo> {
    let row = await this.row(id);
    this.checkChunk(row, options);
    const head = body ? await this.readInline(row, body, options) : null;
    if (row.inline && (!body || head?.rest === null)) {
      // Inline from start to end: verified in memory, committed in one transaction, no lease.
      const offset = row.size;
      const last = head ? this.chunkOf(row, head, options) : Buffer.alloc(0);
      const content = Buffer.concat([await this.sessions.inlineBytes(row), last]);
      const finished = { ...row, size: content.length, content };
      await this.verify(finished, digest);
      await this.commitBlob(finished, digest, { offset });
      return { digest, size: finished.size };
    }
    const lease = await UploadLease.acquire(this.sessions, id, row.size);
    let ended = false;
    try {
      // The last chunk's offset is not recorded: the commit below ends the session anyway, and
      // if it fails the next append truncates back to the recorded offset.
      if (body) row = await this.write(row, body, head, options, lease, false);
      const finished = { ...row, content: null };
      await this.verify(finished, digest);
      await this.ctx.objects.completeUpload(row.object_key, row.store_state, row.size);
      const { duplicate } = await this.commitBlob(finished, digest, { lease: lease.token });
      ended = true;
      // The blob already existed: this upload's copy is garbage.
      if (duplicate) await this.ctx.objects.delete(row.object_key).catch(() => {});
      return { digest, size: row.size };
    } finally {
      if (ended) lease.stopRenewing();
      else await lease.release();
    }
  }

  async cancel(id: string): Promise<void> {
    const row = await this.row(id);
    if (!(await this.sessions.cancel(id))) throw errors.rangeInvalid('upload is busy');
    this.ctx.hashes.forget(id);
    await this.ctx.objects.abortUpload(row.object_key, row.store_state).catch(() => {});
  }

  /**
   * A blob from a local file the caller hashed while receiving it (no second hash). It goes
   * through a session like any upload: the row names the object while it is written, so
   * collection leaves it alone and a crash leaves an expiring session, not an orphan. A blob
   * small enough to be inline is stored inline, as a push would.
   */
  async putFile(digest: Digest, path: string, size: number): Promise<BlobInfo> {
    this.checkSize(size);
    // The caller hashed the file: no running hash for this session.
    const row = await this.open();
    const id = row.id;
    try {
      const inline = row.inline && size <= (this.ctx.options.inlineBlobBytes ?? 0);
      const content = inline ? await readFile(path) : null;
      if (content && content.length !== size) throw new Error(`putFile: ${path} holds ${content.length} bytes, expected ${size}`);
      if (!content) await this.ctx.objects.putFile(row.object_key, path, size);
      const { duplicate } = await this.commitBlob({ ...row, size, content }, digest, { offset: 0 });
      // The blob already existed: this copy is garbage.
      if (duplicate && !content) await this.ctx.objects.delete(row.object_key).catch(() => {});
      return { digest, size };
    } catch (err) {
      await this.cancel(id).catch(() => undefined);
      throw err;
    }
  }

  private async row(id: string): Promise<SessionRow> {
    const row = await this.sessions.find(id, this.repository);
    if (!row || row.expires_at <= Date.now()) throw errors.uploadUnknown(id);
    return row;
  }

  private state(row: SessionRow): UploadState {
    return { id: row.id, repository: this.repository, offset: row.size, expiresAt: new Date(row.expires_at) };
  }

  /** Refuses a chunk that does not start at the offset, or that declares more than the size limit allows. */
  private checkChunk(row: SessionRow, options: AppendOptions): void {
    if (options.start !== undefined && options.start !== row.size) {
      throw errors.rangeInvalid('chunk does not start at the upload offset', { offset: row.size, start: options.start });
    }
    if (options.length !== undefined) this.checkSize(row.size + options.length);
  }

  /** Refuses a blob past the size limit (413). */
  private checkSize(size: number): void {
    const { maxBlobBytes } = this.ctx.options;
    if (maxBlobBytes !== undefined && size > maxBlobBytes) throw errors.tooLarge('blob', maxBlobBytes);
  }

  /**
   * For a session still inline, reads the chunk into memory while it fits under the inline
   * limit; `rest` is set when it did not. Null when the chunk goes straight to the object store.
   */
  private async readInline(row: SessionRow, body: Readable, options: AppendOptions): Promise<Head | null> {
    if (!row.inline) return null;
    const room = Math.max((this.ctx.options.inlineBlobBytes ?? 0) - row.size, 0);
    if (options.length !== undefined && options.length > room) return null;
    const head = await readUpTo(body, room);
    if (head.rest !== null && options.length !== undefined) {
      body.resume();
      throw errors.rangeInvalid('chunk is longer than declared');
    }
    return head;
  }

  /** An inline chunk read whole, checked against its declared length and the size limit. */
  private chunkOf(row: SessionRow, head: Head, options: AppendOptions): Buffer {
    if (options.length !== undefined && head.bytes !== options.length) {
      throw errors.sizeInvalid(`chunk carried ${head.bytes} bytes, declared ${options.length}`);
    }
    this.checkSize(row.size + head.bytes);
    return Buffer.concat(head.chunks, head.bytes);
  }

  private async verify(row: Finished, digest: Digest): Promise<void> {
    const actual = await this.digestOf(row, digestAlgorithm(digest));
    if (actual !== digest) throw errors.digestInvalid('provided digest did not match uploaded content', { expected: digest, actual });
    this.checkSize(row.size);
  }

  /**
   * Streams one chunk into the object store under a held lease, then moves the session in one
   * conditional write. A session still inline spills: its bytes and the whole chunk are written
   * from offset 0, and only once the store holds them all does the row give up its inline bytes
   * (the spill transition is always recorded, so the row never names bytes the store lacks). If
   * the chunk fails, the row is still inline and whole; the partial object is discarded.
   */
  private async write(row: SessionRow, body: Readable, head: Head | null, options: AppendOptions, lease: UploadLease, persist: boolean): Promise<SessionRow> {
    const { maxBlobBytes } = this.ctx.options;
    const source = body;
    const spilling = row.inline;
    let from = row.size;
    let hash: Hash | null;
    if (spilling) {
      const prefix = await this.sessions.inlineBytes(row);
      body = spill(prefix, head, body);
      options = { length: options.length === undefined ? undefined : prefix.length + options.length };
      from = 0;
      hash = createHasher(STREAM_ALGORITHM);
    } else {
      // Taken out: any failure below leaves the running hash behind the stored bytes.
      hash = this.ctx.hashes.take(row.id, row.size);
    }
    const meter = new Meter(hash, maxBlobBytes === undefined ? Infinity : maxBlobBytes - from, maxBlobBytes, options.length, () => lease.valid());
    lease.startRenewing();
    let result: { state: string; size: number };
    try {
      const sink = this.ctx.objects.appendUpload(row.object_key, row.store_state, from, meter);
      await Promise.all([pipeline(body, meter), sink]);
      result = await sink;
    } catch (err) {
      source.resume();
      // The row still says inline: bytes at its key would be an object no row accounts for.
      // Only while the claim holds: after losing it, the key may be another writer's.
      if (spilling && lease.valid()) await this.ctx.objects.abortUpload(row.object_key, row.store_state).catch(() => {});
      throw toClientError(err);
    } finally {
      lease.stopRenewing();
    }
    const expires = Date.now() + this.ctx.options.uploadTtlMs;
    if (spilling || persist) {
      const moved = spilling
        ? await this.sessions.spilled(row.id, lease.token, result.size, result.state, expires)
        : await this.sessions.stored(row.id, lease.token, result.size, result.state, expires);
      if (!moved) throw errors.uploadUnknown(row.id);
    }
    if (hash) this.ctx.hashes.put(row.id, result.size, hash);
    return { ...row, inline: false, size: result.size, store_state: result.state, expires_at: expires };
  }

  /** The digest of the bytes stored so far: from the running hash, or by re-reading them. */
  private async digestOf(row: Finished, algorithm: DigestAlgorithm): Promise<Digest> {
    if (row.content !== null) return finishDigest(algorithm, createHasher(algorithm).update(row.content));
    const running = algorithm === STREAM_ALGORITHM ? this.ctx.hashes.peek(row.id, row.size) : null;
    if (running) return finishDigest(algorithm, running);
    const hash: Hash = createHasher(algorithm);
    const stored = await this.ctx.objects.readUpload(row.object_key, row.store_state, row.size);
    for await (const chunk of stored) hash.update(chunk as Buffer);
    return finishDigest(algorithm, hash);
  }

  /** Makes the uploaded blob visible: one transaction links it and ends the session. */
  private async commitBlob(row: Finished, digest: Digest, claim: { lease: string } | { offset: number }): Promise<{ duplicate: boolean }> {
    const { dialect } = this.ctx.database;
    for (;;) {
      try {
        const result = await this.ctx.database.tx(async (trx) => {
          const ended = 'lease' in claim ? await this.sessions.endLeased(trx, row.id, claim.lease) : await this.sessions.endUnclaimed(trx, row.id, claim.offset);
          if (!ended) {
            throw 'lease' in claim ? errors.uploadUnknown(row.id) : errors.rangeInvalid('another request is writing this upload', { offset: claim.offset });
          }
          const existing = await BLOB_BY_DIGEST.first(trx, dialect, digest);
          let blobId: number;
          if (existing) {
            blobId = existing.id;
          } else {
            const inserted = await INSERT_BLOB.first(trx, dialect, digest, row.size, row.object_key, row.content, Date.now());
            blobId = inserted!.id;
          }
          await enforceQuota(trx, this.ctx, this.repository, row.repository_id, { id: blobId, size: existing?.size ?? row.size });
          await linkBlob(trx, dialect, row.repository_id, blobId);
          return { duplicate: existing !== undefined };
        });
        this.ctx.hashes.forget(row.id);
        return result;
      } catch (err) {
        // Another request stored the same digest first: link that one instead.
        if (!isUniqueViolation(err)) throw err;
      }
    }
  }
}

/** On PostgreSQL the row is share-locked, so collection cannot delete it before the link commits. */
const BLOB_BY_DIGEST = prepare((exec, pg, digest: string) =>
  exec
    .selectFrom('blobs')
    .select(['id', 'size'])
    .where('digest', '=', digest)
    .$if(pg, (q) => q.forShare()),
);

const INSERT_BLOB = prepare((exec, _pg, digest: string, size: number, key: string, content: Buffer | null, now: number) =>
  exec.insertInto('blobs').values({ digest, size, object_key: key, content, created_at: now }).returning('id'),
);

/** Uploads are written at their final key; the blob row keeps it, so nothing is ever renamed. */
function objectKeyFor(id: string): string {
  return `blobs/${id.slice(0, 2)}/${id}`;
}
