/**
 * A manifest with as many references as a manifest may carry: every statement that lists them
 * goes to the database in slices (SQLite refuses more than 32,766 bound values in one
 * statement, PostgreSQL 65,535), so pushing, reading, checking, collecting and deleting it work.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FsckReport, GcReport } from '../../src/core/maintenance.js';
import { blob, image, pushBlob, type Blob } from '../helpers/oci.js';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';

const REFERENCES = Number(process.env.PORTFOLIO_TEST_LARGE_MANIFEST_REFERENCES ?? 10_000);

let reg: RunningRegistry;
before(async () => {
  reg = await startRegistry({ args: ['--gc-interval', '0'] });
});
after(async () => reg?.stop());

test(`a manifest with ${REFERENCES} references is stored, read, checked, kept by collection and deleted`, async () => {
  const layers: Blob[] = Array.from({ length: REFERENCES - 1 }, (_, i) => blob(`layer ${i}`));
  const img = image({ layers });
  const repo = 'large/manifest';
  const queue = [img.config, ...layers];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let b = queue.pop(); b; b = queue.pop()) await pushBlob(reg.url, repo, b);
    }),
  );
  const put = await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { method: 'PUT', headers: { 'content-type': img.mediaType }, body: img.manifest });
  assert.equal(put.status, 201, await put.text());
  // Pushing it again refreshes every link it uses.
  const again = await fetch(`${reg.url}/v2/${repo}/manifests/v2`, { method: 'PUT', headers: { 'content-type': img.mediaType }, body: img.manifest });
  assert.equal(again.status, 201, await again.text());
  const get = await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { headers: { accept: img.mediaType } });
  assert.equal(get.status, 200);
  assert.equal(get.headers.get('docker-content-digest'), img.digest);
  await get.arrayBuffer();

  const fsck = await runCli(['fsck', '--json', ...reg.engineArgs]);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  assert.equal((JSON.parse(fsck.stdout) as FsckReport).checked.manifests, 1);
  const kept = await runCli(['gc', '--json', '--grace', '0', ...reg.engineArgs]);
  assert.equal(kept.code, 0, kept.stderr);
  assert.equal((JSON.parse(kept.stdout) as GcReport).linksDeleted, 0, 'every link is referenced');

  const del = await fetch(`${reg.url}/v2/${repo}/manifests/${img.digest}`, { method: 'DELETE' });
  assert.equal(del.status, 202);
  const collected = await runCli(['gc', '--json', '--grace', '0', ...reg.engineArgs]);
  assert.equal(collected.code, 0, collected.stderr);
  assert.equal((JSON.parse(collected.stdout) as GcReport).blobsDeleted, REFERENCES);
});
