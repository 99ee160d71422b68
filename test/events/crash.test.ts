/**
 * Events survive `kill -9`: clients push in a loop (with pushes the registry must refuse mixed
 * in) while the server is killed at random moments and restarted on the same stores. Every push
 * a client saw acknowledged arrives at the webhook, in order per repository; no refused push
 * produces an event; every event names a manifest that exists.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { image, pushImage } from '../helpers/oci.js';
import { freshEngine, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { Receiver } from './receiver.js';
import { assertCommitOrder, configFile, fastSink, sleep } from './util.js';

const ROUNDS = 4;
const CLIENTS = 4;

async function kill(server: RunningRegistry): Promise<void> {
  const exited = new Promise((r) => server.process.once('exit', r));
  server.process.kill('SIGKILL');
  await exited;
}

test(`${ROUNDS} SIGKILLs during a push loop: every acknowledged push is delivered, no refused one is`, { timeout: 300_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'portfolio-events-crash-'));
  const engineArgs = await freshEngine(dataDir);
  const receiver = new Receiver();
  await receiver.start();
  const config = await configFile(dataDir, { events: { poll_interval: '200ms', sinks: [fastSink('hook', receiver.url)] } });
  const acked = new Map<string, { tag: string; digest: string }[]>();
  const refused = new Set<string>();
  let ackedCount = 0;
  let server: RunningRegistry | undefined;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      server = await startRegistry({ engineArgs, dataDir, args: ['--config', config] });
      const url = server.url;
      let stop = false;
      let roundAcked = 0;
      const clients = Array.from({ length: CLIENTS }, async (_, c) => {
        const repo = `crash/c${c}`;
        for (let n = 0; !stop; n++) {
          const tag = `r${round}-${n}`;
          try {
            if (n % 5 === 4) {
              // A manifest whose layers were never pushed: refused, and its transaction rolled back.
              const broken = image();
              const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': broken.mediaType }, body: broken.manifest });
              await res.arrayBuffer();
              if (res.status === 400) refused.add(broken.digest);
              continue;
            }
            const img = image();
            const res = await pushImage(url, repo, img, tag);
            await res.arrayBuffer();
            if (res.status === 201) {
              acked.set(repo, [...(acked.get(repo) ?? []), { tag, digest: img.digest }]);
              ackedCount++;
              roundAcked++;
            }
          } catch {
            return; // the server died under this request: its outcome is unknown
          }
        }
      });
      // Some pushes land in every round however slow the machine is, then the kill comes at a random moment.
      for (let waited = 0; roundAcked < 8 && waited < 120_000; waited += 50) await sleep(50);
      await sleep(randomInt(800));
      await kill(server);
      stop = true;
      await Promise.all(clients);
    }
    assert.ok(ackedCount > 20, `pushes were acknowledged between the kills (${ackedCount})`);
    assert.ok(refused.size > 0, 'refused pushes were tried');
    server = await startRegistry({ engineArgs, dataDir, args: ['--config', config] });
    const wanted = new Set([...acked.values()].flat().map((p) => p.digest));
    await receiver.waitFor((events) => [...wanted].every((d) => events.some((e) => e.target.digest === d)), 'every acknowledged push', 120_000);
    await sleep(500);
    const events = receiver.distinct();
    assertCommitOrder(events, acked);
    for (const e of events) {
      assert.equal(e.action, 'push');
      assert.ok(!refused.has(e.target.digest!), `no event for the refused push ${e.target.digest}`);
      const found: Response = await fetch(`${server.url}/v2/${e.target.repository}/manifests/${e.target.digest}`, { method: 'HEAD' });
      assert.equal(found.status, 200, `the manifest of event ${e.id} exists`);
    }
    const duplicates = receiver.events.length - events.length;
    console.log(`${ackedCount} acknowledged pushes, ${events.length} events (${events.length - ackedCount} for pushes whose answer was lost), ${duplicates} duplicate deliveries`);
  } finally {
    await server?.stop();
    await receiver.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
