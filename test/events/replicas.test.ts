/**
 * Two replicas on the same stores record and deliver events together: every event arrives, a
 * repository's events in commit order although either replica may send them, and the duplicates
 * that at-least-once delivery allows are counted and reported.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freshEngine, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { parseSamples, valueOf } from '../metrics/scrape.js';
import { Receiver } from './receiver.js';
import { assertCommitOrder, configFile, fastSink, pushTagged } from './util.js';

const CLIENTS = 6;
const PUSHES = 15;

test('two replicas deliver every event of both, in commit order per repository', { timeout: 300_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'portfolio-events-replicas-'));
  const engineArgs = await freshEngine(dataDir);
  const receiver = new Receiver();
  // A slow receiver keeps deliveries in flight, so both replicas claim queues.
  receiver.delayMs = 20;
  await receiver.start();
  const config = await configFile(dataDir, { events: { poll_interval: '100ms', sinks: [fastSink('hook', receiver.url)] } });
  const replicas: RunningRegistry[] = [];
  try {
    replicas.push(await startRegistry({ engineArgs, dataDir, args: ['--config', config] }));
    replicas.push(await startRegistry({ engineArgs, dataDir, args: ['--config', config] }));
    const expected = new Map<string, { tag: string; digest: string }[]>();
    // Each client pushes one after another, alternating replicas: its order is the commit order.
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const repo = `replicas/c${c}`;
        const pushed: { tag: string; digest: string }[] = [];
        for (let n = 0; n < PUSHES; n++) {
          const img = await pushTagged(replicas[(c + n) % 2]!.url, repo, `t${n}`);
          pushed.push({ tag: `t${n}`, digest: img.digest });
        }
        expected.set(repo, pushed);
      }),
    );
    const total = CLIENTS * PUSHES;
    await receiver.waitFor((events) => events.length >= total, `all ${total} events`, 120_000);
    const events = receiver.distinct();
    assert.equal(events.length, total);
    assertCommitOrder(events, expected);
    const sources = new Set(events.map((e) => e.source.instanceID));
    assert.equal(sources.size, 2, 'events were recorded by both replicas');
    // A delivery is counted once its batch is marked, a moment after the receiver has it.
    const counted = () =>
      Promise.all(replicas.map(async (r) => valueOf(parseSamples(await (await fetch(`${r.url}/metrics`)).text()), 'portfolio_event_deliveries_total', { sink: 'hook' })));
    let delivered = await counted();
    for (let i = 0; i < 100 && delivered[0]! + delivered[1]! < total; i++) {
      await new Promise((r) => setTimeout(r, 50));
      delivered = await counted();
    }
    assert.ok(delivered[0]! + delivered[1]! >= total, `deliveries counted: ${delivered.join(' + ')}`);
    const duplicates = receiver.events.length - events.length;
    console.log(`${total} events; delivered by the replicas: ${delivered.join(' + ')}; ${duplicates} duplicate deliveries`);
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
    await receiver.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
