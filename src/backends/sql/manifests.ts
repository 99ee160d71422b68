import { digestAlgorithm, digestOf, type Digest } from '../../core/digest.js';
import { ErrorCode, errors } from '../../core/errors.js';
import type { ManifestInfo, ManifestStore, PutManifestResult, StoredManifest } from '../../core/interfaces.js';
import type { Descriptor, ParsedManifest } from '../../core/manifest.js';
import { referenceString, type Reference, type RepositoryName } from '../../core/names.js';
import { ensureRepositoryId, type Context } from './context.js';
import type { Executor } from './database.js';

export class SqlManifestStore implements ManifestStore {
  constructor(
    private readonly ctx: Context,
    private readonly repository: RepositoryName,
  ) {}

  private select(exec: Executor, reference: Reference) {
    const base = exec
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .where('r.name', '=', this.repository);
    return reference.kind === 'digest'
      ? base.where('m.digest', '=', reference.digest)
      : base.innerJoin('tags as t', 't.manifest_id', 'm.id').where('t.name', '=', reference.tag);
  }

  async head(reference: Reference): Promise<ManifestInfo | null> {
    const row = await this.select(this.ctx.database.db, reference).select(['m.digest', 'm.media_type', 'm.size']).executeTakeFirst();
    return row ? { digest: row.digest as Digest, mediaType: row.media_type, size: row.size } : null;
  }

  async get(reference: Reference): Promise<StoredManifest | null> {
    const row = await this.select(this.ctx.database.db, reference)
      .select(['m.digest', 'm.media_type', 'm.size', 'm.content'])
      .executeTakeFirst();
    return row ? { digest: row.digest as Digest, mediaType: row.media_type, size: row.size, bytes: Buffer.from(row.content) } : null;
  }

  async put(reference: Reference, bytes: Buffer, manifest: ParsedManifest): Promise<PutManifestResult> {
    const digest = digestOf(bytes, reference.kind === 'digest' ? digestAlgorithm(reference.digest) : 'sha256');
    const pg = this.ctx.database.postgres;
    await this.ctx.database.tx(async (trx) => {
      const repositoryId = await ensureRepositoryId(trx, this.repository);
      let manifestId = (
        await trx.selectFrom('manifests').select('id').where('repository_id', '=', repositoryId).where('digest', '=', digest).executeTakeFirst()
      )?.id;
      // Lock the links this manifest needs, so no delete or collection can remove them before
      // commit. FOR UPDATE in blob order (not FOR SHARE): the links' grace period is refreshed
      // below, and two share-lockers upgrading to write would deadlock.
      const blobs = manifest.blobs.length
        ? await trx
            .selectFrom('repository_blobs as rb')
            .innerJoin('blobs as b', 'b.id', 'rb.blob_id')
            .select(['b.id', 'b.digest'])
            .where('rb.repository_id', '=', repositoryId)
            .where('b.digest', 'in', manifest.blobs)
            .orderBy('b.id')
            .$if(pg, (q) => q.forUpdate('rb'))
            .execute()
        : [];
      requireAll(manifest.blobs, blobs);
      const children = manifest.children.length
        ? await trx
            .selectFrom('manifests')
            .select(['id', 'digest'])
            .where('repository_id', '=', repositoryId)
            .where('digest', 'in', manifest.children)
            .$if(pg, (q) => q.forShare())
            .execute()
        : [];
      requireAll(manifest.children, children);
      const now = Date.now();
      if (manifestId === undefined) {
        const inserted = await trx
          .insertInto('manifests')
          .values({
            repository_id: repositoryId,
            digest,
            media_type: manifest.mediaType,
            artifact_type: manifest.artifactType,
            subject_digest: manifest.subject,
            annotations: manifest.annotations ? JSON.stringify(manifest.annotations) : null,
            size: bytes.length,
            content: bytes,
            created_at: now,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        manifestId = inserted.id;
        const id = manifestId;
        if (blobs.length) {
          await trx
            .insertInto('manifest_blobs')
            .values(blobs.map((b) => ({ manifest_id: id, repository_id: repositoryId, blob_id: b.id })))
            .execute();
        }
        if (children.length) {
          await trx
            .insertInto('manifest_children')
            .values(children.map((c) => ({ parent_id: id, child_id: c.id })))
            .execute();
        }
      }
      if (blobs.length) {
        // A reference restarts the garbage-collection grace period of the links it uses.
        await trx
          .updateTable('repository_blobs')
          .set({ touched_at: now })
          .where('repository_id', '=', repositoryId)
          .where(
            'blob_id',
            'in',
            blobs.map((b) => b.id),
          )
          .execute();
      }
      if (reference.kind === 'tag') {
        const id = manifestId;
        await trx
          .insertInto('tags')
          .values({ repository_id: repositoryId, name: reference.tag, manifest_id: id, updated_at: now })
          .onConflict((oc) => oc.columns(['repository_id', 'name']).doUpdateSet({ manifest_id: id, updated_at: now }))
          .execute();
      }
    });
    return { digest, subject: manifest.subject };
  }

  async delete(reference: Reference): Promise<void> {
    await this.ctx.database.tx(async (trx) => {
      const repository = await trx.selectFrom('repositories').select('id').where('name', '=', this.repository).executeTakeFirst();
      if (!repository) throw errors.manifestUnknown(referenceString(reference));
      if (reference.kind === 'tag') {
        const deleted = await trx.deleteFrom('tags').where('repository_id', '=', repository.id).where('name', '=', reference.tag).executeTakeFirst();
        if (deleted.numDeletedRows === 0n) throw errors.manifestUnknown(reference.tag);
        return;
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
      await trx.deleteFrom('tags').where('manifest_id', '=', manifest.id).execute();
      await trx.deleteFrom('manifests').where('id', '=', manifest.id).execute();
    });
  }

  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    let query = this.ctx.database.db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .select(['m.digest', 'm.media_type', 'm.size', 'm.artifact_type', 'm.annotations'])
      .where('r.name', '=', this.repository)
      .where('m.subject_digest', '=', subject);
    if (artifactType !== undefined) query = query.where('m.artifact_type', '=', artifactType);
    const rows = await query.orderBy('m.digest').execute();
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

