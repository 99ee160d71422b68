/**
 * The promise under load: 16 clients push images that share layers, retag, delete and mount
 * across repositories while garbage collection runs continuously with a zero grace period
 * (on PostgreSQL engines, over two replicas that both collect). Afterwards every manifest the
 * registry accepted and the test did not delete must pull back intact, no request may have
 * failed with a 5xx, and fsck must find nothing wrong.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Usage } from '../../src/core/maintenance.js';
import { blob, image, pushBlob } from '../helpers/oci.js';
import { ENGINE, runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { Ledger, runWorkload, verifyLedger } from '../helpers/workload.js';

const GC = ['--gc-interval', '50ms', '--gc-grace', '0'];
let replicas: RunningRegistry[] = [];

before(async () => {
  const first = await startRegistry({ args: GC });
  replicas = [first];
  if (ENGINE !== 'sqlite-fs') replicas.push(await startRegistry({ args: GC, engineArgs: first.engineArgs, dataDir: first.dataDir }));
});
after(async () => {
  for (const r of replicas.reverse()) await r.stop();
});

test('16 clients, continuous zero-grace collection: nothing committed is lost, no 5xx, fsck clean', async () => {
  const ledger = new Ledger();
  await runWorkload({ urls: replicas.map((r) => r.url), clients: 16, operations: 30, prefix: 'stress', ledger });
  assert.deepEqual(ledger.serverErrors, []);
  const verified = await verifyLedger(replicas[0]!.url, ledger);
  assert.ok(verified.manifests > 50, `too little survived to prove anything: ${JSON.stringify(ledger.counts)}`);
  assert.ok((ledger.counts['manifest deleted'] ?? 0) > 10 && (ledger.counts['mounted'] ?? 0) > 10, JSON.stringify(ledger.counts));
  const fsck = await runCli(['fsck', '--full', ...replicas[0]!.engineArgs]);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  console.log(`stress (${ENGINE}, ${replicas.length} replica(s)): ${JSON.stringify(ledger.counts)}; verified ${verified.manifests} manifests, ${verified.blobs} blob links`);
});

test('a blob seen by HEAD survives a whole grace period, though collection runs all the time', async () => {
  const reg = await startRegistry({ args: ['--gc-interval', '50ms', '--gc-grace', '3s'] });
  try {
    const img = image({ layers: [blob(randomBytes(1000))] });
    for (const b of [img.config, ...img.layers]) await pushBlob(reg.url, 'grace/head', b);
    await new Promise((r) => setTimeout(r, 2500));
    for (const b of [img.config, ...img.layers]) assert.equal((await fetch(`${reg.url}/v2/grace/head/blobs/${b.digest}`, { method: 'HEAD' })).status, 200);
    // 4.5 s after the upload, 2 s after the HEAD: past the upload's grace, inside the HEAD's.
    await new Promise((r) => setTimeout(r, 2000));
    const put = await fetch(`${reg.url}/v2/grace/head/manifests/v1`, { method: 'PUT', headers: { 'content-type': img.mediaType }, body: img.manifest });
    assert.equal(put.status, 201, await put.text());
    // And a blob nobody looks at is collected once its grace has passed. Watched through the
    // usage route: a HEAD would itself restart the grace period.
    const loose = blob(randomBytes(500));
    await pushBlob(reg.url, 'grace/head', loose);
    const links = async () => ((await (await fetch(`${reg.url}/_portfolio/usage`)).json()) as Usage).repositories.find((r) => r.name === 'grace/head')?.blobs;
    const pushed = Date.now();
    let count = await links();
    assert.equal(count, 3);
    while (count === 3 && Date.now() - pushed < 10_000) {
      await new Promise((r) => setTimeout(r, 100));
      count = await links();
      if (Date.now() - pushed < 2000) assert.equal(count, 3, 'collected before its grace period ended');
    }
    assert.equal(count, 2, 'an unreferenced blob outlived its grace period');
    assert.equal((await fetch(`${reg.url}/v2/grace/head/blobs/${loose.digest}`, { method: 'HEAD' })).status, 404);
  } finally {
    await reg.stop();
  }
});
