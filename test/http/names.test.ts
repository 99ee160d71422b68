/**
 * Conformance: repository names — multi-segment names everywhere; a malformed name is not found
 * on a lookup (404 NAME_UNKNOWN) and invalid on a write (400 NAME_INVALID).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { blob, image, index, pushBlob, OCI_MANIFEST } from '../helpers/oci.js';
import {
  http,
  rawRequest,
  pushImageOk,
  putManifest,
  expectStatus,
  expectError,
  header,
  json,
  location,
  withQuery,
  repoName,
  OCTET,
  useRegistry,
} from './util.js';

let base: string;
useRegistry({}, (url) => (base = url));

/** Walks every endpoint for one repository name; fails on the first thing that does not work. */
async function fullWorkflow(repo: string): Promise<void> {
  // Blobs: single POST, GET, HEAD.
  const b = blob(randomBytes(2000));
  await pushBlob(base, repo, b);
  const got = await http(`${base}/v2/${repo}/blobs/${b.digest}`);
  expectStatus(got, 200);
  assert.ok(got.body.equals(b.bytes));
  expectStatus(await http(`${base}/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' }), 200);
  const ranged = await http(`${base}/v2/${repo}/blobs/${b.digest}`, { headers: { range: 'bytes=10-19' } });
  expectStatus(ranged, 206);

  // Chunked upload: POST, PATCH, GET status, PUT.
  const c = blob(randomBytes(3000));
  const post = await http(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expectStatus(post, 202);
  const loc = location(post, base);
  const p1 = await http(loc, { method: 'PATCH', headers: { 'content-type': OCTET, 'content-range': '0-1499' }, body: c.bytes.subarray(0, 1500) });
  expectStatus(p1, 202);
  assert.equal(header(p1, 'range'), '0-1499');
  const status = await http(loc);
  expectStatus(status, 204);
  assert.equal(header(status, 'range'), '0-1499');
  const p2 = await http(loc, { method: 'PATCH', headers: { 'content-type': OCTET, 'content-range': '1500-2999' }, body: c.bytes.subarray(1500) });
  expectStatus(p2, 202);
  const done = await http(withQuery(loc, { digest: c.digest }), { method: 'PUT' });
  expectStatus(done, 201);
  const pulled = await http(location(done, base));
  expectStatus(pulled, 200);
  assert.ok(pulled.body.equals(c.bytes));

  // Cancelled session.
  const post2 = await http(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expectStatus(post2, 202);
  expectStatus(await http(location(post2, base), { method: 'DELETE' }), 204);
  expectError(await http(location(post2, base)), 404, 'BLOB_UPLOAD_UNKNOWN');

  // Manifests, index, tags.
  const img = image();
  await pushImageOk(base, repo, img, 'v1');
  const m = await http(`${base}/v2/${repo}/manifests/v1`);
  expectStatus(m, 200);
  assert.ok(m.body.equals(img.manifest));
  expectStatus(await http(`${base}/v2/${repo}/manifests/${img.digest}`, { method: 'HEAD' }), 200);
  const idx = index([{ digest: img.digest, size: img.manifest.length, mediaType: img.mediaType }]);
  expectStatus(await putManifest(base, repo, 'multi', idx.manifest, idx.mediaType), 201);
  const tags = await http(`${base}/v2/${repo}/tags/list`);
  expectStatus(tags, 200);
  assert.deepEqual(json(tags), { name: repo, tags: ['multi', 'v1'] });

  // Referrers.
  const sig = image({ subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length }, artifactType: 'application/vnd.example.sig' });
  const pushed = await pushImageOk(base, repo, sig);
  assert.equal(header(pushed, 'oci-subject'), img.digest);
  const refs = await http(`${base}/v2/${repo}/referrers/${img.digest}`);
  expectStatus(refs, 200);
  assert.deepEqual(json<{ manifests: Array<{ digest: string }> }>(refs).manifests.map((d) => d.digest), [sig.digest]);

  // Mount into a sibling, then deletes.
  const sibling = `${repo}-mirror`;
  const mounted = await http(`${base}/v2/${sibling}/blobs/uploads/?mount=${b.digest}&from=${repo}`, { method: 'POST' });
  expectStatus(mounted, 201);
  expectStatus(await http(`${base}/v2/${sibling}/blobs/${b.digest}`, { method: 'HEAD' }), 200);
  expectStatus(await http(`${base}/v2/${repo}/manifests/multi`, { method: 'DELETE' }), 202);
  expectStatus(await http(`${base}/v2/${repo}/manifests/${idx.digest}`, { method: 'DELETE' }), 202);
  expectStatus(await http(`${base}/v2/${repo}/manifests/${sig.digest}`, { method: 'DELETE' }), 202);
  expectStatus(await http(`${base}/v2/${repo}/manifests/${img.digest}`, { method: 'DELETE' }), 202);
  expectError(await http(`${base}/v2/${repo}/manifests/v1`), 404, 'MANIFEST_UNKNOWN');
  expectStatus(await http(`${base}/v2/${repo}/blobs/${b.digest}`, { method: 'DELETE' }), 202);
  expectError(await http(`${base}/v2/${repo}/blobs/${b.digest}`), 404, 'BLOB_UNKNOWN');
}

describe('multi-segment names work on every endpoint', () => {
  test('a/b/c style', async () => {
    await fullWorkflow(`${repoName('a')}/b/c`);
  });

  test('org/team/app style', async () => {
    await fullWorkflow(`${repoName('org')}/team/app`);
  });

  test('components with every separator (. _ __ - --)', async () => {
    await fullWorkflow(`${repoName('x.y_z__w-v--u')}/p.q/r0`);
  });

  test('a parent and a child repository are distinct', async () => {
    const parent = repoName('parent');
    const child = `${parent}/child`;
    const b = blob();
    await pushBlob(base, child, b);
    await pushImageOk(base, parent, image(), 'p');
    expectError(await http(`${base}/v2/${parent}/blobs/${b.digest}`), 404, 'BLOB_UNKNOWN');
    expectStatus(await http(`${base}/v2/${child}/blobs/${b.digest}`, { method: 'HEAD' }), 200);
  });
});

describe('names containing route keywords (valid per the name grammar)', () => {
  for (const suffix of ['manifests/x', 'blobs/x', 'blobs/uploads/x', 'tags/list', 'referrers/x']) {
    test(`<prefix>/${suffix}`, async () => {
      await fullWorkflow(`${repoName('kw')}/${suffix}`);
    });
  }
});

describe('invalid names: lookups → 404 NAME_UNKNOWN, writes → 400 NAME_INVALID', () => {
  const INVALID: Array<[string, string]> = [
    ['uppercase', 'Bad'],
    ['uppercase in a later segment', 'good/Bad'],
    ['a ".." segment', 'a/../b'],
    ['a "." segment', 'a/./b'],
    ['a leading separator', '/a'],
    ['a double slash', 'a//b'],
    ['a trailing "-"', 'abc-'],
    ['a leading "-"', '-abc'],
    ['a trailing "."', 'abc.'],
    ['three underscores', 'a___b'],
    ['two dots', 'a..b'],
    ['a segment starting with "_"', 'a/_b'],
    ['a space', 'a%20b'],
  ];
  const digest = blob('x').digest;
  const img = image();
  const SESSION = '5f0c7b1e-8a4d-4c57-9d1e-0a2b3c4d5e6f';
  const endpoints: Array<[string, string, (name: string) => string, Buffer | undefined, Record<string, string>]> = [
    ['GET manifest', 'GET', (n) => `/v2/${n}/manifests/latest`, undefined, {}],
    ['PUT manifest', 'PUT', (n) => `/v2/${n}/manifests/latest`, img.manifest, { 'content-type': OCI_MANIFEST }],
    ['DELETE manifest', 'DELETE', (n) => `/v2/${n}/manifests/${img.digest}`, undefined, {}],
    ['GET tags', 'GET', (n) => `/v2/${n}/tags/list`, undefined, {}],
    ['GET blob', 'GET', (n) => `/v2/${n}/blobs/${digest}`, undefined, {}],
    ['DELETE blob', 'DELETE', (n) => `/v2/${n}/blobs/${digest}`, undefined, {}],
    ['POST upload', 'POST', (n) => `/v2/${n}/blobs/uploads/`, Buffer.alloc(0), {}],
    ['POST single upload', 'POST', (n) => `/v2/${n}/blobs/uploads/?digest=${blob('x').digest}`, Buffer.from('x'), { 'content-type': OCTET }],
    ['GET referrers', 'GET', (n) => `/v2/${n}/referrers/${digest}`, undefined, {}],
    ['POST mount', 'POST', (n) => `/v2/${n}/blobs/uploads/?mount=${digest}&from=library`, Buffer.alloc(0), {}],
    ['GET upload session', 'GET', (n) => `/v2/${n}/blobs/uploads/${SESSION}`, undefined, {}],
    ['PATCH upload session', 'PATCH', (n) => `/v2/${n}/blobs/uploads/${SESSION}`, Buffer.from('abc'), { 'content-type': OCTET }],
    ['PUT upload session', 'PUT', (n) => `/v2/${n}/blobs/uploads/${SESSION}?digest=${blob('abc').digest}`, Buffer.from('abc'), { 'content-type': OCTET }],
    ['DELETE upload session', 'DELETE', (n) => `/v2/${n}/blobs/uploads/${SESSION}`, undefined, {}],
  ];
  for (const [what, name] of INVALID) {
    test(`${what} (${name})`, async () => {
      for (const [label, method, path, body, headers] of endpoints) {
        const res = await rawRequest(base, method, path(name), headers, body);
        const lookup = method === 'GET' || method === 'DELETE';
        try {
          if (lookup) expectError(res, 404, 'NAME_UNKNOWN');
          else expectError(res, 400, 'NAME_INVALID');
        } catch (e) {
          throw new Error(`${label}: ${(e as Error).message}`);
        }
      }
      for (const path of [`/v2/${name}/manifests/latest`, `/v2/${name}/blobs/${digest}`, `/v2/${name}/tags/list`]) {
        expectStatus(await rawRequest(base, 'HEAD', path), 404);
      }
    });
  }

  test('a mount into a valid name from an invalid `from` is not an error (202)', async () => {
    const target = repoName('names-mount');
    const res = await http(`${base}/v2/${target}/blobs/uploads/?mount=${digest}&from=${encodeURIComponent('Bad/Name')}`, { method: 'POST' });
    expectStatus(res, 202);
  });
});

describe('unknown repositories', () => {
  test('tags list of an unknown repository → 404 NAME_UNKNOWN', async () => {
    expectError(await http(`${base}/v2/${repoName('names-unknown')}/tags/list`), 404, 'NAME_UNKNOWN');
  });

  test('a valid multi-segment name that was never pushed → 404 NAME_UNKNOWN for tags list', async () => {
    expectError(await http(`${base}/v2/${repoName('names-unknown')}/deep/er/tags/list`), 404, 'NAME_UNKNOWN');
  });
});

describe('malformed path parts other than names', () => {
  const garbage = ['not-a-session', '..', 'x'.repeat(300), '%00', 'sha256:abc'];

  test('an upload id that names no session → 404 BLOB_UPLOAD_UNKNOWN on GET, PATCH, PUT and DELETE', async () => {
    const repo = repoName('names-upload-id');
    await pushBlob(base, repo, blob());
    const b = blob('abc');
    for (const id of garbage) {
      const url = `/v2/${repo}/blobs/uploads/${id}`;
      expectError(await rawRequest(base, 'GET', url), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectError(await rawRequest(base, 'PATCH', url, { 'content-type': OCTET }, b.bytes), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectError(await rawRequest(base, 'PUT', `${url}?digest=${b.digest}`, { 'content-type': OCTET }, b.bytes), 404, 'BLOB_UPLOAD_UNKNOWN');
      expectError(await rawRequest(base, 'DELETE', url), 404, 'BLOB_UPLOAD_UNKNOWN');
    }
  });

  test('referrers of a subject that is no valid digest → 400 DIGEST_INVALID (the spec requires 400 there)', async () => {
    const repo = repoName('names-referrers');
    await pushImageOk(base, repo, image(), 'v1');
    for (const subject of ['latest', 'sha256:abc', `md5:${'a'.repeat(32)}`]) {
      expectError(await rawRequest(base, 'GET', `/v2/${repo}/referrers/${subject}`), 400, 'DIGEST_INVALID');
    }
  });
});

describe('the admin route', () => {
  test('deleting a repository by a malformed name → 404 NAME_UNKNOWN (a lookup), as for an unknown one', async () => {
    expectError(await rawRequest(base, 'DELETE', '/_portfolio/repositories/Bad/Name'), 404, 'NAME_UNKNOWN');
    expectError(await rawRequest(base, 'DELETE', `/_portfolio/repositories/${repoName('names-admin-unknown')}`), 404, 'NAME_UNKNOWN');
  });
});
