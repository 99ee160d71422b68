/**
 * Repository summaries (counts, bytes, last push) as the list pages and `du` report them stay
 * equal to a count from scratch, done here in the test from the rows themselves, through pushes,
 * tag moves, deletes, mounts, collection, repository deletion, concurrent pushes into one
 * repository, and the migration that fills them for existing data.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Migrator, sql, type Kysely } from 'kysely';
import { parseDigest, type Digest } from '../../src/core/digest.js';
import { parseManifest } from '../../src/core/manifest.js';
import { parseReference, parseRepositoryName, type RepositoryName } from '../../src/core/names.js';
import type { Engine } from '../../src/cli/engine.js';
import { migrations } from '../../src/backends/sql/schema.js';
import { blob, image, index, type Image } from '../helpers/oci.js';
import { freshEngine } from '../helpers/registry.js';
import { openStores } from '../helpers/stores.js';
import { openTestEngine, streamOf } from './backend.js';

type Opened = Awaited<ReturnType<typeof openTestEngine>>;
let engine: Opened;

before(async () => {
  engine = await openTestEngine(64 * 1024);
});
after(async () => engine.dispose());

const name = (s: string) => parseRepositoryName(s);

async function upload(e: Engine, repository: RepositoryName, bytes: Buffer): Promise<Digest> {
  const b = blob(bytes);
  const r = e.registry.repository(repository);
  const s = await r.uploads.start();
  await r.uploads.complete(s.id, parseDigest(b.digest), streamOf(bytes), { length: bytes.length });
  return parseDigest(b.digest);
}

async function push(e: Engine, repository: RepositoryName, img: Image | { manifest: Buffer; digest: string; mediaType: string }, tag?: string) {
  if ('config' in img) for (const b of [img.config, ...img.layers]) await upload(e, repository, b.bytes);
  return e.registry.repository(repository).manifests.put(parseReference(tag ?? img.digest), img.manifest, parseManifest(img.manifest, img.mediaType));
}

/** The figures counted from the rows, independently of the summary rows and their triggers. */
async function counted(e: Engine, repository: string) {
  const db = e.database.db;
  const r = await db.selectFrom('repositories').select('id').where('name', '=', repository).executeTakeFirst();
  if (!r) return null;
  const manifests = await db.selectFrom('manifests').select(['size', 'pushed_at']).where('repository_id', '=', r.id).execute();
  const tags = await db.selectFrom('tags').select('name').where('repository_id', '=', r.id).execute();
  const links = await db.selectFrom('repository_blobs as rb').innerJoin('blobs as b', 'b.id', 'rb.blob_id').select('b.size').where('rb.repository_id', '=', r.id).execute();
  const sum = (xs: number[]) => xs.reduce((a, b) => a + Number(b), 0);
  const blobBytes = sum(links.map((l) => l.size));
  return {
    summary: {
      name: repository,
      tags: tags.length,
      manifests: manifests.length,
      bytes: blobBytes + sum(manifests.map((m) => m.size)),
      lastPush: manifests.length ? Math.max(...manifests.map((m) => Number(m.pushed_at))) : null,
    },
    usage: { name: repository, manifests: manifests.length, tags: tags.length, blobs: links.length, bytes: blobBytes },
    listed: manifests.length > 0 || links.length > 0,
  };
}

/** Every figure the list page, the repository page and `du` show equals the count from the rows. */
async function assertExact(e: Engine, repositories: string[], when: string): Promise<void> {
  const usage = await e.registry.usage();
  for (const repository of repositories) {
    const want = await counted(e, repository);
    const shown = await e.registry.browse.repositorySummary(name(repository));
    assert.deepEqual(shown, want?.summary ?? null, `${repository} ${when}: repository page`);
    const page = await e.registry.browse.repositories({ search: repository, match: 'prefix', limit: 1000 });
    const row = page.items.find((i) => i.name === repository);
    if (want?.listed) assert.deepEqual(row, want.summary, `${repository} ${when}: list page`);
    else assert.equal(row, undefined, `${repository} ${when}: listed while it holds nothing`);
    assert.deepEqual(
      usage.repositories.find((u) => u.name === repository),
      want?.usage,
      `${repository} ${when}: du`,
    );
  }
  assert.deepEqual((await e.registry.fsck({ graceMs: 3_600_000 })).problems.filter((p) => p.kind === 'repository-summary'), [], when);
}

test('summaries follow pushes, re-pushes, tag moves, deletes, mounts, collection and repository deletion', async () => {
  const e = engine;
  const a = 'summary/a';
  const b = 'summary/b';
  const repos = [a, b];
  await assertExact(e, repos, 'before anything');

  const shared = blob(randomBytes(5000));
  const one = image({ layers: [shared, blob(randomBytes(200_000))] });
  await push(e, name(a), one, 'v1');
  await assertExact(e, repos, 'after a push');

  const two = image({ layers: [shared, blob(randomBytes(3000))] });
  await push(e, name(a), two, 'v2');
  await push(e, name(a), two, 'latest');
  await assertExact(e, repos, 'after a second image and tag');

  // A tag moves; a manifest is pushed again (its push time moves forward).
  await new Promise((r) => setTimeout(r, 5));
  await push(e, name(a), one, 'latest');
  await assertExact(e, repos, 'after a tag move and a re-push');

  // An index over both, tagged; then the index goes.
  const idx = index([
    { digest: one.digest, size: one.manifest.length, mediaType: one.mediaType },
    { digest: two.digest, size: two.manifest.length, mediaType: two.mediaType },
  ]);
  await push(e, name(a), idx, 'multi');
  await assertExact(e, repos, 'after an index');
  await e.registry.repository(name(a)).manifests.delete(parseReference(idx.digest));
  await assertExact(e, repos, 'after deleting the index and its tag');

  // Deleting the latest manifest recounts the last push; deleting a tag counts one less.
  await e.registry.repository(name(a)).manifests.delete(parseReference('v1'));
  await e.registry.repository(name(a)).manifests.delete(parseReference(one.digest));
  await assertExact(e, repos, 'after deleting the latest manifest');

  // A mount, a loose upload, and a blob delete in another repository.
  await e.registry.repository(name(b)).blobs.mount(parseDigest(shared.digest), name(a));
  const loose = await upload(e, name(b), randomBytes(7000));
  await assertExact(e, repos, 'after a mount and an upload');
  await e.registry.repository(name(b)).blobs.delete(loose);
  await assertExact(e, repos, 'after a blob delete');

  // Collection: untagged manifests and then unused links go.
  await e.registry.repository(name(a)).manifests.delete(parseReference('v2'));
  await new Promise((r) => setTimeout(r, 5));
  const report = await e.registry.collectGarbage({ graceMs: 0, deleteUntaggedAfterMs: 0, skipOrphanScan: true });
  assert.ok(report.linksDeleted > 0, JSON.stringify(report));
  await assertExact(e, repos, 'after collection');
  assert.equal((await counted(e, b))?.listed, false, 'b holds nothing after collection');

  // Repository deletion leaves no summary behind; pushing again starts from nothing.
  assert.equal(await e.registry.deleteRepository(name(a)), true);
  await assertExact(e, repos, 'after deleting a repository');
  await push(e, name(a), image(), 'again');
  await assertExact(e, repos, 'after pushing into the deleted name');
});

test('concurrent pushes, tag moves and deletes in one repository leave exact summaries', async () => {
  const e = engine;
  const repository = name('summary/concurrent');
  const base = image();
  await push(e, repository, base, 'base');
  const shared = [blob(randomBytes(4000)), blob(randomBytes(6000))];
  const images = Array.from({ length: 24 }, (_, i) => image({ layers: [shared[i % 2]!, blob(randomBytes(1000 + i))] }));
  // Blobs first (uploads of shared layers race too), then the manifests: every one tags its own
  // name and moves `latest`, while the base image is deleted meanwhile.
  await Promise.all(images.map((img) => Promise.all([img.config, ...img.layers].map((x) => upload(e, repository, x.bytes)))));
  await Promise.all([
    ...images.map(async (img, i) => {
      await push(e, repository, img, `t${i}`);
      await push(e, repository, img, 'latest');
    }),
    (async () => {
      await e.registry.repository(repository).manifests.delete(parseReference('base'));
      await e.registry.repository(repository).manifests.delete(parseReference(base.digest));
    })(),
  ]);
  await assertExact(e, [repository], 'after concurrent pushes');
  // Then concurrent deletes of half the images, and re-pushes of the others.
  await Promise.all(
    images.map(async (img, i) => {
      if (i % 2) {
        await e.registry.repository(repository).manifests.delete(parseReference(`t${i}`));
        await e.registry.repository(repository).manifests.delete(parseReference(img.digest)).catch(() => {});
      } else await push(e, repository, img, `again${i}`);
    }),
  );
  await assertExact(e, [repository], 'after concurrent deletes and re-pushes');
});

test('fsck finds a summary that differs from its repository, and --repair recounts it', async () => {
  const e = engine;
  const repository = 'summary/damaged';
  await push(e, name(repository), image(), 'v1');
  const id = (await e.database.db.selectFrom('repositories').select('id').where('name', '=', repository).executeTakeFirstOrThrow()).id;
  await e.database.db.updateTable('repository_summaries').set({ tags: 7, blob_bytes: 1 }).where('repository_id', '=', id).execute();
  const found = (await e.registry.fsck({ graceMs: 3_600_000 })).problems.filter((p) => p.kind === 'repository-summary');
  assert.equal(found.length, 1);
  assert.equal(found[0]!.subject, repository);
  assert.match(found[0]!.detail, /tags: 7 → 1/);
  const repaired = await e.registry.fsck({ graceMs: 3_600_000, repair: true });
  assert.ok(repaired.problems.some((p) => p.kind === 'repository-summary' && p.repaired));
  await assertExact(e, [repository], 'after repair');
});

/**
 * A fresh store migrated up to `migration` only, for `work` to fill as that version would; removed
 * after. `work` also gets the names of the migrations still to run, in order.
 */
async function atMigration(migration: string, work: (old: Engine, later: string[]) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'portfolio-migration-'));
  const old = await openStores(dir, await freshEngine(dir), false);
  try {
    const all = migrations(old.database.dialect);
    const migrator = new Migrator({ db: old.database.db as unknown as Kysely<unknown>, provider: { getMigrations: async () => all } });
    assert.equal((await migrator.migrateTo(migration)).error, undefined);
    await work(old, Object.keys(all).filter((name) => name > migration).sort());
  } finally {
    await old.registry.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('migration 0009 fills the summaries of a store that already holds images', () =>
  atMigration('0008_policies', async (old, later) => {
    // The write paths do not read the summaries: the store is written as version 0008 left it.
    await push(old, name('old/one'), image(), 'v1');
    const img = image();
    await push(old, name('old/two'), img, 'v1');
    await push(old, name('old/two'), img, 'v2');
    await push(old, name('old/two'), image());
    await upload(old, name('old/loose'), randomBytes(2000));
    assert.equal(later[0], '0009_repository_summaries');
    assert.deepEqual(await old.database.migrate(), later);
    await assertExact(old, ['old/one', 'old/two', 'old/loose'], 'after the migration');
  }));

test("migration 0010 carries the cache's pull times over to the manifests, keeping the later one", () =>
  atMigration('0009_repository_summaries', async (old, later) => {
    const [a, b, c] = [image(), image(), image()];
    for (const img of [a, b, c]) await push(old, name('cached/app'), img);
    const db = old.database.db;
    const { id } = await db.selectFrom('repositories').select('id').where('name', '=', 'cached/app').executeTakeFirstOrThrow();
    // a: pulled only through the cache; b: noted later by the manifest GET than by the cache; c: never.
    await db.updateTable('manifests').set({ last_pulled_at: 5000 }).where('digest', '=', b.digest).execute();
    await sql`insert into cache_pulls (repository_id, digest, pulled_at) values (${id}, ${a.digest}, 1000), (${id}, ${b.digest}, 2000)`.execute(db);
    assert.equal(later[0], '0010_pull_times_in_manifests');
    assert.deepEqual(await old.database.migrate(), later);
    const rows = await db.selectFrom('manifests').select(['digest', 'last_pulled_at']).where('repository_id', '=', id).execute();
    const pulled = new Map(rows.map((r) => [r.digest, r.last_pulled_at === null ? null : Number(r.last_pulled_at)]));
    assert.deepEqual([pulled.get(a.digest), pulled.get(b.digest), pulled.get(c.digest)], [1000, 5000, null]);
    const table = await sql`select 1 from cache_pulls`.execute(db).then(
      () => 'still there',
      () => 'gone',
    );
    assert.equal(table, 'gone');
  }));

test('a substring search takes the text literally: `_` and `%` are no wildcards', async () => {
  const e = engine;
  for (const repository of ['search/a_b', 'search/axb', 'search/a-b']) await push(e, name(repository), image(), 'v1');
  const names = async (search: string) => (await e.registry.browse.repositories({ search, limit: 100 })).items.map((i) => i.name);
  assert.deepEqual(await names('a_b'), ['search/a_b']);
  assert.deepEqual(await names('a%b'), []);
  assert.deepEqual(await names('search/a'), ['search/a-b', 'search/a_b', 'search/axb']);
});
