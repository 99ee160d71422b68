/**
 * Two `serve` processes on one database and one object store behave as one registry: uploads
 * continue across replicas, concurrent pushes of one blob store it once, writes are read at once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { blob, image, pushImage, sha256 } from '../helpers/oci.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { withStores } from '../helpers/stores.js';

let a: RunningRegistry;
let b: RunningRegistry;

before(async () => {
  a = await startRegistry();
  // Same stores, started at once with a third process: migrations must serialize.
  const [second, third] = await Promise.all([startRegistry({ engineArgs: a.engineArgs, dataDir: a.dataDir }), startRegistry({ engineArgs: a.engineArgs, dataDir: a.dataDir })]);
  b = second;
  await third.stop();
});
after(async () => {
  await b?.stop();
  await a?.stop();
});

test('an upload begun on A continues on B and finishes on A', async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 17);
  const digest = sha256(bytes);
  const post = await fetch(`${a.url}/v2/replica/chunked/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202);
  const location = post.headers.get('location')!;
  const cut = [0, 1024 * 1024, 2 * 1024 * 1024 + 5, bytes.length];
  const hosts = [a, b, a];
  for (let i = 0; i < 3; i++) {
    const chunk = bytes.subarray(cut[i]!, cut[i + 1]!);
    const res = await fetch(new URL(location, hosts[i]!.url), {
      method: 'PATCH',
      headers: { 'content-range': `${cut[i]}-${cut[i + 1]! - 1}`, 'content-type': 'application/octet-stream' },
      body: chunk,
    });
    assert.equal(res.status, 202, await res.text());
    assert.equal(res.headers.get('range'), `0-${cut[i + 1]! - 1}`);
  }
  const status = await fetch(new URL(location, b.url));
  assert.equal(status.status, 204);
  assert.equal(status.headers.get('range'), `0-${bytes.length - 1}`);
  const put = await fetch(new URL(`${location}?digest=${digest}`, b.url), { method: 'PUT' });
  assert.equal(put.status, 201, await put.text());
  for (const r of [a, b]) {
    const res = await fetch(`${r.url}/v2/replica/chunked/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), digest);
  }
});

test('the same blob pushed to both replicas at the same moment: both succeed, stored once', async () => {
  const content = blob(randomBytes(777_777));
  const pushes = [a, b, a, b].map((r, i) =>
    fetch(`${r.url}/v2/replica/same${i % 2}/blobs/uploads/?digest=${content.digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: content.bytes,
    }),
  );
  const statuses = (await Promise.all(pushes)).map((r) => r.status);
  assert.deepEqual(statuses, [201, 201, 201, 201]);
  await withStores(a.dataDir, a.engineArgs, async (engine) => {
    const rows = await engine.database.db.selectFrom('blobs').select(['object_key']).where('digest', '=', content.digest).execute();
    assert.equal(rows.length, 1);
    let copies = 0;
    for await (const o of engine.objects.list('blobs/')) if (o.size === content.size) copies++;
    assert.equal(copies, 1, 'the bytes of duplicate uploads are removed');
  });
});

test('writes on one replica are read on the other at once', async () => {
  const img = image();
  const put = await pushImage(a.url, 'replica/ryw', img, 'v1');
  assert.equal(put.status, 201);
  const got = await fetch(`${b.url}/v2/replica/ryw/manifests/v1`);
  assert.equal(got.status, 200);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), img.manifest);
  const tag = await fetch(`${b.url}/v2/replica/ryw/manifests/v2`, { method: 'PUT', headers: { 'content-type': img.mediaType }, body: img.manifest });
  assert.equal(tag.status, 201);
  const tags = (await (await fetch(`${a.url}/v2/replica/ryw/tags/list`)).json()) as { tags: string[] };
  assert.deepEqual(tags.tags, ['v1', 'v2']);
  const del = await fetch(`${a.url}/v2/replica/ryw/manifests/v1`, { method: 'DELETE' });
  assert.equal(del.status, 202);
  assert.equal((await fetch(`${b.url}/v2/replica/ryw/manifests/v1`)).status, 404);
  assert.equal((await fetch(`${b.url}/v2/replica/ryw/manifests/v2`)).status, 200);
});
