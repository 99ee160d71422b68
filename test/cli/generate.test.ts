/**
 * `portfolio dev generate` fills a store with content that the registry serves like pushed
 * content and that fsck finds consistent; its unused blobs are exactly what collection removes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FsckReport, GcReport } from '../../src/core/maintenance.js';
import { freshEngine, runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';

let dir: string;
let engineArgs: string[];
let reg: RunningRegistry | undefined;
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portfolio-generate-'));
  engineArgs = await freshEngine(dir);
});
after(async () => {
  await reg?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function cli<T>(...args: string[]): Promise<T> {
  const r = await runCli([...args, ...engineArgs, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

/** Every item of a paginated list, following the Link header (each page's `last=`). */
async function all(path: string, key: 'repositories' | 'tags'): Promise<string[]> {
  const items: string[] = [];
  for (let url: string | undefined = `${reg!.url}${path}`; url; ) {
    const res: Response = await fetch(url);
    assert.equal(res.status, 200);
    items.push(...((await res.json()) as Record<string, string[]>)[key]!);
    const next = /<([^>]+)>/.exec(res.headers.get('link') ?? '')?.[1];
    if (next) assert.match(next, /last=/);
    url = next ? new URL(next, reg!.url).href : undefined;
  }
  return items;
}

test('generated content is served, listed, fsck-clean, and its unused blobs are collected', async () => {
  const report = await cli<{ repositories: number; blobs: number; manifests: number; tags: number; garbage: number }>(
    'dev', 'generate', '--repositories', '12', '--blobs', '40', '--tags', '50', '--big-repositories', '1', '--tags-in-big-repo', '20', '--garbage', '5',
  );
  assert.deepEqual({ ...report, durationMs: undefined }, { repositories: 12, blobs: 45, manifests: 40, tags: 50, garbage: 5, durationMs: undefined });

  reg = await startRegistry({ engineArgs, dataDir: dir, args: ['--gc-interval', '0'] });
  const repositories = await all('/v2/_catalog?n=5', 'repositories');
  assert.equal(repositories.length, 12);
  assert.deepEqual(repositories, [...repositories].sort());
  assert.ok(repositories.includes('gen-00/app-0') && repositories.includes('gen-11/app-11'), repositories.join(' '));

  const tags = await all('/v2/gen-00/app-0/tags/list?n=7', 'tags');
  assert.equal(tags.length, 20);
  assert.deepEqual(new Set(tags), new Set(Array.from({ length: 20 }, (_, i) => `v${i}`)));
  const spread = await Promise.all(repositories.filter((r) => r !== 'gen-00/app-0').map((r) => all(`/v2/${r}/tags/list`, 'tags')));
  assert.equal(spread.reduce((n, t) => n + t.length, 0), 30);

  // A manifest by tag: its bytes hash to its digest, and what it references can be pulled.
  const res = await fetch(`${reg.url}/v2/gen-05/app-5/manifests/v0`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 200);
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(sha256(bytes), res.headers.get('docker-content-digest'));
  const manifest = JSON.parse(bytes.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  for (const d of [manifest.config, ...manifest.layers]) {
    const blob: Response = await fetch(`${reg.url}/v2/gen-05/app-5/blobs/${d.digest}`);
    assert.equal(blob.status, 200);
    const body = Buffer.from(await blob.arrayBuffer());
    assert.equal(body.length, d.size);
    assert.equal(sha256(body), d.digest);
  }
  const byDigest = await fetch(`${reg.url}/v2/gen-05/app-5/manifests/${sha256(bytes)}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(byDigest.status, 200);
  await byDigest.arrayBuffer();

  const fsck = await cli<FsckReport>('fsck', '--grace', '0', '--full');
  assert.deepEqual(fsck.problems, []);
  assert.deepEqual(fsck.checked, { blobs: 46, manifests: 40, tags: 50, repositories: 12, uploads: 0, objects: 1 });

  const gc = await cli<GcReport>('gc', '--grace', '0');
  assert.equal(gc.blobsDeleted, 5);
  assert.equal(gc.manifestsDeleted, 0);
  const again = await cli<FsckReport>('fsck', '--grace', '0');
  assert.deepEqual(again.problems, []);
  assert.equal(again.checked.blobs, 41);
  assert.equal((await fetch(`${reg.url}/v2/gen-05/app-5/manifests/v0`, { method: 'HEAD' })).status, 200);
});

test('a second generation with another prefix adds to the store; impossible shapes are refused', async () => {
  const more = await cli<{ repositories: number; tags: number }>('dev', 'generate', '--prefix', 'more', '--repositories', '3', '--blobs', '3', '--tags', '0');
  assert.equal(more.repositories, 3);
  assert.equal(more.tags, 0);
  const fsck = await cli<FsckReport>('fsck', '--grace', '0');
  assert.deepEqual(fsck.problems, []);
  assert.equal(fsck.checked.manifests, 43);

  const tooFew = await runCli(['dev', 'generate', ...engineArgs, '--prefix', 'bad', '--repositories', '10', '--blobs', '5']);
  assert.equal(tooFew.code, 1);
  assert.match(tooFew.stderr, /blobs must cover one per repository/);
  const notANumber = await runCli(['dev', 'generate', ...engineArgs, '--repositories', 'many', '--blobs', '5']);
  assert.notEqual(notANumber.code, 0);
  assert.match(notANumber.stderr, /whole number/);
});
