/**
 * Integrity check of every invariant the metadata promises about the stores:
 * blob rows point at bytes of the right size (and digest, with `full`); every manifest's bytes
 * match its digest and everything it references is present in its repository; tags point at
 * manifests; repository summaries equal their contents; sessions have their bytes; no object
 * lies in the store without a row past grace.
 */
import { createHasher, digestAlgorithm, digestOf, finishDigest, parseDigest, type Digest } from '../../core/digest.js';
import { RegistryError } from '../../core/errors.js';
import type { FsckOptions, FsckProblem, FsckReport } from '../../core/maintenance.js';
import { parseManifest } from '../../core/manifest.js';
import { inSlices } from './batches.js';
import type { Context } from './context.js';
import { deadStagedUploads, knownKeys } from './gc.js';
import { checkSummaries, recountSummary } from './summaries.js';

const PAGE = 500;

/** `repository@digest` of each (repository, digest) row the lookup finds, over slices of the digests. */
async function presentPairs(digests: Digest[], lookup: (slice: Digest[]) => Promise<{ repository: number; digest: string }[]>): Promise<Set<string>> {
  const rows = await inSlices([...new Set(digests)], lookup);
  return new Set(rows.map((r) => `${r.repository}@${r.digest}`));
}

export async function fsck(ctx: Context, options: FsckOptions): Promise<FsckReport> {
  const db = ctx.database.db;
  const report: FsckReport = { checked: { blobs: 0, manifests: 0, tags: 0, repositories: 0, uploads: 0, objects: 0 }, problems: [] };
  const problem = (p: Omit<FsckProblem, 'repaired'>, repaired = false) => report.problems.push({ ...p, repaired });
  const progress = (phase: string, done: number) => done % 1000 === 0 && options.onProgress?.({ phase, done });

  // Blobs: bytes present, right size, right digest.
  for (let after = -1; ; ) {
    const rows = await db
      .selectFrom('blobs')
      .select((eb) => ['id', 'digest', 'size', 'object_key', eb.fn<number | null>('octet_length', ['content']).as('inline_size')])
      .where('id', '>', after)
      .orderBy('id')
      .limit(PAGE)
      .execute();
    for (const row of rows) {
      progress('blobs', ++report.checked.blobs);
      if (row.inline_size !== null) {
        // Inline: the bytes are in the row.
        if (Number(row.inline_size) !== row.size) {
          problem({ kind: 'blob-size', subject: row.digest, detail: `inline bytes are ${row.inline_size}, expected ${row.size}` });
        } else if (options.full) {
          const { content } = await db.selectFrom('blobs').select('content').where('id', '=', row.id).executeTakeFirstOrThrow();
          const digest = row.digest as Digest;
          const actual = finishDigest(digestAlgorithm(digest), createHasher(digestAlgorithm(digest)).update(content ?? Buffer.alloc(0)));
          if (actual !== digest) problem({ kind: 'blob-digest', subject: row.digest, detail: `inline bytes hash to ${actual}` });
        }
        continue;
      }
      const info = await ctx.objects.stat(row.object_key);
      if (!info) {
        const referenced = await db.selectFrom('repository_blobs').select('blob_id').where('blob_id', '=', row.id).executeTakeFirst();
        let repaired = false;
        if (options.repair && !referenced) {
          await db.deleteFrom('blobs').where('id', '=', row.id).execute();
          repaired = true;
        }
        problem({ kind: 'blob-missing', subject: row.digest, detail: `object ${row.object_key} is missing${referenced ? ' and repositories link it' : ''}` }, repaired);
        continue;
      }
      if (info.size !== row.size) {
        problem({ kind: 'blob-size', subject: row.digest, detail: `object ${row.object_key} has ${info.size} bytes, expected ${row.size}` });
        continue;
      }
      if (options.full) {
        const digest = row.digest as Digest;
        const hash = createHasher(digestAlgorithm(digest));
        for await (const chunk of await ctx.objects.read(row.object_key)) hash.update(chunk as Buffer);
        const actual = finishDigest(digestAlgorithm(digest), hash);
        if (actual !== digest) problem({ kind: 'blob-digest', subject: row.digest, detail: `object ${row.object_key} hashes to ${actual}` });
      }
    }
    const last = rows[rows.length - 1];
    if (!last || rows.length < PAGE) break;
    after = last.id;
  }

  // Manifests: bytes match the digest; every referenced blob and child is in the repository.
  for (let after = -1; ; ) {
    const rows = await db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .select(['m.id', 'm.repository_id', 'm.digest', 'm.media_type', 'm.content', 'r.name'])
      .where('m.id', '>', after)
      .orderBy('m.id')
      .limit(PAGE)
      .execute();
    // Parsed first, then the references of the whole page looked up together: one query per
    // page and kind rather than per manifest, which on PostgreSQL is a round trip each.
    const parsedRows: { subject: string; repository: number; blobs: Digest[]; children: Digest[] }[] = [];
    for (const row of rows) {
      progress('manifests', ++report.checked.manifests);
      const subject = `${row.name}@${row.digest}`;
      const bytes = Buffer.from(row.content);
      const digest = parseDigest(row.digest);
      if (digestOf(bytes, digestAlgorithm(digest)) !== digest) {
        problem({ kind: 'manifest-digest', subject, detail: 'stored bytes do not match the digest' });
        continue;
      }
      try {
        const parsed = parseManifest(bytes, row.media_type);
        parsedRows.push({ subject, repository: row.repository_id, blobs: parsed.blobs, children: parsed.children });
      } catch (err) {
        problem({ kind: 'manifest-reference', subject, detail: `stored manifest no longer parses: ${err instanceof RegistryError ? err.message : String(err)}` });
      }
    }
    const repositories = [...new Set(parsedRows.map((r) => r.repository))];
    const blobsHeld = await presentPairs(
      parsedRows.flatMap((r) => r.blobs),
      (slice) =>
        db
          .selectFrom('repository_blobs as rb')
          .innerJoin('blobs as b', 'b.id', 'rb.blob_id')
          .select(['rb.repository_id as repository', 'b.digest'])
          .where('rb.repository_id', 'in', repositories)
          .where('b.digest', 'in', slice)
          .execute(),
    );
    const childrenHeld = await presentPairs(
      parsedRows.flatMap((r) => r.children),
      (slice) =>
        db
          .selectFrom('manifests')
          .select(['repository_id as repository', 'digest'])
          .where('repository_id', 'in', repositories)
          .where('digest', 'in', slice)
          .execute(),
    );
    for (const { subject, repository, blobs, children } of parsedRows) {
      for (const d of blobs) if (!blobsHeld.has(`${repository}@${d}`)) problem({ kind: 'manifest-reference', subject, detail: `blob ${d} is not in the repository` });
      for (const d of children) if (!childrenHeld.has(`${repository}@${d}`)) problem({ kind: 'manifest-reference', subject, detail: `child manifest ${d} is not in the repository` });
    }
    const last = rows[rows.length - 1];
    if (!last || rows.length < PAGE) break;
    after = last.id;
  }

  // Tags point at manifests of their own repository: read in key order, a page at a time.
  for (let after: [number, string] = [-1, '']; ; ) {
    const tags = await db
      .selectFrom('tags as t')
      .innerJoin('repositories as r', 'r.id', 't.repository_id')
      .leftJoin('manifests as m', (j) => j.onRef('m.id', '=', 't.manifest_id').onRef('m.repository_id', '=', 't.repository_id'))
      .select(['t.repository_id', 't.name', 'r.name as repository', 'm.id as manifest'])
      .where((eb) => eb(eb.refTuple('t.repository_id', 't.name'), '>', eb.tuple(after[0], after[1])))
      .orderBy('t.repository_id')
      .orderBy('t.name')
      .limit(PAGE)
      .execute();
    for (const t of tags) {
      progress('tags', ++report.checked.tags);
      if (t.manifest === null) problem({ kind: 'tag-dangling', subject: `${t.repository}:${t.name}`, detail: 'the tag points at no manifest of its repository' });
    }
    const last = tags[tags.length - 1];
    if (!last || tags.length < PAGE) break;
    after = [last.repository_id, last.name];
  }

  // Repository summaries (counts, bytes, last push) equal a count from scratch.
  for await (const check of checkSummaries(db)) {
    progress('repositories', ++report.checked.repositories);
    if (check.differences.length === 0) continue;
    let repaired = false;
    if (options.repair) {
      await recountSummary(ctx.database, check.repositoryId);
      repaired = true;
    }
    problem({ kind: 'repository-summary', subject: check.name, detail: `summary differs from its contents: ${check.differences.join(', ')}` }, repaired);
  }

  // Upload sessions: live ones have their bytes; expired ones are reclaimed.
  for (let after = ''; ; ) {
    const uploads = await db
      .selectFrom('uploads')
      .select((eb) => ['id', 'object_key', 'store_state', 'size', 'expires_at', eb('content', 'is', null).as('stored')])
      .where('id', '>', after)
      .orderBy('id')
      .limit(PAGE)
      .execute();
    for (const u of uploads) {
      report.checked.uploads++;
      if (u.expires_at <= Date.now()) {
        let repaired = false;
        if (options.repair) {
          await db.deleteFrom('uploads').where('id', '=', u.id).execute();
          await ctx.objects.abortUpload(u.object_key, u.store_state).catch(() => {});
          repaired = true;
        }
        problem({ kind: 'upload-expired', subject: u.id, detail: 'session expired but was not reclaimed' }, repaired);
        continue;
      }
      if (u.stored && u.size > 0) {
        try {
          const stream = await ctx.objects.readUpload(u.object_key, u.store_state, Math.min(u.size, 1));
          stream.destroy();
        } catch (err) {
          problem({ kind: 'upload-missing', subject: u.id, detail: `session bytes unreadable: ${(err as Error).message}` });
        }
      }
    }
    const last = uploads[uploads.length - 1];
    if (!last || uploads.length < PAGE) break;
    after = last.id;
  }

  // Objects no row points to, older than the grace period.
  const oldest = Date.now() - options.graceMs;
  let batch: { key: string; size: number; modified: Date }[] = [];
  const flush = async () => {
    const known = await knownKeys(ctx, batch.map((o) => o.key));
    for (const o of batch) {
      if (known.has(o.key) || o.modified.getTime() >= oldest) continue;
      let repaired = false;
      if (options.repair) {
        await ctx.objects.delete(o.key);
        repaired = true;
      }
      problem({ kind: 'orphan-object', subject: o.key, detail: `${o.size} bytes that no blob or upload points to` }, repaired);
    }
    batch = [];
  };
  for await (const o of ctx.objects.list('blobs/')) {
    progress('objects', ++report.checked.objects);
    batch.push(o);
    if (batch.length >= PAGE) await flush();
  }
  if (batch.length) await flush();

  // Staging objects (S3) of sessions that no longer exist.
  for (const key of await deadStagedUploads(ctx, oldest)) {
    let repaired = false;
    if (options.repair && ctx.objects.discardStaged) {
      await ctx.objects.discardStaged(key);
      repaired = true;
    }
    problem({ kind: 'orphan-object', subject: key, detail: 'staged chunks of an upload session that no longer exists' }, repaired);
  }
  return report;
}
