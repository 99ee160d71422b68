/**
 * Upload sessions. The session row is the truth (offset, object-store state, expiry), so any
 * process can continue any upload. A writer first takes a lease on the row (a conditional
 * UPDATE), streams the chunk, then moves the offset; two requests can never write the same
 * session at once, in one process or across replicas.
 *
 * Digests: node's SHA-256 is ~9x faster than any hasher whose state can be saved, so the
 * running hash lives in this process's memory, keyed by session and offset. When another
 * process wrote the last chunk (or this one restarted), the hash is rebuilt by re-reading the
 * bytes already stored — a cost paid only on a cross-process resume, and measured by the bench.
 *
 * Small blobs never reach the object store: while a session holds no more than
 * `inlineBlobBytes`, its bytes live in the session row and the blob row takes them over at
 * completion, so a config or a small layer costs one commit instead of an object write and its
 * sync. The first chunk that outgrows the limit moves the bytes to the object store.
 */
import { randomUUID, type Hash } from 'node:crypto';
import type { ExpressionBuilder } from 'kysely';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHasher, digestAlgorithm, finishDigest, type Digest, type DigestAlgorithm } from '../../core/digest.js';
import { errors, RegistryError } from '../../core/errors.js';
import type { AppendOptions, BlobInfo, UploadState, UploadStore } from '../../core/interfaces.js';
import type { RepositoryName } from '../../core/names.js';
import { linkBlob } from './blobs.js';
import { ensureRepositoryId, type Context } from './context.js';
import { isForeignKeyViolation, isUniqueViolation } from './database.js';
import { Meter } from './meter.js';
import { prepare } from './prepared.js';
import type { Schema } from './schema.js';

const LEASE_MS = 60_000;
/** The algorithm hashed while streaming; others are computed at completion. */
const STREAM_ALGORITHM: DigestAlgorithm = 'sha256';

interface SessionRow {
  id: string;
  repository_id: number;
  object_key: string;
  store_state: string;
  size: number;
  expires_at: number;
  /** Inline bytes (see above); null once the session uses the object store. */
  content: Buffer | null;
}

const EMPTY = Buffer.alloc(0);

export class SqlUploadStore implements UploadStore {
  constructor(
    private readonly ctx: Context,
    private readonly repository: RepositoryName,
  ) {}

  async start(): Promise<UploadState> {
    const id = randomUUID();
    const key = objectKeyFor(id);
    const state = await this.ctx.objects.beginUpload(key);
    const now = Date.now();
    const expires = now + this.ctx.options.uploadTtlMs;
    const inline = (this.ctx.options.inlineBlobBytes ?? 0) > 0;
    // Two single statements, no transaction: if the repository is deleted in between, the
    // insert fails its foreign key and the repository is created again.
    for (let attempt = 1; ; attempt++) {
      const repositoryId = await ensureRepositoryId(this.ctx.database.db, this.ctx.database.dialect, this.repository);
      try {
        await INSERT_SESSION.execute(this.ctx.database.db, this.ctx.database.dialect, id, repositoryId, key, state, now, expires, inline ? EMPTY : null);
        break;
      } catch (err) {
        if (attempt >= 3 || !isForeignKeyViolation(err)) throw err;
      }
    }
    if (!inline) this.ctx.hashers.set(id, { size: 0, hash: createHasher(STREAM_ALGORITHM) });
    return { id, repository: this.repository, offset: 0, expiresAt: new Date(expires) };
  }

  async get(id: string): Promise<UploadState> {
    const row = await this.row(id);
    return this.state(row);
  }

  async append(id: string, body: Readable, options: AppendOptions): Promise<UploadState> {
    const row = await this.row(id);
    this.checkChunk(row, options);
    const head = await this.readInline(row, body, options);
    if (head && head.rest === null) {
      const next = this.withChunk(row, head, options);
      // A chunk held in memory needs no lease: one conditional write applies it only if no
      // other request moved or holds the session meanwhile.
      const moved = await APPEND_INLINE.affected(this.ctx.database.db, this.ctx.database.dialect, next.size, next.content, next.expires_at, id, row.size, Date.now());
      if (moved === 0n) throw errors.rangeInvalid('another request is writing this upload', { offset: row.size });
      return this.state(next);
    }
    const lease = await this.acquire(row);
    try {
      const updated = await this.write(row, body, head, options, lease);
      return this.state(updated);
    } finally {
      await this.release(id, lease);
    }
  }

  async complete(id: string, digest: Digest, body: Readable | null, options: AppendOptions): Promise<BlobInfo> {
    let row = await this.row(id);
    this.checkChunk(row, options);
    const head = body ? await this.readInline(row, body, options) : null;
    if (row.content !== null && (!body || head?.rest === null)) {
      // Inline from start to end: verified in memory, committed in one transaction, no lease.
      const offset = row.size;
      if (head) row = this.withChunk(row, head, options);
      await this.verify(row, digest);
      await this.commitBlob(row, digest, { offset });
      this.ctx.hashers.delete(id);
      return { digest, size: row.size };
    }
    const lease = await this.acquire(row);
    let released = false;
    try {
      // The last chunk's offset is not recorded: the commit below ends the session anyway, and
      // if it fails the next append truncates back to the recorded offset.
      if (body) row = await this.write(row, body, head, options, lease, false);
      await this.verify(row, digest);
      if (row.content === null) await this.ctx.objects.completeUpload(row.object_key, row.store_state, row.size);
      const { duplicate } = await this.commitBlob(row, digest, { lease });
      released = true;
      this.ctx.hashers.delete(id);
      // The blob already existed: this upload's copy is garbage.
      if (duplicate && row.content === null) await this.ctx.objects.delete(row.object_key).catch(() => {});
      return { digest, size: row.size };
    } finally {
      if (!released) await this.release(id, lease);
    }
  }

  async cancel(id: string): Promise<void> {
    const row = await this.row(id);
    const deleted = await this.ctx.database.db
      .deleteFrom('uploads')
      .where('id', '=', id)
      .where(leaseFree(Date.now()))
      .executeTakeFirst();
    if (deleted.numDeletedRows === 0n) throw errors.rangeInvalid('upload is busy');
    this.ctx.hashers.delete(id);
    if (row.content === null) await this.ctx.objects.abortUpload(row.object_key, row.store_state).catch(() => {});
  }

  private async row(id: string): Promise<SessionRow> {
    const row = await SESSION.first(this.ctx.database.db, this.ctx.database.dialect, id, this.repository);
    if (!row || row.expires_at <= Date.now()) throw errors.uploadUnknown(id);
    return row;
  }

  private state(row: SessionRow): UploadState {
    return { id: row.id, repository: this.repository, offset: row.size, expiresAt: new Date(row.expires_at) };
  }

  /** Claims the session at its current offset; fails if another request holds it or moved it. */
  private async acquire(row: SessionRow): Promise<string> {
    const token = randomUUID();
    const now = Date.now();
    const claimed = await ACQUIRE.affected(this.ctx.database.db, this.ctx.database.dialect, token, now + LEASE_MS, row.id, row.size, now);
    if (claimed === 0n) throw errors.rangeInvalid('another request is writing this upload', { offset: row.size });
    return token;
  }

  private async release(id: string, token: string): Promise<void> {
    await RELEASE.execute(this.ctx.database.db, this.ctx.database.dialect, id, token).catch(() => {});
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
    if (row.content === null) return null;
    const room = Math.max((this.ctx.options.inlineBlobBytes ?? 0) - row.size, 0);
    if (options.length !== undefined && options.length > room) return null;
    const head = await readUpTo(body, room).catch((err: unknown) => {
      throw toClientError(err);
    });
    if (head.rest !== null && options.length !== undefined) {
      body.resume();
      throw errors.rangeInvalid('chunk is longer than declared');
    }
    return head;
  }

  /** The session after an inline chunk. */
  private withChunk(row: SessionRow, head: Head, options: AppendOptions): SessionRow {
    if (options.length !== undefined && head.bytes !== options.length) {
      throw errors.sizeInvalid(`chunk carried ${head.bytes} bytes, declared ${options.length}`);
    }
    const content = Buffer.concat([row.content ?? EMPTY, ...head.chunks]);
    this.checkSize(content.length);
    return { ...row, size: content.length, content, expires_at: Date.now() + this.ctx.options.uploadTtlMs };
  }

  private async verify(row: SessionRow, digest: Digest): Promise<void> {
    const actual = await this.digestOf(row, digestAlgorithm(digest));
    if (actual !== digest) throw errors.digestInvalid('provided digest did not match uploaded content', { expected: digest, actual });
    this.checkSize(row.size);
  }

  /**
   * Streams one chunk into the object store under a held lease and moves the offset. A session
   * still inline moves there first: its bytes, the part of the chunk already read (`head`),
   * then the rest, as one append from offset 0.
   */
  private async write(row: SessionRow, body: Readable, head: Head | null, options: AppendOptions, lease: string, persist = true): Promise<SessionRow> {
    const { maxBlobBytes } = this.ctx.options;
    const source = body;
    if (row.content !== null) {
      // The row gives up its inline bytes before any byte reaches the store, so an inline
      // blob never has an object behind it.
      const moved = await this.ctx.database.db
        .updateTable('uploads')
        .set({ content: null })
        .where('id', '=', row.id)
        .where('lease_token', '=', lease)
        .executeTakeFirst();
      if (moved.numUpdatedRows === 0n) throw errors.uploadUnknown(row.id);
      const prefix = row.content;
      body = spill(prefix, head, body);
      options = { length: options.length === undefined ? undefined : prefix.length + options.length };
      row = { ...row, size: 0, content: null };
      this.ctx.hashers.set(row.id, { size: 0, hash: createHasher(STREAM_ALGORITHM) });
    }
    const hasher = this.ctx.hashers.get(row.id);
    const hash = hasher && hasher.size === row.size ? hasher.hash : null;
    // Any failure below leaves the in-memory hash behind the stored bytes: forget it.
    this.ctx.hashers.delete(row.id);
    const meter = new Meter(hash, maxBlobBytes === undefined ? Infinity : maxBlobBytes - row.size, maxBlobBytes, options.length);
    const renew = setInterval(() => void this.renew(row.id, lease), LEASE_MS / 3);
    let result: { state: string; size: number };
    try {
      const sink = this.ctx.objects.appendUpload(row.object_key, row.store_state, row.size, meter);
      await Promise.all([pipeline(body, meter), sink]).catch(async (err: unknown) => {
        source.resume();
        throw toClientError(err);
      });
      result = await sink;
    } finally {
      clearInterval(renew);
    }
    const expires = Date.now() + this.ctx.options.uploadTtlMs;
    if (persist) {
      const moved = await PERSIST.affected(this.ctx.database.db, this.ctx.database.dialect, result.size, result.state, expires, row.id, lease);
      if (moved === 0n) throw errors.uploadUnknown(row.id);
    }
    if (hash) this.ctx.hashers.set(row.id, { size: result.size, hash });
    return { ...row, size: result.size, store_state: result.state, expires_at: expires };
  }

  private async renew(id: string, lease: string): Promise<void> {
    await this.ctx.database.db
      .updateTable('uploads')
      .set({ lease_expires: Date.now() + LEASE_MS })
      .where('id', '=', id)
      .where('lease_token', '=', lease)
      .execute()
      .catch(() => {});
  }

  /** The digest of the bytes stored so far: from the running hash, or by re-reading them. */
  private async digestOf(row: SessionRow, algorithm: DigestAlgorithm): Promise<Digest> {
    if (row.content !== null) return finishDigest(algorithm, createHasher(algorithm).update(row.content));
    const running = this.ctx.hashers.get(row.id);
    if (algorithm === STREAM_ALGORITHM && running && running.size === row.size) {
      return finishDigest(algorithm, running.hash.copy());
    }
    const hash: Hash = createHasher(algorithm);
    const stored = await this.ctx.objects.readUpload(row.object_key, row.store_state, row.size);
    for await (const chunk of stored) hash.update(chunk as Buffer);
    return finishDigest(algorithm, hash);
  }

  /** Makes the uploaded blob visible: one transaction links it and ends the session. */
  private async commitBlob(row: SessionRow, digest: Digest, claim: { lease: string } | { offset: number }): Promise<{ duplicate: boolean }> {
    for (;;) {
      try {
        const { dialect } = this.ctx.database;
        return await this.ctx.database.tx(async (trx) => {
          const ended =
            'lease' in claim
              ? await END_LEASED.affected(trx, dialect, row.id, claim.lease)
              : await END_UNCLAIMED.affected(trx, dialect, row.id, claim.offset, Date.now());
          if (ended === 0n) {
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
          await linkBlob(trx, dialect, row.repository_id, blobId);
          return { duplicate: existing !== undefined };
        });
      } catch (err) {
        // Another request stored the same digest first: link that one instead.
        if (!isUniqueViolation(err)) throw err;
      }
    }
  }
}

/** No request holds the session's lease (or its holder let it expire). */
function leaseFree(now: number) {
  return (eb: ExpressionBuilder<Schema, 'uploads'>) => eb.or([eb('lease_expires', 'is', null), eb('lease_expires', '<', now)]);
}

const INSERT_SESSION = prepare(
  (exec, _pg, id: string, repositoryId: number, key: string, state: string, now: number, expires: number, content: Buffer | null) =>
    exec.insertInto('uploads').values({ id, repository_id: repositoryId, object_key: key, store_state: state, size: 0, created_at: now, expires_at: expires, content }),
);

const SESSION = prepare((exec, _pg, id: string, repository: string) =>
  exec
    .selectFrom('uploads as u')
    .innerJoin('repositories as r', 'r.id', 'u.repository_id')
    .select(['u.id', 'u.repository_id', 'u.object_key', 'u.store_state', 'u.size', 'u.expires_at', 'u.content'])
    .where('u.id', '=', id)
    .where('r.name', '=', repository),
);

const APPEND_INLINE = prepare((exec, _pg, size: number, content: Buffer | null, expires: number, id: string, offset: number, now: number) =>
  exec.updateTable('uploads').set({ size, content, expires_at: expires }).where('id', '=', id).where('size', '=', offset).where(leaseFree(now)),
);

const ACQUIRE = prepare((exec, _pg, token: string, leaseExpires: number, id: string, offset: number, now: number) =>
  exec.updateTable('uploads').set({ lease_token: token, lease_expires: leaseExpires }).where('id', '=', id).where('size', '=', offset).where(leaseFree(now)),
);

const RELEASE = prepare((exec, _pg, id: string, token: string) =>
  exec.updateTable('uploads').set({ lease_token: null, lease_expires: null }).where('id', '=', id).where('lease_token', '=', token),
);

const PERSIST = prepare((exec, _pg, size: number, state: string, expires: number, id: string, lease: string) =>
  exec.updateTable('uploads').set({ size, store_state: state, expires_at: expires }).where('id', '=', id).where('lease_token', '=', lease),
);

const END_LEASED = prepare((exec, _pg, id: string, lease: string) => exec.deleteFrom('uploads').where('id', '=', id).where('lease_token', '=', lease));

const END_UNCLAIMED = prepare((exec, _pg, id: string, offset: number, now: number) =>
  exec.deleteFrom('uploads').where('id', '=', id).where('size', '=', offset).where(leaseFree(now)),
);

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

/** The start of a chunk read into memory; `rest` continues the body when it held more than asked for. */
interface Head {
  chunks: Buffer[];
  bytes: number;
  rest: AsyncIterator<Buffer> | null;
}

/** Reads `body` until it ends or carries more than `room` bytes. */
async function readUpTo(body: Readable, room: number): Promise<Head> {
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let bytes = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) return { chunks, bytes, rest: null };
    chunks.push(next.value);
    bytes += next.value.length;
    if (bytes > room) return { chunks, bytes, rest: it };
  }
}

/** The session's inline bytes, the part of the chunk already read, then the rest of it. */
function spill(prefix: Buffer, head: Head | null, body: Readable): Readable {
  if (!head) {
    if (prefix.length === 0) return body;
    return Readable.from(
      (async function* () {
        yield prefix;
        yield* body;
      })(),
      { objectMode: false },
    );
  }
  const rest = head.rest!;
  return Readable.from(
    (async function* () {
      if (prefix.length > 0) yield prefix;
      yield* head.chunks;
      for (;;) {
        const next = await rest.next();
        if (next.done) return;
        yield next.value;
      }
    })(),
    { objectMode: false },
  );
}

function toClientError(err: unknown): Error {
  if (err instanceof RegistryError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'ABORT_ERR') {
    return errors.uploadInvalid('the request body ended before it was complete');
  }
  return err as Error;
}
