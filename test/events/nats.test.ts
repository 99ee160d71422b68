/**
 * Events to NATS JetStream (the server on 127.0.0.1:4222 that this machine runs; .ci/run starts
 * it when it is not running): a JetStream consumer reads the same events a webhook gets, each
 * message's Nats-Msg-Id is the event id, and a repository's events arrive in commit order.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startRegistry } from '../helpers/registry.js';
import { Receiver, type ReceivedEvent } from './receiver.js';
import { assertCommitOrder, configFile, fastSink, pushTagged } from './util.js';

const NATS_URL = process.env.PORTFOLIO_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

test('a JetStream consumer receives the same events as a webhook, in commit order per repository', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portfolio-nats-'));
  const nc = await connect({ servers: NATS_URL.replace(/^nats:\/\//, '') });
  const jsm = await jetstreamManager(nc);
  const suffix = randomUUID().replaceAll('-', '');
  const stream = `PORTFOLIO_TEST_${suffix}`;
  const subject = `portfolio.test.${suffix}`;
  await jsm.streams.add({ name: stream, subjects: [subject] });
  const receiver = new Receiver();
  await receiver.start();
  const config = await configFile(dir, {
    events: {
      poll_interval: '200ms',
      sinks: [
        { name: 'bus', type: 'nats', url: NATS_URL, subject, timeout: '5s', backoff: { initial: '100ms', max: '500ms' } },
        { ...fastSink('hook', receiver.url), format: 'distribution' },
      ],
    },
  });
  const registry = await startRegistry({ args: ['--config', config] });
  try {
    const expected = new Map<string, { tag: string; digest: string }[]>();
    for (let i = 0; i < 10; i++) {
      const repo = `bus/r${i % 2}`;
      const img = await pushTagged(registry.url, repo, `t${i}`);
      expected.set(repo, [...(expected.get(repo) ?? []), { tag: `t${i}`, digest: img.digest }]);
    }
    assert.equal((await fetch(`${registry.url}/v2/bus/r0/manifests/t0`, { method: 'DELETE' })).status, 202);
    await receiver.waitFor((events) => events.length >= 11, 'eleven events at the webhook');

    // Read the stream from its start with an ordered consumer.
    const consumer = await jetstream(nc).consumers.get(stream);
    const fromStream: { id: string | undefined; event: ReceivedEvent; type: unknown }[] = [];
    const deadline = Date.now() + 30_000;
    while (fromStream.length < 11 && Date.now() < deadline) {
      const batch = await consumer.fetch({ max_messages: 20, expires: 1000 });
      for await (const msg of batch) {
        const body = msg.json<{ data: ReceivedEvent; type: unknown }>();
        fromStream.push({ id: msg.headers?.get('Nats-Msg-Id'), event: body.data, type: body.type });
      }
    }
    const distinct = [...new Map(fromStream.map((m) => [m.event.id, m])).values()];
    assert.equal(distinct.length, 11, 'eleven distinct events in the stream');
    for (const m of distinct) assert.equal(m.id, m.event.id, 'Nats-Msg-Id is the event id');
    assert.deepEqual(new Set(distinct.map((m) => m.event.id)), new Set(receiver.distinct().map((e) => e.id)), 'the same events at both sinks');
    assert.ok(distinct.every((m) => typeof m.type === 'string' && m.type.startsWith('dev.portfolio.registry.')), 'CloudEvents by default on NATS');
    assertCommitOrder(
      distinct.map((m) => m.event),
      expected,
    );
  } finally {
    await registry.stop();
    await receiver.stop();
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
    await rm(dir, { recursive: true, force: true });
  }
});
