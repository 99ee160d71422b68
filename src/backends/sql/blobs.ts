import { Readable } from 'node:stream';
import type { Digest } from '../../core/digest.js';
import { ErrorCode, errors } from '../../core/errors.js';
import type { EventOrigin } from '../../core/events.js';
import type { BlobHandle, BlobInfo, BlobStore } from '../../core/interfaces.js';
import type { RepositoryName } from '../../core/names.js';
import { ensureRepositoryId, findRepositoryId, type Context } from './context.js';
import type { Executor } from './database.js';
import { enforceQuota } from './policies.js';
import { prepare, type Prepared } from './prepared.js';
import type { Dialect } from './schema.js';

/** How stale a link's touch may get before a read refreshes it; collection adds it to the grace period. */
export const TOUCH_RESOLUTION_MS = 1000;

export class SqlBlobStore implements BlobStore {
  constructor(
    private readonly ctx: Context,
    private readonly repository: RepositoryName,
    private readonly origin?: EventOrigin,
  ) {}

  private lookup(exec: Executor, digest: Digest) {
    return LOOKUP.first(exec, this.ctx.database.dialect, this.repository, digest);
  }

  /**
   * Finds a visible blob and restarts its link's grace period: a client that saw the blob (a
   * HEAD before a manifest PUT) can count on it for a whole grace period. The refresh is a
   * conditional write at most once per TOUCH_RESOLUTION_MS; if collection removed the link in
   * between, the update finds no row and the blob is reported missing.
   */
  private async find<R extends LookupRow>(query: Prepared<[string, string], R>, digest: Digest): Promise<R | null> {
    const { db, dialect } = this.ctx.database;
    const row = await query.first(db, dialect, this.repository, digest);
    if (!row) return null;
    const now = Date.now();
    if (row.touched_at < now - TOUCH_RESOLUTION_MS) {
      if ((await TOUCH.affected(db, dialect, now, row.repository_id, row.id)) === 0n) return null;
    }
    return row;
  }

  async stat(digest: Digest): Promise<BlobInfo | null> {
    const row = await this.find(LOOKUP, digest);
    return row ? { digest, size: row.size } : null;
  }

  async open(digest: Digest): Promise<BlobHandle | null> {
    const row = await this.find(LOOKUP_WITH_CONTENT, digest);
    if (!row) return null;
    const info = { digest, size: row.size };
    const inline = row.content;
    if (inline) return { info, read: async (range) => Readable.from(range ? [inline.subarray(range.start, range.end + 1)] : [inline], { objectMode: false }) };
    const objects = this.ctx.objects;
    const handle: BlobHandle = { info, read: (range) => objects.read(row.object_key, range) };
    const seconds = this.ctx.options.redirectSeconds;
    if (seconds && objects.presignRead) handle.directUrl = () => objects.presignRead!(row.object_key, seconds);
    return handle;
  }

  async delete(digest: Digest): Promise<void> {
    const events = this.ctx.events;
    const recorded = await this.ctx.database.tx(async (trx) => {
      const row = await this.lookup(trx, digest);
      if (!row) throw errors.blobUnknown(digest);
      const used = await trx
        .selectFrom('manifest_blobs')
        .select('manifest_id')
        .where('repository_id', '=', row.repository_id)
        .where('blob_id', '=', row.id)
        .executeTakeFirst();
      if (used) throw errors.conflict(ErrorCode.BLOB_REFERENCED, 'blob is referenced by a manifest in this repository', { digest });
      await trx.deleteFrom('repository_blobs').where('repository_id', '=', row.repository_id).where('blob_id', '=', row.id).execute();
      return events.record(trx, this.repository, this.origin, [{ action: 'delete', target: { repository: this.repository, digest } }]);
    });
    if (recorded) events.recorded();
  }

  async mount(digest: Digest, from: RepositoryName | null): Promise<BlobInfo | null> {
    const events = this.ctx.events;
    let recorded = false;
    const mounted = await this.ctx.database.tx(async (trx) => {
      let source = trx.selectFrom('blobs as b').select(['b.id', 'b.size']).where('b.digest', '=', digest);
      if (from !== null) {
        const fromId = await findRepositoryId(trx, this.ctx.database.dialect, from);
        if (fromId === null) return null;
        source = source.where(({ exists, selectFrom }) =>
          exists(selectFrom('repository_blobs as rb').select('rb.blob_id').whereRef('rb.blob_id', '=', 'b.id').where('rb.repository_id', '=', fromId)),
        );
      }
      const blob = await source.$if(this.ctx.database.postgres, (q) => q.forShare()).executeTakeFirst();
      if (!blob) return null;
      const repositoryId = await ensureRepositoryId(trx, this.ctx.database.dialect, this.repository);
      await enforceQuota(trx, this.ctx, this.repository, repositoryId, blob);
      await linkBlob(trx, this.ctx.database.dialect, repositoryId, blob.id);
      const target = { repository: this.repository, mediaType: 'application/octet-stream', digest, size: blob.size, ...(from !== null ? { fromRepository: from } : {}) };
      recorded = await events.record(trx, this.repository, this.origin, [{ action: 'mount', target, kind: 'blobs' }]);
      return { digest, size: blob.size };
    });
    if (recorded) events.recorded();
    return mounted;
  }
}

/** Makes a blob visible in a repository, or refreshes the link's grace period. */
export async function linkBlob(exec: Executor, dialect: Dialect, repositoryId: number, blobId: number): Promise<void> {
  await LINK.execute(exec, dialect, repositoryId, blobId, Date.now());
}

/** A blob visible in a repository: its row and link. */
const lookupQuery = (exec: Executor, repository: string, digest: string) =>
  exec
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .innerJoin('blobs as b', 'b.id', 'rb.blob_id')
    .select(['b.id', 'b.digest', 'b.size', 'b.object_key', 'rb.repository_id', 'rb.touched_at'])
    .where('r.name', '=', repository)
    .where('b.digest', '=', digest);

type LookupRow = { id: number; size: number; object_key: string; repository_id: number; touched_at: number };

const LOOKUP = prepare((exec, _pg, repository: string, digest: string) => lookupQuery(exec, repository, digest));

/** The same, with the inline bytes if the blob has them. */
const LOOKUP_WITH_CONTENT = prepare((exec, _pg, repository: string, digest: string) => lookupQuery(exec, repository, digest).select('b.content'));

const TOUCH = prepare((exec, _pg, now: number, repositoryId: number, blobId: number) =>
  exec.updateTable('repository_blobs').set({ touched_at: now }).where('repository_id', '=', repositoryId).where('blob_id', '=', blobId),
);

const LINK = prepare((exec, _pg, repositoryId: number, blobId: number, now: number) =>
  exec
    .insertInto('repository_blobs')
    .values({ repository_id: repositoryId, blob_id: blobId, touched_at: now })
    .onConflict((oc) => oc.columns(['repository_id', 'blob_id']).doUpdateSet({ touched_at: now })),
);
