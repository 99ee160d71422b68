/**
 * The promise under load: 16 clients push images that share layers, push indexes over children
 * they re-push just before, re-tag older and untagged manifests, re-push identical ones, move
 * tags back and forth, delete and mount across repositories, while garbage collection runs
 * continuously with a zero grace period and deletes untagged manifests at once (on PostgreSQL
 * engines, over two replicas that both collect). Afterwards every tag the registry acknowledged
 * and the test did not move or delete must resolve to its digest, every tagged manifest and its
 * blobs must pull back intact, no request may have failed with a 5xx, and fsck must find
 * nothing wrong.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Usage } from '../../src/core/maintenance.js';
import { blob, image, pushBlob } from '../helpers/oci.js';
import { ENGINE, freshEngine, runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { Ledger, pushAnchors, runWorkload, verifyLedger, type WorkloadOptions } from '../helpers/workload.js';

const GC = ['--gc-interval', '100ms', '--gc-grace', '0s', '--gc-delete-untagged', '0s'];
/** How long the clients run; each client also stops after OPERATIONS operations. */
const SECONDS = Number(process.env.PORTFOLIO_STRESS_SECONDS ?? 20);
const OPERATIONS = Number(process.env.PORTFOLIO_STRESS_OPERATIONS ?? 2000);

test('16 clients re-tag and re-push under continuous collection that deletes untagged manifests: every acknowledged tag holds, no 5xx, fsck clean', { timeout: 600_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'portfolio-stress-'));
  const engineArgs = await freshEngine(dataDir);
  const replicas: RunningRegistry[] = [];
  try {
    const ledger = new Ledger();
    const workload: WorkloadOptions = { urls: [], clients: 16, operations: OPERATIONS, prefix: 'stress', ledger };
    // Each client's anchor image goes in before collection starts; see Ledger.anchors.
    const setup = await startRegistry({ engineArgs, dataDir });
    await pushAnchors({ ...workload, urls: [setup.url] });
    await setup.stop();
    for (let i = ENGINE === 'sqlite-fs' ? 1 : 2; i > 0; i--) replicas.push(await startRegistry({ args: GC, engineArgs, dataDir }));

    const started = Date.now();
    await runWorkload({ ...workload, urls: replicas.map((r) => r.url), deadline: started + SECONDS * 1000 });
    const summary = `stress (${ENGINE}, ${replicas.length} replica(s), ${((Date.now() - started) / 1000).toFixed(1)} s): ${JSON.stringify(ledger.counts)}`;
    console.log(summary);
    assert.deepEqual(ledger.serverErrors, [], summary);
    const verified = await verifyLedger(replicas[0]!.url, ledger);
    console.log(`verified ${verified.tags} tags, ${verified.manifests} manifests, ${verified.blobs} blob links`);
    // Each kind of operation happened (low bars: the run is bounded in time and machines differ in speed).
    const bars = { 'ping-pong re-tag': 50, 'manifest accepted': 50, 'index accepted': 3, 're-tagged': 3, 'tag moved': 3, 're-pushed identical': 3, 'manifest deleted': 3, 'tag deleted': 3, mounted: 3 };
    for (const [what, least] of Object.entries(bars)) assert.ok((ledger.counts[what] ?? 0) >= least, `too few "${what}": ${summary}`);
    const fsck = await runCli(['fsck', '--full', ...engineArgs]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  } finally {
    for (const r of replicas) await r.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
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
