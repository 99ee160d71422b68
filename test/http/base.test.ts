/** Conformance: the API version check, unknown routes and the error envelope. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { blob, image, pushBlob, OCI_MANIFEST } from '../helpers/oci.js';
import { startRegistry } from '../helpers/registry.js';
import { withStores } from '../helpers/stores.js';
import { http, pushImageOk, expectStatus, expectError, expectEnvelope, expectReason, header, repoName, describeRes, useRegistry } from './util.js';

let base: string;
useRegistry({}, (url) => (base = url));

describe('GET /v2/', () => {
  test('answers 200 with Docker-Distribution-API-Version: registry/2.0', async () => {
    const res = await http(`${base}/v2/`);
    expectStatus(res, 200);
    assert.equal(header(res, 'docker-distribution-api-version'), 'registry/2.0');
  });

  test('HEAD /v2/ answers 200 as well', async () => {
    const res = await http(`${base}/v2/`, { method: 'HEAD' });
    expectStatus(res, 200);
    assert.equal(header(res, 'docker-distribution-api-version'), 'registry/2.0');
  });
});

describe('unknown routes under /v2/', () => {
  for (const path of ['/v2/nothing-here', '/v2/repo/notaroute/x', '/v2/repo/tags/other', '/v2/repo/referrers', '/v2/_catalogue']) {
    test(`GET ${path} → 404 NAME_UNKNOWN (reason ENDPOINT_UNKNOWN)`, async () => {
      const res = await http(`${base}${path}`);
      expectReason(res, 404, 'NAME_UNKNOWN', 'ENDPOINT_UNKNOWN');
    });
  }

  test('an unsupported method on a known route answers 405 UNSUPPORTED', async () => {
    const res = await http(`${base}/v2/somerepo/manifests/latest`, { method: 'PATCH', body: Buffer.from('{}') });
    expectError(res, 405, 'UNSUPPORTED');
  });
});

describe('error envelope', () => {
  test('errors are JSON with code/message/detail for each family of failure', async () => {
    const repo = repoName('envelope');
    const img = image();
    await pushImageOk(base, repo, img, 'v1');
    const cases: Array<[string, RequestInit, number, string, string?]> = [
      [`/v2/${repo}/blobs/sha256:${'0'.repeat(64)}`, {}, 404, 'BLOB_UNKNOWN'],
      [`/v2/${repo}/blobs/sha256:nothex`, {}, 400, 'DIGEST_INVALID'],
      [`/v2/${repo}/manifests/nope`, {}, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/${repo}/manifests/.bad`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: img.manifest }, 400, 'TAG_INVALID'],
      [`/v2/${repo}/manifests/v2`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: Buffer.from('{nope') }, 400, 'MANIFEST_INVALID'],
      [`/v2/${repo}/blobs/uploads/00000000-0000-4000-8000-000000000000`, {}, 404, 'BLOB_UPLOAD_UNKNOWN'],
      [`/v2/Bad/tags/list`, {}, 404, 'NAME_UNKNOWN'],
      [`/v2/Bad/blobs/uploads/`, { method: 'POST' }, 400, 'NAME_INVALID'],
      [`/v2/${repoName('never')}/tags/list`, {}, 404, 'NAME_UNKNOWN'],
      [`/v2/${repo}/tags/list?n=abc`, {}, 400, 'UNSUPPORTED', 'PAGINATION_NUMBER_INVALID'],
      [`/v2/${repo}/blobs/${img.layers[0]!.digest}`, { method: 'DELETE' }, 409, 'DENIED', 'BLOB_REFERENCED'],
      [`/v2/${repo}/blobs/${img.layers[0]!.digest}`, { headers: { range: `bytes=${img.layers[0]!.bytes.length}-` } }, 416, 'SIZE_INVALID', 'RANGE_NOT_SATISFIABLE'],
    ];
    for (const [path, init, status, code, reason] of cases) {
      const res = await http(`${base}${path}`, init);
      const first = reason === undefined ? expectError(res, status, code)[0]! : expectReason(res, status, code, reason);
      assert.equal(typeof first.message, 'string', `message should be a string:\n${describeRes(res)}`);
    }
  });

  test('HEAD errors carry no body but keep the status', async () => {
    const repo = repoName('headerr');
    await pushBlob(base, repo, blob());
    const res = await http(`${base}/v2/${repo}/blobs/sha256:${'1'.repeat(64)}`, { method: 'HEAD' });
    expectStatus(res, 404);
    assert.equal(res.body.length, 0);
  });

  test('the envelope helper rejects a non-error body (self-check)', async () => {
    const res = await http(`${base}/v2/`);
    assert.throws(() => expectEnvelope(res, 'BLOB_UNKNOWN'));
  });
});

describe('a failure of the server', () => {
  test('is a plain-text 500 with no error code (the spec lists none for it)', async () => {
    // Its own server: the shared one's log must stay free of errors.
    const registry = await startRegistry();
    try {
      const b = blob(randomBytes(100 * 1024));
      await pushBlob(registry.url, 'fail/repo', b);
      // Remove the bytes behind the metadata's back: reading them then fails inside the server.
      await withStores(registry.dataDir, registry.engineArgs, async (engine) => {
        const row = await engine.database.db.selectFrom('blobs').select('object_key').where('digest', '=', b.digest).executeTakeFirstOrThrow();
        assert.ok(row.object_key, 'a 100 KiB blob is kept in the object store');
        await engine.objects.delete(row.object_key);
      });
      const res = await fetch(`${registry.url}/v2/fail/repo/blobs/${b.digest}`);
      assert.equal(res.status, 500);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      assert.equal(await res.text(), 'internal server error');
    } finally {
      await registry.stop();
    }
  });
});
