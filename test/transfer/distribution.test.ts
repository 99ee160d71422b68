/**
 * Migration from CNCF distribution 2.8.2: skopeo pushes an image, a two-platform index and
 * tags (and a referrer goes in by digest) to a running distribution; it stops; `portfolio import`
 * reads its storage directory in place; every tag, manifest, blob and referrer is served
 * byte-identical, in nested repository names too.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { expected, sampleLayout, served, writeLayout, type Layout } from './content.js';
import { startDistribution, type Distribution } from './distribution.js';

const run = promisify(execFile);
const SKOPEO = process.env.SKOPEO ?? 'skopeo';

/** Pushes a layout's tagged entries with skopeo and its untagged ones (referrers) by digest over HTTP. */
export async function pushLayout(dist: Distribution, layoutDir: string, layout: Layout, repo: string, auth: string[] = [], headers: Record<string, string> = {}): Promise<void> {
  for (const e of layout.entries) {
    if (e.tag) await run(SKOPEO, ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', ...auth, `oci:${layoutDir}:${e.tag}`, `docker://${dist.host}/${repo}:${e.tag}`]);
  }
  for (const e of layout.entries.filter((x) => !x.tag)) {
    const m = JSON.parse(layout.objects.get(e.digest)!.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
      const bytes = layout.objects.get(d)!;
      const start = await fetch(`${dist.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
      assert.equal(start.status, 202);
      const location = new URL(start.headers.get('location')!, dist.url);
      location.searchParams.set('digest', d);
      const put = await fetch(location, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: bytes });
      assert.equal(put.status, 201, await put.text());
    }
    const put = await fetch(`${dist.url}/v2/${repo}/manifests/${e.digest}`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': e.mediaType },
      body: layout.objects.get(e.digest)!,
    });
    assert.equal(put.status, 201, await put.text());
  }
}

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
    assert.equal(summary.manifests.copied, 12);
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
