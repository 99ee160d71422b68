/** Garbage collection, fsck, du and repository delete, through the CLI and the admin routes. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { FsckReport, GcReport, Usage } from '../../src/core/maintenance.js';
import type { Engine } from '../../src/cli/engine.js';
import { withStores } from '../helpers/stores.js';
import { blob, image, index, pushBlob, pushImage } from '../helpers/oci.js';
import { ENGINE, runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';

let reg: RunningRegistry;
before(async () => {
  reg = await startRegistry({ args: ['--gc-interval', '0'] });
});
after(async () => reg?.stop());

async function gc(...args: string[]): Promise<GcReport> {
  const r = await runCli(['gc', '--json', ...reg.engineArgs, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as GcReport;
}

async function fsck(...args: string[]): Promise<{ code: number; report: FsckReport }> {
  const r = await runCli(['fsck', '--json', ...reg.engineArgs, ...args]);
  return { code: r.code, report: JSON.parse(r.stdout) as FsckReport };
}

const status = async (path: string, method = 'HEAD') => (await fetch(`${reg.url}${path}`, { method })).status;

function withObjects<T>(work: (engine: Engine) => Promise<T>): Promise<T> {
  return withStores(reg.dataDir, reg.engineArgs, work);
}

test('within the grace period nothing is collected; past it, only unreferenced blobs go', async () => {
  const img = image();
  assert.equal((await pushImage(reg.url, 'gc/basic', img, 'v1')).status, 201);
  const loose = blob(randomBytes(4096));
  await pushBlob(reg.url, 'gc/basic', loose);

  const kept = await gc();
  assert.equal(kept.blobsDeleted, 0);
  assert.equal(await status(`/v2/gc/basic/blobs/${loose.digest}`), 200);

  const dry = await gc('--grace', '0', '--dry-run');
  assert.ok(dry.linksDeleted >= 1 && dry.blobsDeleted >= 1, JSON.stringify(dry));
  assert.equal(await status(`/v2/gc/basic/blobs/${loose.digest}`), 200, 'a dry run removes nothing');

  const done = await gc('--grace', '0');
  assert.ok(done.blobsDeleted >= 1 && done.bytesFreed >= loose.size, JSON.stringify(done));
  assert.equal(await status(`/v2/gc/basic/blobs/${loose.digest}`), 404);
  for (const b of [img.config, ...img.layers]) assert.equal(await status(`/v2/gc/basic/blobs/${b.digest}`, 'GET'), 200);
  assert.equal(await status('/v2/gc/basic/manifests/v1', 'GET'), 200);
});

test('deleting a manifest lets collection reclaim its layers, but not layers another repository uses', async () => {
  const shared = blob(randomBytes(2048));
  const a = image({ layers: [shared, blob()] });
  const b = image({ layers: [shared] });
  await pushImage(reg.url, 'gc/owner', a, 'v1');
  await pushImage(reg.url, 'gc/other', b, 'v1');
  assert.equal(await status(`/v2/gc/owner/manifests/${a.digest}`, 'DELETE'), 202);
  await gc('--grace', '0');
  assert.equal(await status(`/v2/gc/owner/blobs/${a.layers[1]!.digest}`), 404);
  assert.equal(await status(`/v2/gc/owner/blobs/${shared.digest}`), 404, 'the link in the owner repository is gone');
  const res = await fetch(`${reg.url}/v2/gc/other/blobs/${shared.digest}`);
  assert.equal(res.status, 200, 'bytes another repository uses survive');
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), shared.bytes);
});

test('referrers of a deleted subject go; untagged manifests go only when configured', async () => {
  const subject = image();
  await pushImage(reg.url, 'gc/refs', subject, 'app');
  const desc = { mediaType: subject.mediaType, digest: subject.digest, size: subject.manifest.length };
  const sig = image({ artifactType: 'application/vnd.example.sig', subject: desc });
  await pushImage(reg.url, 'gc/refs', sig);
  const untagged = image();
  await pushImage(reg.url, 'gc/refs', untagged);
  const child = image();
  await pushImage(reg.url, 'gc/refs', child);
  const idx = index([{ digest: child.digest, size: child.manifest.length, mediaType: child.mediaType }]);
  await fetch(`${reg.url}/v2/gc/refs/manifests/multi`, { method: 'PUT', headers: { 'content-type': idx.mediaType }, body: idx.manifest });

  await gc('--grace', '0');
  assert.equal(await status(`/v2/gc/refs/manifests/${sig.digest}`), 200, 'a referrer of a live subject stays');
  assert.equal(await status(`/v2/gc/refs/manifests/${untagged.digest}`), 200, 'untagged manifests stay by default');

  await gc('--grace', '0', '--delete-untagged', '0');
  assert.equal(await status(`/v2/gc/refs/manifests/${untagged.digest}`), 404);
  assert.equal(await status(`/v2/gc/refs/manifests/${sig.digest}`), 200, 'a referrer of a live subject stays');
  assert.equal(await status(`/v2/gc/refs/manifests/${child.digest}`), 200, 'an index child stays');
  assert.equal(await status('/v2/gc/refs/manifests/app'), 200);

  assert.equal(await status(`/v2/gc/refs/manifests/${subject.digest}`, 'DELETE'), 202);
  const report = await gc('--grace', '0');
  assert.ok(report.manifestsDeleted >= 1);
  assert.equal(await status(`/v2/gc/refs/manifests/${sig.digest}`), 404, 'a referrer whose subject is gone is collected');
  const refs = (await (await fetch(`${reg.url}/v2/gc/refs/referrers/${subject.digest}`)).json()) as { manifests: unknown[] };
  assert.deepEqual(refs.manifests, []);
});

test('du counts shared bytes once; repository delete by CLI and HTTP, then collection', async () => {
  const shared = blob(randomBytes(10_000));
  await pushImage(reg.url, 'du/one', image({ layers: [shared] }), 'v1');
  await pushImage(reg.url, 'du/two', image({ layers: [shared] }), 'v1');
  const du = await runCli(['du', '--json', ...reg.engineArgs]);
  assert.equal(du.code, 0, du.stderr);
  const usage = JSON.parse(du.stdout) as Usage;
  const one = usage.repositories.find((r) => r.name === 'du/one');
  assert.ok(one && one.bytes >= shared.size && one.manifests === 1 && one.tags === 1);
  assert.ok(usage.logicalBytes - usage.storedBytes >= shared.size, 'the shared layer is stored once');
  const http = (await (await fetch(`${reg.url}/_portfolio/usage`)).json()) as Usage;
  assert.equal(http.storedBytes, usage.storedBytes);

  const del = await runCli(['repo', 'delete', 'du/one', ...reg.engineArgs]);
  assert.equal(del.code, 0, del.stderr);
  assert.equal(await status('/v2/du/one/manifests/v1'), 404);
  assert.equal((await runCli(['repo', 'delete', 'du/one', ...reg.engineArgs])).code, 1);
  assert.equal(await status('/_portfolio/repositories/du/two', 'DELETE'), 202);
  assert.equal(await status('/_portfolio/repositories/du/two', 'DELETE'), 404);
  await gc('--grace', '0');
  const after = (await (await fetch(`${reg.url}/_portfolio/usage`)).json()) as Usage;
  assert.ok(!after.repositories.some((r) => r.name.startsWith('du/')));
  assert.ok(after.storedBytes <= usage.storedBytes - shared.size);
});

test('fsck passes on a healthy store and reports, then repairs, what is wrong', async () => {
  const clean = await fsck();
  assert.equal(clean.code, 0, JSON.stringify(clean.report.problems));
  assert.ok(clean.report.checked.blobs > 0);

  // Layers past the inline limit live in the object store; the config lives in its row.
  const img = image({ layers: [blob(randomBytes(100_000)), blob(randomBytes(100_000))] });
  await pushImage(reg.url, 'fsck/broken', img, 'v1');
  const layer = img.layers[0]!;
  await withObjects(async ({ database, objects }) => {
    // Inline bytes of the same size that do not match the digest.
    const config = await database.db.selectFrom('blobs').select(['content']).where('digest', '=', img.config.digest).executeTakeFirstOrThrow();
    assert.equal(config.content?.length, img.config.size, 'a small blob is kept inline');
    await database.db.updateTable('blobs').set({ content: randomBytes(img.config.size) }).where('digest', '=', img.config.digest).execute();
    const row = await database.db.selectFrom('blobs').select('object_key').where('digest', '=', layer.digest).executeTakeFirstOrThrow();
    // Same size, other bytes: only a full check sees it.
    await objects.delete(row.object_key);
    const state = await objects.beginUpload(row.object_key);
    const put = await objects.appendUpload(row.object_key, state, 0, Readable.from([randomBytes(layer.size)]));
    await objects.completeUpload(row.object_key, put.state, layer.size);
    // An object nothing points to.
    const orphan = 'blobs/zz/orphan-object';
    const s = await objects.beginUpload(orphan);
    const o = await objects.appendUpload(orphan, s, 0, Readable.from([Buffer.from('orphan')]));
    await objects.completeUpload(orphan, o.state, 6);
  });
  assert.equal((await fsck()).code, 0, 'within grace the orphan is not a violation, and sizes match');
  const full = await fsck('--full', '--grace', '0');
  assert.equal(full.code, 1);
  const kinds = full.report.problems.map((p) => p.kind).sort();
  assert.deepEqual(kinds, ['blob-digest', 'blob-digest', 'orphan-object']);
  assert.deepEqual(full.report.problems.filter((p) => p.kind === 'blob-digest').map((p) => p.subject).sort(), [img.config.digest, layer.digest].sort());
  const repaired = await fsck('--grace', '0', '--repair');
  assert.equal(repaired.code, 0, JSON.stringify(repaired.report.problems));
  assert.ok(repaired.report.problems.some((p) => p.kind === 'orphan-object' && p.repaired));

  await withObjects(async ({ database, objects }) => {
    const row = await database.db.selectFrom('blobs').select('object_key').where('digest', '=', img.layers[1]!.digest).executeTakeFirstOrThrow();
    await objects.delete(row.object_key);
  });
  const missing = await fsck();
  assert.equal(missing.code, 1);
  assert.ok(missing.report.problems.some((p) => p.kind === 'blob-missing' && p.subject === img.layers[1]!.digest));
});

test('fsck finds manifests whose blobs or children are not in their own repository', async () => {
  // The same layer in two repositories: the link goes from one only, so a digest found in the
  // other repository must not satisfy the check.
  const shared = blob(randomBytes(2048));
  const broken = image({ layers: [shared] });
  const whole = image({ layers: [shared] });
  await pushImage(reg.url, 'fsck/refs-broken', broken, 'v1');
  await pushImage(reg.url, 'fsck/refs-whole', whole, 'v1');
  const child = image();
  await pushImage(reg.url, 'fsck/refs-index', child);
  const idx = index([{ digest: child.digest, size: child.manifest.length, mediaType: child.mediaType }]);
  const put = await fetch(`${reg.url}/v2/fsck/refs-index/manifests/multi`, { method: 'PUT', headers: { 'content-type': idx.mediaType }, body: idx.manifest });
  assert.equal(put.status, 201);
  await pushImage(reg.url, 'fsck/refs-whole', child);
  // (The test before leaves a missing object behind: only this kind of problem is counted here.)
  const references = async () =>
    (await fsck()).report.problems
      .filter((p) => p.kind === 'manifest-reference')
      .map((p) => `${p.subject} ${p.detail}`)
      .sort();
  assert.deepEqual(await references(), []);

  await withObjects(async ({ database }) => {
    const db = database.db;
    const repo = async (name: string) => (await db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
    const manifest = async (repository: number, digest: string) =>
      (await db.selectFrom('manifests').select('id').where('repository_id', '=', repository).where('digest', '=', digest).executeTakeFirstOrThrow()).id;
    const brokenRepo = await repo('fsck/refs-broken');
    const layer = (await db.selectFrom('blobs').select('id').where('digest', '=', shared.digest).executeTakeFirstOrThrow()).id;
    // The schema's references keep a used link; undo them first, as a damaged database might.
    await db.deleteFrom('manifest_blobs').where('manifest_id', '=', await manifest(brokenRepo, broken.digest)).where('blob_id', '=', layer).execute();
    await db.deleteFrom('repository_blobs').where('repository_id', '=', brokenRepo).where('blob_id', '=', layer).execute();
    const indexRepo = await repo('fsck/refs-index');
    const childId = await manifest(indexRepo, child.digest);
    await db.deleteFrom('manifest_children').where('child_id', '=', childId).execute();
    await db.deleteFrom('manifests').where('id', '=', childId).execute();
  });
  assert.deepEqual(await references(), [
    `fsck/refs-broken@${broken.digest} blob ${shared.digest} is not in the repository`,
    `fsck/refs-index@${idx.digest} child manifest ${child.digest} is not in the repository`,
  ]);
});

test('staged chunks of a session that died without an abort are found by fsck and reclaimed by gc', { skip: ENGINE !== 'pg-s3' && 'only S3 stages chunks outside the upload key' }, async () => {
  const post = await fetch(`${reg.url}/v2/gc/staging/blobs/uploads/`, { method: 'POST' });
  const location = post.headers.get('location')!;
  // The first chunk is past the inline limit, so the session writes to S3; the second is staged.
  for (const [start, end] of [
    [0, 99_999],
    [100_000, 101_023],
  ] as const) {
    const res = await fetch(`${reg.url}${location}`, { method: 'PATCH', headers: { 'content-range': `${start}-${end}` }, body: randomBytes(end - start + 1) });
    assert.equal(res.status, 202);
  }
  const id = location.split('/').pop()!;
  const key = await withObjects(async ({ database }) => {
    // A crash between ending the session and discarding its bytes.
    const row = await database.db.deleteFrom('uploads').where('id', '=', id).returning('object_key').executeTakeFirstOrThrow();
    return row.object_key;
  });
  const staged = (p: FsckReport['problems']) => p.some((x) => x.subject === key && /staged chunks/.test(x.detail));
  const before = await fsck('--grace', '0');
  assert.equal(before.code, 1);
  assert.ok(staged(before.report.problems), JSON.stringify(before.report.problems));
  const report = await gc('--grace', '0');
  assert.ok(report.orphanObjectsDeleted >= 1);
  const after = await fsck('--grace', '0');
  assert.ok(!staged(after.report.problems), JSON.stringify(after.report.problems));
});

test('re-pushing a manifest restarts its untagged age', async () => {
  const child = image();
  await pushImage(reg.url, 'gc/repush', child);
  const other = image();
  await pushImage(reg.url, 'gc/repush', other);
  // Both were pushed an hour ago.
  await withObjects(async ({ database }) => {
    const hourAgo = Date.now() - 3_600_000;
    await database.db.updateTable('manifests').set({ created_at: hourAgo, pushed_at: hourAgo }).where('digest', 'in', [child.digest, other.digest]).execute();
  });
  // Re-pushed just before its index would be: it is young again.
  const again = await fetch(`${reg.url}/v2/gc/repush/manifests/${child.digest}`, { method: 'PUT', headers: { 'content-type': child.mediaType }, body: child.manifest });
  assert.equal(again.status, 201);
  await gc('--grace', '0', '--delete-untagged', '30m');
  assert.equal(await status(`/v2/gc/repush/manifests/${child.digest}`), 200, 'a manifest re-pushed just now stays');
  assert.equal(await status(`/v2/gc/repush/manifests/${other.digest}`), 404, 'an untagged manifest past the age goes');
  const idx = index([{ digest: child.digest, size: child.manifest.length, mediaType: child.mediaType }]);
  const put = await fetch(`${reg.url}/v2/gc/repush/manifests/multi`, { method: 'PUT', headers: { 'content-type': idx.mediaType }, body: idx.manifest });
  assert.equal(put.status, 201, 'the index finds its child');
});
