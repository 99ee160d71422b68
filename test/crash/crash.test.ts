/**
 * Crash safety: SIGKILL the server at random moments of a concurrent workload (mid-upload,
 * mid-manifest PUT, mid-collection: GC runs every 30 ms), at least 20 times. After
 * each kill fsck must pass, and after each restart every manifest committed before any kill
 * must pull back intact.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { ENGINE, runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { Ledger, runWorkload, verifyLedger } from '../helpers/workload.js';

const ROUNDS = Number(process.env.PORTFOLIO_CRASH_ROUNDS ?? 20);
// Even rounds collect with zero grace, as in the stress test; odd rounds with 1 s, which lets
// more pushes through between their blob uploads and their manifest.
const args = (round: number) => ['--gc-interval', '30ms', '--gc-grace', round % 2 ? '1s' : '0'];

test(`${ROUNDS} SIGKILLs at random points: fsck passes and committed data survives every one`, { timeout: 600_000 }, async () => {
  const ledger = new Ledger();
  let reg: RunningRegistry = await startRegistry({ args: args(0) });
  const { engineArgs, dataDir } = reg;
  let kills = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      let killed = false;
      const work = runWorkload({ urls: [reg.url], clients: 6, operations: 10_000, prefix: `crash/r${round}`, ledger, stopped: () => killed });
      // S3 requests are slower than local files: give each round time to do something.
      const window = ENGINE === 'pg-s3' ? 800 + randomInt(1500) : 300 + randomInt(900);
      await new Promise((r) => setTimeout(r, window));
      killed = true;
      const exited = new Promise((r) => reg.process.once('exit', r));
      reg.process.kill('SIGKILL');
      await exited;
      kills++;
      await work;

      const fsck = await runCli(['fsck', ...engineArgs]);
      assert.equal(fsck.code, 0, `fsck after kill ${kills}:\n${fsck.stdout}${fsck.stderr}`);
      reg = await startRegistry({ args: args(round + 1), engineArgs, dataDir });
      await verifyLedger(reg.url, ledger);
    }
    assert.deepEqual(ledger.serverErrors, []);
    assert.ok((ledger.counts['manifest accepted'] ?? 0) > ROUNDS, `the workload did too little: ${JSON.stringify(ledger.counts)}`);
    const full = await runCli(['fsck', '--full', ...engineArgs]);
    assert.equal(full.code, 0, full.stdout + full.stderr);
    console.log(`crash (${ENGINE}): ${kills} kills; ${JSON.stringify(ledger.counts)}; ${ledger.manifests.size} committed manifests verified after every restart`);
  } finally {
    await reg.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
