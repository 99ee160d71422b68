/**
 * Migration from CNCF distribution 2.8.2: skopeo pushes an image, a two-platform index and
 * tags (and a referrer goes in by digest) to a running distribution; it stops; `portfolio import`
 * reads its storage directory in place; every tag, manifest, blob and referrer is served
 * byte-identical, in nested repository names too.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { expected, sampleLayout, served, writeLayout, type Layout } from './content.js';
import { pushLayout, startDistribution, type Distribution } from './distribution.js';


describe('import from CNCF distribution storage', () => {
  let registry: RunningRegistry;
  let dist: Distribution;
  let work: string;
  let layout: Layout;
  let second: Layout;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'portfolio-distribution-'));
    layout = sampleLayout();
    second = sampleLayout(4096);
    await writeLayout(join(work, 'a'), layout);
    await writeLayout(join(work, 'b'), second);
    dist = await startDistribution(work);
    await pushLayout(dist, join(work, 'a'), layout, 'library/app');
    await pushLayout(dist, join(work, 'b'), second, 'library/app/nested');
    await dist.stop();
    registry = await startRegistry();
  });
  after(async () => {
    await registry?.stop();
    await dist?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('imports every repository, manifest, tag, blob and referrer, byte-identical', async () => {
    const r = await runCli(['import', dist.root, '--json', ...registry.engineArgs]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const summary = JSON.parse(r.stdout) as { repositories: number; errors: string[]; manifests: { copied: number } };
    assert.deepEqual(summary.errors, []);
    assert.equal(summary.repositories, 2);
    assert.equal(summary.manifests.copied, 14);
    assert.deepEqual(await served(registry.url, 'library/app'), expected(layout));
    assert.deepEqual(await served(registry.url, 'library/app/nested'), expected(second));
  });

  it('skips everything on a re-run, and a prefix names new repositories', async () => {
    const again = await runCli(['import', dist.root, '--json', ...registry.engineArgs]);
    assert.equal(again.code, 0, again.stderr);
    const s = JSON.parse(again.stdout) as { manifests: { copied: number }; bytes: { copied: number }; tags: { set: number } };
    assert.deepEqual([s.manifests.copied, s.bytes.copied, s.tags.set], [0, 0, 0]);
    const prefixed = await runCli(['import', dist.root, 'moved', '--repository', 'library/app', '--json', ...registry.engineArgs]);
    assert.equal(prefixed.code, 0, prefixed.stderr);
    assert.deepEqual(await served(registry.url, 'moved/library/app'), expected(layout));
    const nested = await fetch(`${registry.url}/v2/moved/library/app/nested/tags/list`);
    assert.equal(nested.status, 404);
  });
});
