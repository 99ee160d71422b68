/** Conformance: cross-repository blob mounts (POST ?mount=&from=). */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { blob, image, pushBlob, type Blob } from '../helpers/oci.js';
import { http, pushImageOk, expectStatus, expectError, header, location, withQuery, repoName, describeRes, OCTET, type Res, useRegistry } from './util.js';

let base: string;
useRegistry({}, (url) => (base = url));

const blobUrl = (repo: string, digest: string) => `${base}/v2/${repo}/blobs/${digest}`;

function mount(target: string, digest: string, from?: string): Promise<Res> {
  const q = new URLSearchParams({ mount: digest });
  if (from !== undefined) q.set('from', from);
  return http(`${base}/v2/${target}/blobs/uploads/?${q.toString()}`, { method: 'POST' });
}

async function expectMounted(res: Res, target: string, b: Blob): Promise<void> {
  expectStatus(res, 201);
  assert.equal(header(res, 'docker-content-digest'), b.digest);
  const pulled = await http(location(res, base));
  expectStatus(pulled, 200);
  assert.ok(pulled.body.equals(b.bytes), `mounted Location serves other bytes:\n${describeRes(pulled)}`);
  expectStatus(await http(blobUrl(target, b.digest), { method: 'HEAD' }), 200);
  const got = await http(blobUrl(target, b.digest));
  expectStatus(got, 200);
  assert.ok(got.body.equals(b.bytes));
}

/** A 202 answer must be a usable upload session: complete it with a monolithic PUT. */
async function expectUsableSession(res: Res, target: string): Promise<void> {
  expectStatus(res, 202);
  const loc = location(res, base);
  header(res, 'docker-upload-uuid');
  const status = await http(loc);
  expectStatus(status, 204);
  const b = blob(randomBytes(300));
  const put = await http(withQuery(loc, { digest: b.digest }), { method: 'PUT', headers: { 'content-type': OCTET }, body: b.bytes });
  expectStatus(put, 201);
  expectStatus(await http(blobUrl(target, b.digest), { method: 'HEAD' }), 200);
}

describe('mount with from', () => {
  test('a blob visible in `from` → 201 with Location and Docker-Content-Digest; visible in the target', async () => {
    const from = repoName('mnt-src');
    const target = repoName('mnt-dst');
    const b = blob();
    await pushBlob(base, from, b);
    expectStatus(await http(blobUrl(target, b.digest), { method: 'HEAD' }), 404);
    await expectMounted(await mount(target, b.digest, from), target, b);
    // The source keeps it too.
    expectStatus(await http(blobUrl(from, b.digest), { method: 'HEAD' }), 200);
  });

  test('mounting into a repository that already has the blob → 201', async () => {
    const from = repoName('mnt-src-dup');
    const target = repoName('mnt-dst-dup');
    const b = blob();
    await pushBlob(base, from, b);
    await pushBlob(base, target, b);
    await expectMounted(await mount(target, b.digest, from), target, b);
  });

  test('a blob not in `from` → 202 with a usable upload session; nothing mounted', async () => {
    const from = repoName('mnt-src-missing');
    const target = repoName('mnt-dst-missing');
    await pushBlob(base, from, blob());
    const b = blob();
    const res = await mount(target, b.digest, from);
    await expectUsableSession(res, target);
    expectStatus(await http(blobUrl(target, b.digest), { method: 'HEAD' }), 404);
  });

  test('a blob that exists elsewhere but not in the named `from` → 202 (no leak across repositories)', async () => {
    const holder = repoName('mnt-holder');
    const from = repoName('mnt-src-wrong');
    const target = repoName('mnt-dst-wrong');
    const b = blob();
    await pushBlob(base, holder, b);
    await pushBlob(base, from, blob());
    const res = await mount(target, b.digest, from);
    await expectUsableSession(res, target);
    expectStatus(await http(blobUrl(target, b.digest), { method: 'HEAD' }), 404);
  });

  test('a `from` repository that does not exist → 202', async () => {
    const target = repoName('mnt-dst-nofrom');
    const b = blob();
    await pushBlob(base, repoName('mnt-other'), b);
    await expectUsableSession(await mount(target, b.digest, repoName('mnt-never')), target);
  });

  test('an invalid `from` name → 202 (treated as not mountable)', async () => {
    const target = repoName('mnt-dst-badfrom');
    const b = blob();
    await pushBlob(base, repoName('mnt-src-badfrom'), b);
    const res = await mount(target, b.digest, 'Bad//Name');
    await expectUsableSession(res, target);
  });

  test('a blob deleted from `from` can no longer be mounted from it → 202', async () => {
    const from = repoName('mnt-src-del');
    const target = repoName('mnt-dst-del');
    const b = blob();
    await pushBlob(base, from, b);
    expectStatus(await http(blobUrl(from, b.digest), { method: 'DELETE' }), 202);
    await expectUsableSession(await mount(target, b.digest, from), target);
    expectStatus(await http(blobUrl(target, b.digest), { method: 'HEAD' }), 404);
  });

  test('after a mount, deleting the blob from the source leaves the target’s copy', async () => {
    const from = repoName('mnt-src-indep');
    const target = repoName('mnt-dst-indep');
    const b = blob(randomBytes(4096));
    await pushBlob(base, from, b);
    await expectMounted(await mount(target, b.digest, from), target, b);
    expectStatus(await http(blobUrl(from, b.digest), { method: 'DELETE' }), 202);
    expectStatus(await http(blobUrl(from, b.digest), { method: 'HEAD' }), 404);
    const got = await http(blobUrl(target, b.digest));
    expectStatus(got, 200);
    assert.ok(got.body.equals(b.bytes));
  });

  test('mounted blobs satisfy a manifest push in the target', async () => {
    const from = repoName('mnt-src-img');
    const target = repoName('mnt-dst-img');
    const img = image();
    await pushImageOk(base, from, img, 'v1');
    for (const b of [img.config, ...img.layers]) await expectMounted(await mount(target, b.digest, from), target, b);
    const res = await http(`${base}/v2/${target}/manifests/v1`, { method: 'PUT', headers: { 'content-type': img.mediaType }, body: img.manifest });
    expectStatus(res, 201);
  });

  test('a mount of a multi-segment name from a multi-segment name', async () => {
    const from = `${repoName('mnt-org')}/team/src`;
    const target = `${repoName('mnt-org')}/team/dst`;
    const b = blob();
    await pushBlob(base, from, b);
    await expectMounted(await mount(target, b.digest, from), target, b);
  });
});

describe('mount without from', () => {
  test('a blob that exists in any repository → 201, visible in the target', async () => {
    const holder = repoName('mnt-any-holder');
    const target = repoName('mnt-any-dst');
    const b = blob();
    await pushBlob(base, holder, b);
    await expectMounted(await mount(target, b.digest), target, b);
  });

  test('a blob that exists nowhere → 202 with a usable session', async () => {
    const target = repoName('mnt-any-none');
    const b = blob();
    await expectUsableSession(await mount(target, b.digest), target);
    expectStatus(await http(blobUrl(target, b.digest), { method: 'HEAD' }), 404);
  });
});

describe('mount errors', () => {
  test('a mount into an invalid repository name → 400 NAME_INVALID', async () => {
    const b = blob();
    await pushBlob(base, repoName('mnt-src-inv'), b);
    expectError(await mount('Invalid', b.digest), 400, 'NAME_INVALID');
  });
});
