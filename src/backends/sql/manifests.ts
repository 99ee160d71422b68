import { digestAlgorithm, digestOf, type Digest } from '../../core/digest.js';
import { ErrorCode, errors } from '../../core/errors.js';
import type { EventOrigin } from '../../core/events.js';
import type { ManifestInfo, ManifestStore, PutManifestResult, StoredManifest } from '../../core/interfaces.js';
import type { Descriptor, ParsedManifest } from '../../core/manifest.js';
import { referenceString, type Reference, type RepositoryName } from '../../core/names.js';
import { ensureRepositoryId, type Context } from './context.js';
import type { Executor } from './database.js';
import { BATCH_SIZE, inSlices, slices } from './batches.js';
import { prepare, prepareList, type Prepared } from './prepared.js';
import { immutableRule, refuseImmutableManifestDelete } from './policies.js';
import { tagImmutable } from '../../core/policies.js';

export class SqlManifestStore implements ManifestStore {
  constructor(
    private readonly ctx: Context,
    private readonly repository: RepositoryName,
    private readonly origin?: EventOrigin,
  ) {}

  /** A manifest of this repository by digest or tag, through the matching pair of queries. */
  private find<R>(byDigest: Prepared<[string, string], R>, byTag: Prepared<[string, string], R>, reference: Reference): Promise<R | undefined> {
    const { db, dialect } = this.ctx.database;
    return reference.kind === 'digest' ? byDigest.first(db, dialect, this.repository, reference.digest) : byTag.first(db, dialect, this.repository, reference.tag);
  }

  async head(reference: Reference): Promise<ManifestInfo | null> {
    const row = await this.find(HEAD_BY_DIGEST, HEAD_BY_TAG, reference);
    return row ? { digest: row.digest as Digest, mediaType: row.media_type, size: row.size } : null;
  }

  async get(reference: Reference): Promise<StoredManifest | null> {
    const row = await this.find(GET_BY_DIGEST, GET_BY_TAG, reference);
    if (!row) return null;
    this.ctx.pulls?.note(row.id);
    if (this.ctx.events.recordsPulls) await this.recordPull(reference, row);
    // The drivers hand over a Buffer of their own: served as it is, not copied.
    const bytes = Buffer.isBuffer(row.content) ? row.content : Buffer.from(row.content);
    return { digest: row.digest as Digest, mediaType: row.media_type, size: row.size, bytes };
  }

  /** A pull event, when configured: a write of its own, since a read commits nothing. */
  private async recordPull(reference: Reference, row: { digest: string; media_type: string; size: number }): Promise<void> {
    const events = this.ctx.events;
    const target = {
      repository: this.repository,
      mediaType: row.media_type,
      digest: row.digest,
      size: row.size,
      ...(reference.kind === 'tag' ? { tag: reference.tag } : {}),
    };
    const recorded = await this.ctx.database.tx((trx) => events.record(trx, this.repository, this.origin, [{ action: 'pull', target, kind: 'manifests' }]));
    if (recorded) events.recorded();
  }

  async put(reference: Reference, bytes: Buffer, manifest: ParsedManifest): Promise<PutManifestResult> {
    const digest = digestOf(bytes, reference.kind === 'digest' ? digestAlgorithm(reference.digest) : 'sha256');
    const { dialect } = this.ctx.database;
    const events = this.ctx.events;
    const recorded = await this.ctx.database.tx(async (trx) => {
      const repositoryId = await ensureRepositoryId(trx, dialect, this.repository);
      const now = Date.now();
      // An existing manifest is refreshed (its untagged age restarts) and, on PostgreSQL,
      // row-locked by the same statement: collection locks the row before it re-checks and
      // deletes, so it either waits for this tag to commit and then sees it, or deletes first
      // and this finds no row and inserts the manifest anew.
      let manifestId = (await REFRESH_MANIFEST.first(trx, dialect, now, repositoryId, digest))?.id;
      const blobs = await this.lockLinks(trx, repositoryId, manifest.blobs);
      const children = await inSlices(manifest.children, (slice) => CHILDREN.rows(trx, dialect, slice, repositoryId));
      requireAll(manifest.children, children);
      if (manifestId === undefined) {
        const annotations = manifest.annotations ? JSON.stringify(manifest.annotations) : null;
        const inserted = await INSERT_MANIFEST.first(trx, dialect, repositoryId, digest, manifest.mediaType, manifest.artifactType, manifest.subject, annotations, bytes.length, bytes, now);
        manifestId = inserted!.id;
        for (const slice of slices(blobs)) await INSERT_MANIFEST_BLOBS.execute(trx, dialect, slice, manifestId, repositoryId);
        for (const slice of slices(children)) await INSERT_MANIFEST_CHILDREN.execute(trx, dialect, slice.map((c) => c.id), manifestId);
      }
      // A reference restarts the garbage-collection grace period of the links it uses.
      for (const slice of slices(blobs)) await TOUCH_LINKS.execute(trx, dialect, slice, now, repositoryId);
      if (reference.kind === 'tag') {
        const rule = await immutableRule(trx, this.ctx, this.repository, reference.tag);
        if (!rule) await SET_TAG.execute(trx, dialect, repositoryId, reference.tag, manifestId, now);
        else if ((await ADD_TAG.affected(trx, dialect, repositoryId, reference.tag, manifestId, now)) === 0n) {
          // The tag exists (or a concurrent push just created it: the insert waited for it to commit).
          const current = await TAG_TARGET.first(trx, dialect, repositoryId, reference.tag);
          if (current && current.manifest_id !== manifestId) throw tagImmutable(this.repository, reference.tag, rule, `it points to ${current.digest}, not ${digest}`);
        }
      }
      const target = {
        repository: this.repository,
        mediaType: manifest.mediaType,
        digest,
        size: bytes.length,
        ...(reference.kind === 'tag' ? { tag: reference.tag } : {}),
      };
      return events.record(trx, this.repository, this.origin, [{ action: 'push', target, kind: 'manifests' }]);
    });
    if (recorded) events.recorded();
    return { digest, subject: manifest.subject };
  }

  /**
   * Finds the repository's links to `digests` and, on PostgreSQL, locks them so no delete or
   * collection can remove them before commit: FOR UPDATE (their grace period is refreshed
   * later; two share-lockers upgrading would deadlock), in blob-id order across all slices, so
   * two pushes sharing layers lock them in the same order. Returns the blob ids.
   */
  private async lockLinks(trx: Executor, repositoryId: number, digests: Digest[]): Promise<number[]> {
    if (digests.length === 0) return [];
    const { dialect } = this.ctx.database;
    if (digests.length <= BATCH_SIZE) {
      // One slice: found and locked by one statement, in blob-id order.
      const linked = await LINKED_BLOBS.rows(trx, dialect, digests, repositoryId);
      requireAll(digests, linked);
      return linked.map((b) => b.id);
    }
    const found = await inSlices(digests, (slice) => BLOB_IDS.rows(trx, dialect, slice));
    requireAll(digests, found);
    const ids = found.map((b) => b.id).sort((a, b) => a - b);
    const linked = await inSlices(ids, (slice) => LOCK_LINKS.rows(trx, dialect, slice, repositoryId));
    if (linked.length !== ids.length) {
      const present = new Set(linked.map((l) => l.blob_id));
      requireAll(digests, found.filter((b) => present.has(b.id)));
    }
    return ids;
  }

  async delete(reference: Reference): Promise<void> {
    const events = this.ctx.events;
    const recorded = await this.ctx.database.tx(async (trx) => {
      const repository = await trx.selectFrom('repositories').select('id').where('name', '=', this.repository).executeTakeFirst();
      if (!repository) throw errors.manifestUnknown(referenceString(reference));
      if (reference.kind === 'tag') {
        const rule = await immutableRule(trx, this.ctx, this.repository, reference.tag);
        if (rule) {
          const exists = await trx.selectFrom('tags').select('name').where('repository_id', '=', repository.id).where('name', '=', reference.tag).executeTakeFirst();
          if (!exists) throw errors.manifestUnknown(reference.tag);
          throw tagImmutable(this.repository, reference.tag, rule, 'it cannot be deleted');
        }
        const deleted = await trx.deleteFrom('tags').where('repository_id', '=', repository.id).where('name', '=', reference.tag).executeTakeFirst();
        if (deleted.numDeletedRows === 0n) throw errors.manifestUnknown(reference.tag);
        return events.record(trx, this.repository, this.origin, [{ action: 'delete', target: { repository: this.repository, tag: reference.tag } }]);
      }
      const manifest = await trx
        .selectFrom('manifests')
        .select('id')
        .where('repository_id', '=', repository.id)
        .where('digest', '=', reference.digest)
        .$if(this.ctx.database.postgres, (q) => q.forUpdate())
        .executeTakeFirst();
      if (!manifest) throw errors.manifestUnknown(reference.digest);
      const parent = await trx
        .selectFrom('manifest_children as c')
        .innerJoin('manifests as p', 'p.id', 'c.parent_id')
        .select('p.digest')
        .where('c.child_id', '=', manifest.id)
        .executeTakeFirst();
      if (parent) {
        throw errors.conflict(ErrorCode.MANIFEST_REFERENCED, 'manifest is referenced by an index in this repository', {
          digest: reference.digest,
          index: parent.digest,
        });
      }
      await refuseImmutableManifestDelete(trx, this.ctx, this.repository, manifest.id, reference.digest);
      await trx.deleteFrom('tags').where('manifest_id', '=', manifest.id).execute();
      await trx.deleteFrom('manifests').where('id', '=', manifest.id).execute();
      return events.record(trx, this.repository, this.origin, [{ action: 'delete', target: { repository: this.repository, digest: reference.digest } }]);
    });
    if (recorded) events.recorded();
  }

  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    let query = this.ctx.database.db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .select(['m.digest', 'm.media_type', 'm.size', 'm.artifact_type', 'm.annotations'])
      .where('r.name', '=', this.repository)
      .where('m.subject_digest', '=', subject);
    if (artifactType !== undefined) query = query.where('m.artifact_type', '=', artifactType);
    // Sorted here, not in SQL: an ORDER BY digest makes SQLite walk the repository's digest index
    // instead of seeking the subject index, which costs the whole repository per request.
    const rows = (await query.execute()).sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
    return rows.map((row) => ({
      mediaType: row.media_type,
      digest: row.digest,
      size: row.size,
      ...(row.artifact_type ? { artifactType: row.artifact_type } : {}),
      ...(row.annotations ? { annotations: JSON.parse(row.annotations) as Record<string, string> } : {}),
    }));
  }
}

function requireAll(wanted: Digest[], found: { digest: string }[]): void {
  if (found.length === wanted.length) return;
  const present = new Set(found.map((f) => f.digest));
  const missing = wanted.find((d) => !present.has(d));
  if (missing) throw errors.manifestBlobUnknown(missing);
}

const BLOB_IDS = prepareList((exec, _pg, digests: string[]) => exec.selectFrom('blobs').select(['id', 'digest']).where('digest', 'in', digests));

const LINKED_BLOBS = prepareList((exec, pg, digests: string[], repositoryId: number) =>
  exec
    .selectFrom('blobs as b')
    .innerJoin('repository_blobs as rb', 'rb.blob_id', 'b.id')
    .select(['b.id', 'b.digest'])
    .where('rb.repository_id', '=', repositoryId)
    .where('b.digest', 'in', digests)
    .orderBy('b.id')
    .$if(pg, (q) => q.forUpdate('rb')),
);

const LOCK_LINKS = prepareList((exec, pg, blobIds: number[], repositoryId: number) =>
  exec
    .selectFrom('repository_blobs')
    .select('blob_id')
    .where('repository_id', '=', repositoryId)
    .where('blob_id', 'in', blobIds)
    .orderBy('blob_id')
    .$if(pg, (q) => q.forUpdate()),
);

const CHILDREN = prepareList((exec, pg, digests: string[], repositoryId: number) =>
  exec
    .selectFrom('manifests')
    .select(['id', 'digest'])
    .where('repository_id', '=', repositoryId)
    .where('digest', 'in', digests)
    // Blocks only collection and deletes (FOR UPDATE), not a concurrent re-push of a child.
    .$if(pg, (q) => q.forKeyShare()),
);

const INSERT_MANIFEST_BLOBS = prepareList((exec, _pg, blobIds: number[], manifestId: number, repositoryId: number) =>
  exec.insertInto('manifest_blobs').values(blobIds.map((blobId) => ({ manifest_id: manifestId, repository_id: repositoryId, blob_id: blobId }))),
);

const INSERT_MANIFEST_CHILDREN = prepareList((exec, _pg, childIds: number[], parentId: number) =>
  exec.insertInto('manifest_children').values(childIds.map((childId) => ({ parent_id: parentId, child_id: childId }))),
);

const TOUCH_LINKS = prepareList((exec, _pg, blobIds: number[], now: number, repositoryId: number) =>
  exec.updateTable('repository_blobs').set({ touched_at: now }).where('repository_id', '=', repositoryId).where('blob_id', 'in', blobIds),
);

const manifestBy = (exec: Executor, repository: string) =>
  exec.selectFrom('manifests as m').innerJoin('repositories as r', 'r.id', 'm.repository_id').where('r.name', '=', repository);
// The tag is found by its key (repository, name): joined on the manifest alone, the planner may
// instead walk every manifest of the repository and probe each one's tags.
const manifestByTag = (exec: Executor, repository: string, tag: string) =>
  manifestBy(exec, repository)
    .innerJoin('tags as t', (j) => j.onRef('t.manifest_id', '=', 'm.id').onRef('t.repository_id', '=', 'r.id'))
    .where('t.name', '=', tag);

const HEAD_BY_DIGEST = prepare((exec, _pg, repository: string, digest: string) =>
  manifestBy(exec, repository).where('m.digest', '=', digest).select(['m.digest', 'm.media_type', 'm.size']),
);
const HEAD_BY_TAG = prepare((exec, _pg, repository: string, tag: string) => manifestByTag(exec, repository, tag).select(['m.digest', 'm.media_type', 'm.size']));
const GET_BY_DIGEST = prepare((exec, _pg, repository: string, digest: string) =>
  manifestBy(exec, repository).where('m.digest', '=', digest).select(['m.id', 'm.digest', 'm.media_type', 'm.size', 'm.content']),
);
const GET_BY_TAG = prepare((exec, _pg, repository: string, tag: string) =>
  manifestByTag(exec, repository, tag).select(['m.id', 'm.digest', 'm.media_type', 'm.size', 'm.content']),
);

/** Marks an existing manifest as pushed now, locking its row (see put). */
const REFRESH_MANIFEST = prepare((exec, _pg, now: number, repositoryId: number, digest: string) =>
  exec.updateTable('manifests').set({ pushed_at: now }).where('repository_id', '=', repositoryId).where('digest', '=', digest).returning('id'),
);

const INSERT_MANIFEST = prepare(
  (
    exec,
    _pg,
    repositoryId: number,
    digest: string,
    mediaType: string,
    artifactType: string | null,
    subject: string | null,
    annotations: string | null,
    size: number,
    content: Buffer,
    now: number,
  ) =>
    exec
      .insertInto('manifests')
      .values({
        repository_id: repositoryId,
        digest,
        media_type: mediaType,
        artifact_type: artifactType,
        subject_digest: subject,
        annotations,
        size,
        content,
        created_at: now,
        pushed_at: now,
      })
      .returning('id'),
);

const SET_TAG = prepare((exec, _pg, repositoryId: number, tag: string, manifestId: number, now: number) =>
  exec
    .insertInto('tags')
    .values({ repository_id: repositoryId, name: tag, manifest_id: manifestId, updated_at: now })
    .onConflict((oc) => oc.columns(['repository_id', 'name']).doUpdateSet({ manifest_id: manifestId, updated_at: now })),
);

/** Creates a tag only where it does not exist yet (immutable tags never move). */
const ADD_TAG = prepare((exec, _pg, repositoryId: number, tag: string, manifestId: number, now: number) =>
  exec
    .insertInto('tags')
    .values({ repository_id: repositoryId, name: tag, manifest_id: manifestId, updated_at: now })
    .onConflict((oc) => oc.columns(['repository_id', 'name']).doNothing()),
);

/** Where a tag points, its row locked on PostgreSQL until the transaction ends. */
const TAG_TARGET = prepare((exec, pg, repositoryId: number, tag: string) =>
  exec
    .selectFrom('tags as t')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .select(['t.manifest_id', 'm.digest'])
    .where('t.repository_id', '=', repositoryId)
    .where('t.name', '=', tag)
    .$if(pg, (q) => q.forUpdate()),
);
