/**
 * `portfolio cache prune --unused-for`: last-pulled times (noted on every manifest GET) are
 * written in batches (here: when the cache stops), and a cached manifest whose last pull is older than the cutoff is deleted with
 * its tags while a recently pulled one stays. Ages are set in the database: no test waits a month.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshEngine, runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { image, OCI_MANIFEST, pushImage, type Image } from '../helpers/oci.js';
import { withStores } from '../helpers/stores.js';

describe('cache prune', () => {
  let dir: string;
  let upstream: RunningRegistry;
  let cache: RunningRegistry;
  let kept: Image;
  let stale: Image;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-prune-'));
    upstream = await startRegistry();
    kept = image();
    stale = image();
    assert.equal((await pushImage(upstream.url, 'team/kept', kept, 'v1')).status, 201);
    assert.equal((await pushImage(upstream.url, 'team/stale', stale, 'v1')).status, 201);
  });

  after(async () => {
    await cache?.stop();
    await upstream?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function pull(name: string, img: Image): Promise<void> {
    const res = await fetch(`${cache.url}/v2/${name}/manifests/v1`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), img.digest);
    await res.arrayBuffer();
    for (const b of [img.config, ...img.layers]) {
      const blob = await fetch(`${cache.url}/v2/${name}/blobs/${b.digest}`);
      assert.deepEqual(Buffer.from(await blob.arrayBuffer()), b.bytes);
    }
  }

  /** Waits (bounded) until the cache stored the manifest: its tag shows in the local tags list. */
  async function stored(name: string): Promise<void> {
    for (let i = 0; i < 1200; i++) {
      const res = await fetch(`${cache.url}/v2/${name}/tags/list`);
      if (res.status === 200 && ((await res.json()) as { tags: string[] }).tags.includes('v1')) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`${name}:v1 was never stored`);
  }

  it('records pulls in a batch and deletes only what was not pulled since the cutoff', async () => {
    const proxy = `up=${upstream.url}`;
    // Stores of our own: they outlive the process, which writes its batch when it stops.
    const dataDir = join(dir, 'cache');
    cache = await startRegistry({ args: ['--proxy', proxy], dataDir, engineArgs: await freshEngine(dataDir) });
    await pull('up/team/kept', kept);
    await pull('up/team/stale', stale);
    await stored('up/team/kept');
    await stored('up/team/stale');
    // A fill dates the manifest by its store; pulls from the cache are noted as pulls.
    await pull('up/team/kept', kept);
    await pull('up/team/stale', stale);
    await cache.stop(); // writes the last-pulled times still in memory

    const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort();
    await withStores(cache.dataDir, cache.engineArgs, async ({ database }) => {
      const pulls = await database.db
        .selectFrom('manifests as m')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .select(['r.name', 'm.digest'])
        .where('m.last_pulled_at', 'is not', null)
        .execute();
      assert.deepEqual(names(pulls), ['up/team/kept', 'up/team/stale']);
      // Everything was stored a long time ago; only `kept` was pulled recently.
      await database.db.updateTable('manifests').set({ pushed_at: 1 }).execute();
      await database.db.updateTable('manifests').set({ last_pulled_at: 1 }).where('digest', '=', stale.digest).execute();
    });

    const args = ['cache', 'prune', '--unused-for', '30d', '--proxy', proxy, '--json', ...cache.engineArgs];
    const dry = await runCli([...args, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(JSON.parse(dry.stdout), { manifestsDeleted: 1, manifestsKept: 0 });
    const run = await runCli(args);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { manifestsDeleted: 1, manifestsKept: 0 });

    await withStores(cache.dataDir, cache.engineArgs, async ({ database }) => {
      const left = await database.db.selectFrom('manifests as m').innerJoin('repositories as r', 'r.id', 'm.repository_id').select(['r.name', 'm.digest']).execute();
      assert.deepEqual(left.map((m) => [m.name, m.digest]), [['up/team/kept', kept.digest]]);
      const tags = await database.db.selectFrom('tags as t').innerJoin('repositories as r', 'r.id', 't.repository_id').select('r.name').execute();
      assert.deepEqual(names(tags), ['up/team/kept']);
    });
    // On a schedule: the background collection pass prunes first. `kept` is now unused too.
    await withStores(cache.dataDir, cache.engineArgs, async ({ database }) => {
      await database.db.updateTable('manifests').set({ last_pulled_at: 1 }).execute();
    });
    const scheduled = await startRegistry({
      args: ['--proxy', proxy, '--cache-prune-unused-for', '30d', '--gc-interval', '100ms'],
      dataDir: cache.dataDir,
      engineArgs: cache.engineArgs,
    });
    try {
      let tags: string[] = ['v1'];
      // The pass logs what it pruned once it is done: wait for that line too.
      const done = () => !tags.includes('v1') && /cache pruned/.test(scheduled.output());
      for (let i = 0; i < 1200 && !done(); i++) {
        const res = await fetch(`${scheduled.url}/v2/up/team/kept/tags/list`);
        tags = res.status === 200 ? ((await res.json()) as { tags: string[] }).tags : [];
        if (!done()) await new Promise((r) => setTimeout(r, 25));
      }
      assert.deepEqual(tags, []);
      assert.match(scheduled.output(), /cache pruned/);
    } finally {
      await scheduled.stop();
    }
    // Nothing configured: a clear error, not a silent no-op.
    const none = await runCli(['cache', 'prune', '--unused-for', '30d', ...cache.engineArgs]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no cached upstreams configured/);
  });
});
