/**
 * Retention through the CLI and the admin API: keepLast and deleteUntaggedAfter, immutable tags
 * kept, referrers following their subject; the run deletes exactly the plan, collection then
 * reclaims the bytes and fsck finds nothing wrong.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blob, image, OCI_MANIFEST, pushImage } from '../helpers/oci.js';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';

/** Runs statements on the registry's own database (to age rows: no test waits for days). */
async function execSql(registry: RunningRegistry, ...statements: string[]): Promise<void> {
  const at = registry.engineArgs.indexOf('--database-url');
  if (at === -1) {
    const { default: Sqlite } = await import('better-sqlite3');
    const db = new Sqlite(join(registry.dataDir, 'metadata.db'));
    try {
      db.transaction(() => statements.forEach((s) => db.prepare(s).run()))();
    } finally {
      db.close();
    }
    return;
  }
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: registry.engineArgs[at + 1] });
  await client.connect();
  try {
    for (const s of statements) await client.query(s);
  } finally {
    await client.end();
  }
}
import { assertServerLogClean, expectStatus, http, toRes } from '../http/util.js';
import { Receiver } from '../events/receiver.js';

interface Deletion {
  repository: string;
  tag?: string;
  digest: string;
  rule: string;
  reason: string;
}
interface Report {
  deletions: Deletion[];
  failed: unknown[];
  ran: boolean;
}

describe('retention', { timeout: 120_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  let base: string;
  let config: string;
  const receiver = new Receiver();

  before(async () => {
    await receiver.start();
    dir = await mkdtemp(join(tmpdir(), 'portfolio-retention-'));
    config = join(dir, 'portfolio.yaml');
    await writeFile(
      config,
      [
        'policies:',
        '  immutableTags:',
        '    - repositories: "ret/**"',
        '      tags: "v*"',
        '  retention:',
        '    - repositories: "ret/**"',
        '      keepLast: 3',
        '      deleteUntaggedAfter: 0s',
        '    - repositories: "pulled/**"',
        '      keepPulledWithin: 1d',
        '    - repositories: "bulk/**"',
        '      keepLast: 20',
        '      keepTags: "rel-*"',
        '      keepPulledWithin: 7d',
        '',
      ].join('\n'),
    );
    registry = await startRegistry({ args: ['--config', config, '--events-webhook', receiver.url] });
    base = registry.url;
  });
  after(async () => {
    assertServerLogClean(registry.output());
    await registry?.stop();
    await receiver.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('plans exactly the deletions the rules decide, runs them, and collection reclaims the bytes', async () => {
    const push = async (img: ReturnType<typeof image>, reference?: string) => expectStatus(await toRes(await pushImage(base, 'ret/app', img, reference), 'PUT'), 201);
    const immutable = image();
    await push(immutable, 'v1');
    const tagged = Array.from({ length: 6 }, () => image());
    for (const [i, img] of tagged.entries()) await push(img, `t${i + 1}`);
    const signature = image({
      artifactType: 'application/vnd.example.signature',
      subject: { mediaType: OCI_MANIFEST, digest: tagged[0]!.digest, size: tagged[0]!.manifest.length },
    });
    await push(signature);
    const untagged = image();
    await push(untagged);
    // Outside the rule's repositories nothing is touched.
    expectStatus(await toRes(await pushImage(base, 'other/app', image()), 'PUT'), 201);

    // A refused move of the immutable tag records no event.
    const refused = image();
    expectStatus(await toRes(await pushImage(base, 'ret/app', refused, 'v1'), 'PUT'), 409);

    const expected = [signature.digest, tagged[0]!.digest, tagged[1]!.digest, tagged[2]!.digest, untagged.digest].sort();
    const plan = await runCli(['retention', 'plan', '--json', ...registry.engineArgs]);
    assert.equal(plan.code, 0, plan.stderr);
    const planned = JSON.parse(plan.stdout) as Report;
    assert.deepEqual(planned.deletions.map((d) => d.digest).sort(), expected);
    assert.ok(planned.deletions.every((d) => d.repository === 'ret/app' && d.tag === undefined && d.rule === 'retention:ret/**'));
    const signatureAt = planned.deletions.findIndex((d) => d.digest === signature.digest);
    assert.ok(signatureAt < planned.deletions.findIndex((d) => d.digest === tagged[0]!.digest), 'a referrer goes before its subject');
    assert.equal(planned.deletions[signatureAt]!.reason, `referrer of ${tagged[0]!.digest}`);
    const human = await runCli(['retention', 'plan', ...registry.engineArgs]);
    assert.match(human.stdout, /would delete manifest ret\/app@sha256:\S+ {2}\[retention:ret\/\*\*\] tags t1: not among the 3 most recent tags matching \*/);

    // The API plans the same; a plan deletes nothing.
    const viaApi = await http(`${base}/_portfolio/retention`);
    expectStatus(viaApi, 200);
    assert.deepEqual((JSON.parse(viaApi.text) as Report).deletions.map((d) => d.digest).sort(), expected);

    // With serve's configuration, so its deletions go to the same event sinks.
    const run = await runCli(['retention', 'run', '--json', '--config', config, ...registry.engineArgs], { PORTFOLIO_EVENTS_WEBHOOK: receiver.url });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((JSON.parse(run.stdout) as Report).deletions.map((d) => d.digest).sort(), expected);
    const tags = await http(`${base}/v2/ret/app/tags/list`);
    assert.deepEqual((JSON.parse(tags.text) as { tags: string[] }).tags, ['t4', 't5', 't6', 'v1']);
    for (const digest of expected) expectStatus(await http(`${base}/v2/ret/app/manifests/${digest}`, { method: 'HEAD', headers: { accept: OCI_MANIFEST } }), 404);
    expectStatus(await http(`${base}/v2/ret/app/manifests/v1`, { method: 'HEAD', headers: { accept: OCI_MANIFEST } }), 200);

    // Retention deleted as a client would: a delete event per manifest, after everything before.
    const deletedEvents = () => receiver.distinct().filter((e) => e.action === 'delete' && e.target.repository === 'ret/app');
    await receiver.waitFor(() => deletedEvents().length >= expected.length, 'the delete events of the retention run');
    assert.deepEqual(deletedEvents().map((e) => e.target.digest).sort(), expected);
    assert.ok(!receiver.distinct().some((e) => e.target.digest === refused.digest), 'no event for the refused push');

    // Nothing more to do; collection reclaims the layers; fsck passes.
    const again = await http(`${base}/_portfolio/retention`, { method: 'POST' });
    assert.deepEqual((JSON.parse(again.text) as Report).deletions, []);
    const gc = await runCli(['gc', '--grace', '0s', '--json', ...registry.engineArgs]);
    assert.equal(gc.code, 0, gc.stderr);
    const collected = JSON.parse(gc.stdout) as { blobsDeleted: number };
    // Each deleted image had a config and two layers of its own (the signature too), and so did
    // the image whose tag push was refused (its blobs were uploaded, never referenced).
    assert.equal(collected.blobsDeleted, 6 * 3);
    const fsck = await runCli(['fsck', '--json', ...registry.engineArgs]);
    assert.equal(fsck.code, 0, fsck.stdout);
  });

  it('keeps tags whose manifest was pulled within keepPulledWithin, from pull times written in batches', async () => {
    const imgs = [image(), image(), image()];
    for (const [i, img] of imgs.entries()) expectStatus(await toRes(await pushImage(base, 'pulled/app', img, `p${i + 1}`), 'PUT'), 201);
    // Two days ago, as far as the tags and manifests know.
    const old = Date.now() - 2 * 86_400_000;
    await execSql(registry, `update tags set updated_at = ${old} where name in ('p1', 'p2', 'p3')`);
    await execSql(registry, `update manifests set pushed_at = ${old} where digest in ('${imgs.map((i) => i.digest).join("', '")}')`);
    expectStatus(await http(`${base}/v2/pulled/app/manifests/p2`, { headers: { accept: OCI_MANIFEST } }), 200);
    // The server's plan writes its noted pulls first.
    const plan = await http(`${base}/_portfolio/retention`);
    const deletions = (JSON.parse(plan.text) as Report).deletions.filter((d) => d.repository === 'pulled/app');
    assert.deepEqual(deletions.map((d) => d.digest).sort(), [imgs[0]!.digest, imgs[2]!.digest].sort());
    assert.ok(deletions.every((d) => d.rule === 'retention:pulled/**' && /neither pushed nor pulled within 1d/.test(d.reason)));
  });

  it('200 tags with a pull history: the plan deletes exactly the set computed here', async () => {
    const shared = blob();
    const DAY = 86_400_000;
    const now = Date.now();
    const tags: { name: string; digest: string; updatedAt: number; pulled: boolean }[] = [];
    for (let i = 0; i < 200; i++) {
      const img = image({ layers: [shared] });
      const name = `${i % 3 === 0 ? 'dev' : 'rel'}-${i}`;
      expectStatus(await toRes(await pushImage(base, 'bulk/app', img, name), 'PUT'), 201);
      // Ages in a scrambled order, all older than keepPulledWithin.
      tags.push({ name, digest: img.digest, updatedAt: now - 30 * DAY + ((i * 7919) % 200) * 60_000, pulled: false });
    }
    await execSql(
      registry,
      ...tags.map((t) => `update tags set updated_at = ${t.updatedAt} where name = '${t.name}'`),
      ...tags.map((t) => `update manifests set pushed_at = ${now - 30 * DAY} where digest = '${t.digest}'`),
    );
    // A pull history: every fifth tag, whatever its age.
    for (const [i, t] of tags.entries()) {
      if (i % 5 !== 0) continue;
      expectStatus(await http(`${base}/v2/bulk/app/manifests/${t.name}`, { headers: { accept: OCI_MANIFEST } }), 200);
      t.pulled = true;
    }
    const rel = tags.filter((t) => t.name.startsWith('rel-')).sort((a, b) => b.updatedAt - a.updatedAt);
    const expected = rel.filter((t, rank) => rank >= 20 && !t.pulled).map((t) => t.digest).sort();
    assert.ok(expected.length > 50 && expected.length < rel.length);

    const plan = JSON.parse((await http(`${base}/_portfolio/retention`)).text) as Report;
    const planned = plan.deletions.filter((d) => d.repository === 'bulk/app');
    assert.deepEqual(planned.map((d) => d.digest).sort(), expected);
    assert.ok(planned.every((d) => d.rule === 'retention:bulk/**'));

    const run = JSON.parse((await http(`${base}/_portfolio/retention`, { method: 'POST' })).text) as Report;
    assert.deepEqual(run.failed, []);
    const left = JSON.parse((await http(`${base}/v2/bulk/app/tags/list`)).text) as { tags: string[] };
    assert.equal(left.tags.length, 200 - expected.length);
    const fsck = await runCli(['fsck', '--json', ...registry.engineArgs]);
    assert.equal(fsck.code, 0, fsck.stdout);
  });
});
