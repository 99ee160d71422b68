/**
 * Events to webhooks, through a real server process: every action in CNCF distribution's
 * envelope, CloudEvents and filters, a receiver that is down for a while, parking and
 * `portfolio events retry`, a hanging receiver, pulls, and a change that rolls back.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { blob, image, pushBlob, pushImage } from '../helpers/oci.js';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { parseSamples, valueOf } from '../metrics/scrape.js';
import { pushes, Receiver } from './receiver.js';
import { assertCommitOrder, configFile, fastSink, pushTagged, sleep } from './util.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portfolio-events-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function metrics(registry: RunningRegistry) {
  return parseSamples(await (await fetch(`${registry.url}/metrics`)).text());
}

test('every action reaches a webhook given by --events-webhook, in distribution’s envelope with stable fields', async () => {
  const receiver = new Receiver();
  await receiver.start();
  const registry = await startRegistry({ args: ['--events-webhook', receiver.url] });
  try {
    const img = await pushTagged(registry.url, 'app/one', 'v1');
    const byDigest = image();
    assert.equal((await pushImage(registry.url, 'app/one', byDigest)).status, 201);
    // A mount into another repository, then deletes of every kind.
    const layer = img.layers[0]!;
    const mount = await fetch(`${registry.url}/v2/app/two/blobs/uploads/?mount=${layer.digest}&from=app/one`, { method: 'POST' });
    assert.equal(mount.status, 201);
    assert.equal((await fetch(`${registry.url}/v2/app/one/manifests/v1`, { method: 'DELETE' })).status, 202);
    assert.equal((await fetch(`${registry.url}/v2/app/one/manifests/${byDigest.digest}`, { method: 'DELETE' })).status, 202);
    assert.equal((await fetch(`${registry.url}/v2/app/two/blobs/${layer.digest}`, { method: 'DELETE' })).status, 202);
    await pushBlob(registry.url, 'app/three', blob());
    assert.equal((await fetch(`${registry.url}/_portfolio/repositories/app/three`, { method: 'DELETE' })).status, 202);
    // Reads are no events unless pulls are on.
    assert.equal((await fetch(`${registry.url}/v2/app/one/manifests/${img.digest}`)).status, 200);

    await receiver.waitFor((events) => events.length >= 7, 'seven events');
    await sleep(300);
    // Order is promised within a repository; across repositories an envelope groups by repository.
    const arrived = receiver.distinct();
    const rank = (e: (typeof arrived)[0]) => ['app/one', 'app/two', 'app/three'].indexOf(e.target.repository);
    const events = arrived.map((e, i) => ({ e, i })).sort((a, b) => rank(a.e) - rank(b.e) || a.i - b.i).map(({ e }) => e);
    assert.deepEqual(
      events.map((e) => `${e.action} ${e.target.repository}`),
      ['push app/one', 'push app/one', 'delete app/one', 'delete app/one', 'mount app/two', 'delete app/two', 'delete app/three'],
    );
    assert.deepEqual([...receiver.contentTypes], ['application/vnd.docker.distribution.events.v1+json']);
    const [tagged, untagged, tagDeleted, manifestDeleted, mounted, blobDeleted, repoDeleted] = events as [
      (typeof events)[0],
      (typeof events)[0],
      (typeof events)[0],
      (typeof events)[0],
      (typeof events)[0],
      (typeof events)[0],
      (typeof events)[0],
    ];
    assert.match(tagged.id, /^[0-9a-f-]{36}$/);
    assert.ok(!Number.isNaN(Date.parse(tagged.timestamp)));
    assert.deepEqual(tagged.target, {
      repository: 'app/one',
      mediaType: img.mediaType,
      digest: img.digest,
      size: img.manifest.length,
      length: img.manifest.length,
      url: `${registry.url}/v2/app/one/manifests/${img.digest}`,
      tag: 'v1',
    });
    assert.equal(tagged.request.method, 'PUT');
    assert.equal(tagged.request.host, new URL(registry.url).host);
    assert.match(tagged.request.addr ?? '', /^127\.0\.0\.1:\d+$/);
    assert.match(tagged.request.id ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(typeof tagged.request.useragent, 'string');
    assert.deepEqual(tagged.actor, {});
    assert.match(tagged.source.instanceID, /^[0-9a-f-]{36}$/);
    assert.match(tagged.source.addr, /:\d+$/);
    assert.equal(untagged.target.tag, undefined);
    assert.equal(untagged.target.digest, byDigest.digest);
    assert.deepEqual(
      { digest: mounted.target.digest, from: mounted.target.fromRepository, size: mounted.target.size },
      { digest: layer.digest, from: 'app/one', size: layer.size },
    );
    assert.deepEqual(tagDeleted.target, { repository: 'app/one', tag: 'v1' });
    assert.deepEqual(manifestDeleted.target, { repository: 'app/one', digest: byDigest.digest });
    assert.deepEqual(blobDeleted.target, { repository: 'app/two', digest: layer.digest });
    assert.deepEqual(repoDeleted.target, { repository: 'app/three' });
    assert.equal(new Set(events.map((e) => e.id)).size, events.length);
  } finally {
    await registry.stop();
    await receiver.stop();
  }
});

test('a receiver that is down for a while gets every event once it is back, in commit order per repository', async () => {
  const receiver = new Receiver();
  await receiver.start();
  await receiver.stop(); // its port is now refused
  const config = await configFile(dir, { events: { poll_interval: '200ms', sinks: [fastSink('hook', receiver.url)] } });
  const registry = await startRegistry({ args: ['--config', config] });
  try {
    const expected = new Map<string, { tag: string; digest: string }[]>();
    for (let i = 0; i < 12; i++) {
      const repo = `down/r${i % 3}`;
      const img = await pushTagged(registry.url, repo, `t${i}`);
      expected.set(repo, [...(expected.get(repo) ?? []), { tag: `t${i}`, digest: img.digest }]);
    }
    // A rejected push records nothing.
    const missing = image();
    const refused = await fetch(`${registry.url}/v2/down/r0/manifests/broken`, { method: 'PUT', headers: { 'content-type': missing.mediaType }, body: missing.manifest });
    assert.equal(refused.status, 400);
    // While it is down the events wait, and the failures are counted.
    for (let i = 0; ; i++) {
      const samples = await metrics(registry);
      if (valueOf(samples, 'portfolio_event_delivery_failures_total', { sink: 'hook' }) > 0) {
        assert.equal(valueOf(samples, 'portfolio_events_pending', { sink: 'hook' }), 12);
        assert.ok(valueOf(samples, 'portfolio_events_oldest_pending_age_seconds', { sink: 'hook' }) > 0);
        break;
      }
      assert.ok(i < 200, 'delivery failures are counted while the receiver is down');
      await sleep(100);
    }
    await receiver.start();
    await receiver.waitFor((events) => events.length >= 12, 'all twelve pushes');
    await sleep(300);
    const events = receiver.distinct();
    assert.equal(events.length, 12, 'nothing else was sent (the rejected push recorded no event)');
    assertCommitOrder(events, expected);
    assert.ok(!events.some((e) => e.target.tag === 'broken'));
    const samples = await metrics(registry);
    assert.ok(valueOf(samples, 'portfolio_event_deliveries_total', { sink: 'hook' }) >= 12);
  } finally {
    await registry.stop();
    await receiver.stop();
  }
});

test('sinks filter by action, repository and media type; CloudEvents carry the same event', async () => {
  const all = new Receiver();
  const teamA = new Receiver();
  await all.start();
  await teamA.start();
  const config = await configFile(dir, {
    events: {
      poll_interval: '200ms',
      sinks: [
        fastSink('all', all.url),
        fastSink('team-a', teamA.url, {
          format: 'cloudevents',
          headers: { Authorization: { env: 'TEAM_A_HOOK_TOKEN' } },
          filter: { actions: ['push'], repositories: ['team-a/**'], media_types: ['application/vnd.oci.image.*'] },
        }),
      ],
    },
  });
  const registry = await startRegistry({ args: ['--config', config], env: { TEAM_A_HOOK_TOKEN: 'Bearer s3cret' } });
  try {
    const wanted = await pushTagged(registry.url, 'team-a/app', 'v1');
    await pushTagged(registry.url, 'team-b/app', 'v1');
    const docker = image({ mediaType: 'application/vnd.docker.distribution.manifest.v2+json' });
    assert.equal((await pushImage(registry.url, 'team-a/app', docker, 'docker')).status, 201);
    assert.equal((await fetch(`${registry.url}/v2/team-a/app/manifests/v1`, { method: 'DELETE' })).status, 202);
    await all.waitFor((events) => events.length >= 4, 'four events at the unfiltered sink');
    await sleep(500);
    assert.equal(teamA.distinct().length, 1);
    const [cloud] = teamA.cloudEvents as [Record<string, unknown>];
    const event = teamA.distinct()[0]!;
    assert.equal(cloud.specversion, '1.0');
    assert.equal(cloud.type, 'dev.portfolio.registry.push');
    assert.equal(cloud.id, event.id);
    assert.equal(cloud.subject, 'team-a/app:v1');
    assert.equal(event.target.digest, wanted.digest);
    assert.deepEqual([...teamA.contentTypes], ['application/cloudevents+json']);
    assert.deepEqual([...teamA.authorizations], ['Bearer s3cret'], 'the header, its value from the environment');
    assert.deepEqual([...all.authorizations], ['']);
    // The same event, same id, at both sinks.
    assert.ok(all.distinct().some((e) => e.id === event.id));
  } finally {
    await registry.stop();
    await all.stop();
    await teamA.stop();
  }
});

test('events that keep failing are parked, listed by `events list --failed` and sent again by `events retry`', async () => {
  const receiver = new Receiver();
  await receiver.start();
  receiver.mode = 'fail';
  const config = await configFile(dir, { events: { poll_interval: '200ms', sinks: [fastSink('flaky', receiver.url, { max_attempts: 2 })] } });
  const registry = await startRegistry({ args: ['--config', config] });
  try {
    const img = await pushTagged(registry.url, 'parked/app', 'v1');
    let listed = '';
    for (let i = 0; ; i++) {
      const { code, stdout, stderr } = await runCli(['events', 'list', '--failed', ...registry.engineArgs]);
      assert.equal(code, 0, stderr);
      listed = stdout;
      if (listed.includes('failed')) break;
      assert.ok(i < 100, `the event is parked after two attempts; list says: ${listed}`);
      await sleep(100);
    }
    assert.match(listed, /flaky\s+failed\s+push parked\/app:v1/);
    assert.match(listed, /attempts 2\s+last error: POST .* HTTP 500/);
    const samples = await metrics(registry);
    // Parked events are cached in the gauges for a few seconds: read the list instead of racing them.
    assert.ok(valueOf(samples, 'portfolio_event_delivery_failures_total', { sink: 'flaky' }) >= 2);
    const json = await runCli(['events', 'list', '--failed', '--json', ...registry.engineArgs]);
    const row = JSON.parse(json.stdout.trim().split('\n')[0]!) as { event: { id: string; target: { digest: string } } };
    assert.equal(row.event.target.digest, img.digest);

    receiver.mode = 'ok';
    const retried = await runCli(['events', 'retry', '--sink', 'flaky', ...registry.engineArgs]);
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stdout, /^1 event delivery queued again/);
    await receiver.waitFor((events) => events.length >= 1, 'the retried event');
    assert.equal(receiver.distinct()[0]!.id, row.event.id, 'the same id as before');
    const after = await runCli(['events', 'list', '--failed', ...registry.engineArgs]);
    assert.equal(after.stdout.trim(), 'no events');
  } finally {
    await registry.stop();
    await receiver.stop();
  }
});

test('a webhook that hangs does not hold up pushes or the other sinks', async () => {
  const hanging = new Receiver();
  const healthy = new Receiver();
  await hanging.start();
  await healthy.start();
  hanging.mode = 'hang';
  const config = await configFile(dir, {
    events: { poll_interval: '200ms', sinks: [fastSink('stuck', hanging.url, { timeout: '10m' }), fastSink('fine', healthy.url)] },
  });
  const registry = await startRegistry({ args: ['--config', config] });
  try {
    await pushTagged(registry.url, 'hang/first', 'v1');
    await hanging.waitFor(() => hanging.hanging.length > 0, 'a delivery to hang');
    // Every push below completes while that delivery is still unanswered.
    for (let i = 0; i < 20; i++) await pushTagged(registry.url, `hang/r${i % 4}`, `t${i}`);
    await healthy.waitFor((events) => events.length >= 21, 'every event at the healthy sink');
    assert.ok(hanging.hanging.length > 0 && hanging.hanging.every((res) => !res.writableEnded), 'the stuck sink’s requests are still open');
    assert.equal(hanging.events.length, 0);
  } finally {
    await registry.stop();
    await hanging.stop();
    await healthy.stop();
  }
});

test('pull events are recorded only when turned on', async () => {
  const receiver = new Receiver();
  await receiver.start();
  const config = await configFile(dir, { events: { poll_interval: '200ms', pulls: true, sinks: [fastSink('pulls', receiver.url, { filter: { actions: ['pull'] } })] } });
  const registry = await startRegistry({ args: ['--config', config] });
  try {
    const img = await pushTagged(registry.url, 'pulled/app', 'v1');
    assert.equal((await fetch(`${registry.url}/v2/pulled/app/manifests/v1`)).status, 200);
    assert.equal((await fetch(`${registry.url}/v2/pulled/app/manifests/v1`, { method: 'HEAD' })).status, 200);
    await receiver.waitFor((events) => events.length >= 1, 'the pull');
    await sleep(300);
    const events = receiver.distinct();
    assert.equal(events.length, 1, 'a HEAD is no pull, and the push is filtered out');
    assert.deepEqual([events[0]!.action, events[0]!.target.tag, events[0]!.target.digest, events[0]!.request.method], ['pull', 'v1', img.digest, 'GET']);
    assert.deepEqual(pushes(events).size, 0);
  } finally {
    await registry.stop();
    await receiver.stop();
  }
});

test('SIGHUP starts and stops sinks without a restart', async () => {
  const receiver = new Receiver();
  await receiver.start();
  const config = await configFile(dir, { events: { poll_interval: '200ms' } });
  const registry = await startRegistry({ args: ['--config', config] });
  const reloaded = async (count: number) => {
    registry.process.kill('SIGHUP');
    for (let i = 0; i < 200; i++) {
      const records = registry.output().split('\n').filter((line) => line.includes('"configuration reloaded"'));
      if (records.length >= count) return records[count - 1]!;
      await sleep(25);
    }
    assert.fail(`no reload after SIGHUP:\n${registry.output()}`);
  };
  try {
    await pushTagged(registry.url, 'reload/app', 'before');
    await writeFile(config, stringify({ events: { poll_interval: '200ms', sinks: [fastSink('late', receiver.url)] } }));
    assert.match(await reloaded(1), /events\.sinks/);
    const during = await pushTagged(registry.url, 'reload/app', 'during');
    await receiver.waitFor((events) => events.length >= 1, 'the push after the reload');
    await writeFile(config, stringify({ events: { poll_interval: '200ms' } }));
    await reloaded(2);
    await pushTagged(registry.url, 'reload/app', 'after');
    await sleep(600);
    assert.deepEqual(
      receiver.distinct().map((e) => `${e.target.tag}@${e.target.digest}`),
      [`during@${during.digest}`],
      'only the push made while the sink was configured',
    );
  } finally {
    await registry.stop();
    await receiver.stop();
  }
});

test('delivered events are listed, then pruned after the retention period', async () => {
  const receiver = new Receiver();
  await receiver.start();
  const config = await configFile(dir, { events: { poll_interval: '200ms', retention: '5s', sinks: [fastSink('kept', receiver.url)] } });
  const registry = await startRegistry({ args: ['--config', config] });
  try {
    const img = await pushTagged(registry.url, 'pruned/app', 'v1');
    await receiver.waitFor((events) => events.length >= 1, 'the push');
    const listed = await runCli(['events', 'list', '--delivered', ...registry.engineArgs]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`kept\\s+delivered\\s+push pruned/app:v1`));
    assert.ok(listed.stdout.includes(receiver.distinct()[0]!.id));
    for (let i = 0; ; i++) {
      const { stdout } = await runCli(['events', 'list', '--delivered', ...registry.engineArgs]);
      if (stdout.trim() === 'no events') break;
      assert.ok(i < 60, `the delivered event of ${img.digest} is pruned after 5 s`);
      await sleep(500);
    }
  } finally {
    await registry.stop();
    await receiver.stop();
  }
});
