/**
 * Crash safety: SIGKILL servers at random moments of a concurrent workload that re-tags and
 * re-pushes (mid-upload, mid-manifest PUT, mid-collection: GC runs every 30 ms and deletes
 * untagged manifests at once). On PostgreSQL engines two replicas serve and both collect; a
 * round kills one of them and lets the other serve and collect on before it dies too, or kills
 * both at once. After each kill fsck must pass, and after each restart every tag acknowledged
 * before and not moved or deleted since must resolve to its digest, its manifest and blobs
 * intact.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ENGINE, freshEngine, runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { Ledger, pushAnchors, runWorkload, verifyLedger, type WorkloadOptions } from '../helpers/workload.js';

const REPLICAS = ENGINE === 'sqlite-fs' ? 1 : 2;
const ROUNDS = Number(process.env.PORTFOLIO_CRASH_ROUNDS ?? (REPLICAS === 1 ? 16 : 10));
// Even rounds collect with zero grace, as in the stress test; odd rounds with 1 s, which lets
// more pushes through between their blob uploads and their manifest.
const args = (round: number) => ['--gc-interval', '30ms', '--gc-grace', round % 2 ? '1s' : '0s', '--gc-delete-untagged', '0s'];
// S3 requests are slower than local files: give each round time to do something.
const window = () => (ENGINE === 'pg-s3' ? 800 + randomInt(1500) : 300 + randomInt(900));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function kill(server: RunningRegistry): Promise<void> {
  const exited = new Promise((r) => server.process.once('exit', r));
  server.process.kill('SIGKILL');
  await exited;
}

test(`${ROUNDS} rounds of SIGKILLs at random points, ${REPLICAS} replica(s): fsck passes and every acknowledged tag survives`, { timeout: 600_000 }, async () => {
  const ledger = new Ledger();
  const dataDir = await mkdtemp(join(tmpdir(), 'portfolio-crash-'));
  const engineArgs = await freshEngine(dataDir);
  const workload: WorkloadOptions = { urls: [], clients: 6, operations: 10_000, prefix: 'crash', ledger };
  // Each client's anchor image goes in before collection starts; see Ledger.anchors.
  const setup = await startRegistry({ engineArgs, dataDir });
  await pushAnchors({ ...workload, urls: [setup.url] });
  await setup.stop();
  const start = (round: number) => startRegistry({ args: args(round), engineArgs, dataDir });
  let servers = await Promise.all(Array.from({ length: REPLICAS }, () => start(0)));
  let kills = 0;
  let survivorRounds = 0;
  let verifiedTags = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      let stopped = false;
      const urls = servers.map((s) => s.url);
      const work = runWorkload({ ...workload, urls, stopped: () => stopped });
      await sleep(window());
      if (servers.length > 1 && randomInt(2) === 0) {
        // One replica dies (perhaps holding the collection lease, perhaps mid-delete); the
        // other serves and collects on. Its view must hold every acknowledged tag.
        const victim = servers[randomInt(servers.length)]!;
        urls.splice(urls.indexOf(victim.url), 1);
        await kill(victim);
        kills++;
        await sleep(window());
        stopped = true;
        await work;
        verifiedTags += (await verifyLedger(urls[0]!, ledger)).tags;
        survivorRounds++;
      }
      stopped = true;
      urls.length = 0;
      for (const s of servers) {
        if (s.process.exitCode !== null || s.process.signalCode !== null) continue;
        await kill(s);
        kills++;
      }
      await work;

      const fsck = await runCli(['fsck', ...engineArgs]);
      assert.equal(fsck.code, 0, `fsck after round ${round}:\n${fsck.stdout}${fsck.stderr}`);
      servers = await Promise.all(Array.from({ length: REPLICAS }, () => start(round + 1)));
      verifiedTags += (await verifyLedger(servers[0]!.url, ledger)).tags;
    }
    const summary = `crash (${ENGINE}, ${REPLICAS} replica(s)): ${ROUNDS} rounds, ${kills} kills (${survivorRounds} rounds with a survivor); ${JSON.stringify(ledger.counts)}; ${ledger.tags.size} tags held at the end, ${verifiedTags} tag checks`;
    console.log(summary);
    assert.deepEqual(ledger.serverErrors, [], summary);
    assert.ok((ledger.counts['manifest accepted'] ?? 0) > ROUNDS && (ledger.counts['ping-pong re-tag'] ?? 0) > ROUNDS, `the workload did too little: ${summary}`);
    const full = await runCli(['fsck', '--full', ...engineArgs]);
    assert.equal(full.code, 0, full.stdout + full.stderr);
  } finally {
    for (const s of servers) await s.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
