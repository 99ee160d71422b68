/**
 * Fills a store with synthetic, consistent content quickly: rows written straight into the
 * metadata database with multi-row INSERTs, one transaction per group of repositories, so a
 * million tags take minutes instead of a million pushes. What it writes is what pushes would:
 *
 *  - one shared config blob per generation, stored as a real object (fsck stats it);
 *  - tiny layer blobs kept inline in their rows (no object);
 *  - per layer, one image manifest (the config + that layer) whose bytes hash to its digest,
 *    the repository links and manifest references for both blobs;
 *  - tags `v0`, `v1`, … pointing at the repository's manifests, tag k (and manifest k) pushed
 *    k ms after `at`, so orderings by push time are distinct;
 *  - optionally, `garbage` blobs linked into repositories but used by no manifest: what a
 *    collection pass with no grace period removes.
 *
 * Repositories 0..bigRepositories-1 hold `tagsPerBigRepository` manifests and tags each; the
 * remaining blobs and tags are spread evenly over the other repositories. Names carry `prefix`,
 * so a second generation with another prefix adds to a store instead of colliding with it.
 * Memory stays flat: only one group's rows are held at a time.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { sql } from 'kysely';
import type { Context } from './context.js';
import type { Executor } from './database.js';
import { bulkLoad } from './summaries.js';

export interface GenerateOptions {
  repositories: number;
  /** Layer blobs, one manifest each (the shared config blob comes on top). At least one per repository. */
  blobs: number;
  tags: number;
  bigRepositories?: number;
  tagsPerBigRepository?: number;
  /** Extra blobs that no manifest uses. */
  garbage?: number;
  /** Repository names are `PREFIX-NN/app-I` (default `gen`). */
  prefix?: string;
  /** Timestamps of every row (default now); an old time puts the content past any grace period. */
  at?: number;
  onProgress?: (p: { repositories: number; blobs: number; tags: number }) => void;
}

export interface GenerateReport {
  repositories: number;
  blobs: number;
  manifests: number;
  tags: number;
  garbage: number;
  durationMs: number;
}

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar';
/** Rows per INSERT: under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters at 10 columns. */
const ROWS = 1000;
/** A transaction's worth: flush a group once it holds this many manifests (or repositories). */
const GROUP = 10_000;

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface RepoPlan {
  name: string;
  layers: number;
  tags: number;
  garbage: number;
  firstBlob: number;
  firstGarbage: number;
}

export function planRepositories(o: GenerateOptions): RepoPlan[] {
  const big = Math.min(o.bigRepositories ?? 0, o.repositories);
  const perBig = o.tagsPerBigRepository ?? 0;
  const rest = o.repositories - big;
  const restBlobs = o.blobs - big * perBig;
  const restTags = o.tags - big * perBig;
  const garbage = o.garbage ?? 0;
  for (const [name, v] of Object.entries({ repositories: o.repositories, blobs: o.blobs, tags: o.tags, garbage, bigRepositories: big, tagsPerBigRepository: perBig })) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a whole number`);
  }
  if (o.repositories < 1) throw new RangeError('repositories must be at least 1');
  if (big > 0 && perBig < 1) throw new RangeError('big repositories need at least one tag each');
  if (restBlobs < rest || (rest === 0 && restBlobs > 0)) throw new RangeError(`blobs must cover one per repository plus ${perBig} per big repository`);
  if (restTags < 0 || (rest === 0 && restTags > 0)) throw new RangeError(`tags must be at least ${big * perBig} (the big repositories' tags)`);
  const prefix = o.prefix ?? 'gen';
  const share = (total: number, i: number, n: number) => Math.floor(total / n) + (i < total % n ? 1 : 0);
  const plans: RepoPlan[] = [];
  let blob = 0;
  let junk = 0;
  for (let i = 0; i < o.repositories; i++) {
    const layers = i < big ? perBig : share(restBlobs, i - big, rest);
    const tags = i < big ? perBig : share(restTags, i - big, rest);
    const g = share(garbage, i, o.repositories);
    plans.push({ name: `${prefix}-${String(i % 100).padStart(2, '0')}/app-${i}`, layers, tags, garbage: g, firstBlob: blob, firstGarbage: junk });
    blob += layers;
    junk += g;
  }
  return plans;
}

/** Inserts `rows` in statements of ROWS rows; with `returning`, collects what each returns. */
async function insertAll<R>(rows: R[], write: (chunk: R[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += ROWS) await write(rows.slice(i, i + ROWS));
}

export async function generate(ctx: Context, o: GenerateOptions): Promise<GenerateReport> {
  const started = Date.now();
  const plans = planRepositories(o);
  const prefix = o.prefix ?? 'gen';
  const at = o.at ?? Date.now();
  const database = ctx.database;

  // The shared config: real bytes in the object store, so blob checks touch the store too.
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, generated: prefix }));
  const configDigest = sha256(configBytes);
  const configKey = `blobs/${configDigest.slice(7, 9)}/generated-${configDigest.slice(7)}`;
  const state = await ctx.objects.beginUpload(configKey);
  const appended = await ctx.objects.appendUpload(configKey, state, 0, Readable.from([configBytes]));
  await ctx.objects.completeUpload(configKey, appended.state, configBytes.length);
  const configId = await database.tx(async (trx) =>
    Number(
      (await trx.insertInto('blobs').values({ digest: configDigest, size: configBytes.length, object_key: configKey, content: null, created_at: at }).returning('id').executeTakeFirstOrThrow()).id,
    ),
  );

  const report: GenerateReport = { repositories: 0, blobs: 0, manifests: 0, tags: 0, garbage: 0, durationMs: 0 };
  let group: RepoPlan[] = [];
  let groupManifests = 0;
  const flush = async () => {
    if (!group.length) return;
    const plansNow = group;
    group = [];
    groupManifests = 0;
    const shared = { prefix, at, configId, configDigest, configSize: configBytes.length };
    await database.tx((trx) =>
      bulkLoad(trx, database.dialect, () => writeGroup(trx, plansNow, shared, report), (repositories) => repositories),
    );
    o.onProgress?.({ repositories: report.repositories, blobs: report.blobs, tags: report.tags });
  };
  for (const plan of plans) {
    group.push(plan);
    groupManifests += plan.layers + plan.garbage;
    if (groupManifests >= GROUP || group.length >= GROUP) await flush();
  }
  await flush();
  // A settled database, as autovacuum leaves it: planner statistics and the visibility map.
  if (database.postgres) await sql`vacuum analyze`.execute(database.db);
  report.durationMs = Date.now() - started;
  return report;
}

interface Shared {
  prefix: string;
  at: number;
  configId: number;
  configDigest: string;
  configSize: number;
}

/** Writes one group; resolves to the ids of its repositories. */
async function writeGroup(trx: Executor, plans: RepoPlan[], s: Shared, report: GenerateReport): Promise<number[]> {
  const repoIds = new Map<string, number>();
  await insertAll(plans, async (chunk) => {
    const rows = await trx.insertInto('repositories').values(chunk.map((p) => ({ name: p.name, created_at: s.at }))).returning(['id', 'name']).execute();
    for (const r of rows) repoIds.set(r.name, Number(r.id));
  });

  // Layer and garbage blobs: a few bytes inline, named so no two generations collide.
  const layerBytes = (n: number) => Buffer.from(`${s.prefix} layer ${n}`);
  const garbageBytes = (n: number) => Buffer.from(`${s.prefix} garbage ${n}`);
  /** `n`: the layer's number within its repository (push times step by 1 ms in that order). */
  interface BlobRow { repo: number; bytes: Buffer; digest: string; used: boolean; n: number }
  const blobs: BlobRow[] = [];
  for (const p of plans) {
    const repo = repoIds.get(p.name)!;
    for (let k = 0; k < p.layers; k++) {
      const bytes = layerBytes(p.firstBlob + k);
      blobs.push({ repo, bytes, digest: sha256(bytes), used: true, n: k });
    }
    for (let k = 0; k < p.garbage; k++) {
      const bytes = garbageBytes(p.firstGarbage + k);
      blobs.push({ repo, bytes, digest: sha256(bytes), used: false, n: k });
    }
  }
  const blobIds = new Map<string, number>();
  await insertAll(blobs, async (chunk) => {
    const rows = await trx
      .insertInto('blobs')
      .values(chunk.map((b) => ({ digest: b.digest, size: b.bytes.length, object_key: `inline/${b.digest.slice(7)}`, content: b.bytes, created_at: s.at })))
      .returning(['id', 'digest'])
      .execute();
    for (const r of rows) blobIds.set(r.digest, Number(r.id));
  });
  const links = [
    ...plans.map((p) => ({ repository_id: repoIds.get(p.name)!, blob_id: s.configId, touched_at: s.at })),
    ...blobs.map((b) => ({ repository_id: b.repo, blob_id: blobIds.get(b.digest)!, touched_at: s.at })),
  ];
  await insertAll(links, (chunk) => trx.insertInto('repository_blobs').values(chunk).execute());

  // One manifest per layer: the config and that layer, bytes hashed to their digest.
  const manifests = blobs
    .filter((b) => b.used)
    .map((b) => {
      const content = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MANIFEST,
          config: { mediaType: CONFIG, digest: s.configDigest, size: s.configSize },
          layers: [{ mediaType: LAYER, digest: b.digest, size: b.bytes.length }],
        }),
      );
      return { repo: b.repo, layer: blobIds.get(b.digest)!, content, digest: sha256(content), n: b.n };
    });
  const manifestIds = new Map<string, number>();
  await insertAll(manifests, async (chunk) => {
    const rows = await trx
      .insertInto('manifests')
      .values(
        chunk.map((m) => ({
          repository_id: m.repo,
          digest: m.digest,
          media_type: MANIFEST,
          artifact_type: CONFIG,
          subject_digest: null,
          annotations: null,
          size: m.content.length,
          content: m.content,
          created_at: s.at,
          pushed_at: s.at + m.n,
        })),
      )
      .returning(['id', 'repository_id', 'digest'])
      .execute();
    for (const r of rows) manifestIds.set(`${r.repository_id}/${r.digest}`, Number(r.id));
  });
  const references = manifests.flatMap((m) => {
    const manifest_id = manifestIds.get(`${m.repo}/${m.digest}`)!;
    return [
      { manifest_id, repository_id: m.repo, blob_id: s.configId },
      { manifest_id, repository_id: m.repo, blob_id: m.layer },
    ];
  });
  await insertAll(references, (chunk) => trx.insertInto('manifest_blobs').values(chunk).execute());

  // Tag k of a repository points at its manifest k (modulo its manifest count).
  const byRepo = new Map<number, number[]>();
  for (const m of manifests) {
    const list = byRepo.get(m.repo) ?? [];
    list.push(manifestIds.get(`${m.repo}/${m.digest}`)!);
    byRepo.set(m.repo, list);
  }
  const tags: { repository_id: number; name: string; manifest_id: number; updated_at: number }[] = [];
  for (const p of plans) {
    const repo = repoIds.get(p.name)!;
    const ids = byRepo.get(repo) ?? [];
    for (let k = 0; k < p.tags && ids.length; k++) tags.push({ repository_id: repo, name: `v${k}`, manifest_id: ids[k % ids.length]!, updated_at: s.at + k });
  }
  await insertAll(tags, (chunk) => trx.insertInto('tags').values(chunk).execute());

  report.repositories += plans.length;
  report.blobs += blobs.length;
  report.manifests += manifests.length;
  report.tags += tags.length;
  report.garbage += blobs.length - manifests.length;
  return [...repoIds.values()];
}
