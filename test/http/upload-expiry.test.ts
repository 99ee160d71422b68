/** Conformance: unfinished upload sessions expire (--upload-ttl, --upload-sweep-interval). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { blob, pushBlob } from '../helpers/oci.js';
import { http, expectStatus, expectError, header, location, withQuery, repoName, pollUntil, OCTET, useRegistry } from './util.js';

let base: string;
useRegistry({ args: ['--upload-ttl', '1', '--upload-sweep-interval', '1'] }, (url) => (base = url));

test('an unfinished session becomes 404 BLOB_UPLOAD_UNKNOWN after its TTL', async () => {
  const repo = repoName('expiry');
  const b = blob(randomBytes(200));
  const post = await http(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expectStatus(post, 202);
  const loc = location(post, base);
  const patched = await http(loc, { method: 'PATCH', headers: { 'content-type': OCTET, 'content-range': '0-99' }, body: b.bytes.subarray(0, 100) });
  expectStatus(patched, 202);
  assert.equal(header(patched, 'range'), '0-99');
  const started = Date.now();
  const gone = await pollUntil(async () => (await http(loc)).status === 404, 10_000, 250);
  const elapsed = Date.now() - started;
  assert.ok(gone, 'the session was still alive 10 s after a 1 s TTL');
  expectError(await http(loc), 404, 'BLOB_UPLOAD_UNKNOWN');
  // Closing the expired session fails too, and nothing becomes visible.
  expectError(await http(withQuery(loc, { digest: b.digest }), { method: 'PUT', headers: { 'content-type': OCTET }, body: b.bytes.subarray(100) }), 404, 'BLOB_UPLOAD_UNKNOWN');
  expectStatus(await http(`${base}/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' }), 404);
  assert.ok(elapsed < 10_000);
});

test('a session that expires does not disturb a completed upload or a new session', async () => {
  const repo = repoName('expiry-other');
  const done = blob();
  await pushBlob(base, repo, done);
  const post = await http(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expectStatus(post, 202);
  const loc = location(post, base);
  const gone = await pollUntil(async () => (await http(loc)).status === 404, 10_000, 250);
  assert.ok(gone, 'the session was still alive 10 s after a 1 s TTL');
  const res = await http(`${base}/v2/${repo}/blobs/${done.digest}`);
  expectStatus(res, 200);
  assert.ok(res.body.equals(done.bytes));
  // A new session started after the sweep works end to end.
  const b = blob();
  const fresh = await http(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expectStatus(fresh, 202);
  const put = await http(withQuery(location(fresh, base), { digest: b.digest }), { method: 'PUT', headers: { 'content-type': OCTET }, body: b.bytes });
  expectStatus(put, 201);
});

test('a fresh session is alive right after the POST (the TTL is not zero)', async () => {
  const repo = repoName('expiry-alive');
  const post = await http(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expectStatus(post, 202);
  const res = await http(location(post, base));
  expectStatus(res, 204);
});
