/** Conformance: blob upload sessions — monolithic, chunked, streamed, status and cancel. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { blob, image, pushBlob, sha256, sha512, type Blob } from '../helpers/oci.js';
import { http, putManifest, expectStatus, expectError, header, location, withQuery, repoName, describeRes, OCTET, type Res, useRegistry } from './util.js';

let base: string;
useRegistry({}, (url) => (base = url));

const blobUrl = (repo: string, digest: string) => `${base}/v2/${repo}/blobs/${digest}`;
const uploadsUrl = (repo: string) => `${base}/v2/${repo}/blobs/uploads/`;

interface Session {
  loc: URL;
  uuid: string;
  res: Res;
}

async function startUpload(repo: string): Promise<Session> {
  const res = await http(uploadsUrl(repo), { method: 'POST' });
  expectStatus(res, 202);
  return { loc: location(res, base), uuid: header(res, 'docker-upload-uuid'), res };
}

function patch(loc: URL, chunk: Buffer, range?: { start: number; end: number }): Promise<Res> {
  const headers: Record<string, string> = { 'content-type': OCTET };
  if (range) headers['content-range'] = `${range.start}-${range.end}`;
  return http(loc, { method: 'PATCH', headers, body: chunk });
}

function put(loc: URL, digest: string | null, chunk?: Buffer, range?: { start: number; end: number }): Promise<Res> {
  const url = digest === null ? loc : withQuery(loc, { digest });
  const headers: Record<string, string> = {};
  if (chunk) headers['content-type'] = OCTET;
  if (range) headers['content-range'] = `${range.start}-${range.end}`;
  return http(url, { method: 'PUT', headers, ...(chunk ? { body: chunk } : {}) });
}

async function expectBlob(repo: string, b: Blob, digest = b.digest): Promise<void> {
  const res = await http(blobUrl(repo, digest));
  expectStatus(res, 200);
  assert.ok(res.body.equals(b.bytes), `stored bytes differ:\n${describeRes(res)}`);
}

async function expectNoBlob(repo: string, digest: string): Promise<void> {
  expectStatus(await http(blobUrl(repo, digest), { method: 'HEAD' }), 404);
}

function expectCreated(res: Res, digest: string): void {
  expectStatus(res, 201);
  assert.equal(header(res, 'docker-content-digest'), digest);
  header(res, 'location');
}

function chunks(bytes: Buffer, sizes: number[]): Array<{ chunk: Buffer; start: number; end: number }> {
  const out: Array<{ chunk: Buffer; start: number; end: number }> = [];
  let offset = 0;
  for (const size of sizes) {
    out.push({ chunk: bytes.subarray(offset, offset + size), start: offset, end: offset + size - 1 });
    offset += size;
  }
  assert.equal(offset, bytes.length, 'test bug: chunk sizes must cover the blob');
  return out;
}

function streamOf(parts: Buffer[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const part = parts[i++];
      if (part === undefined) controller.close();
      else {
        await new Promise((r) => setTimeout(r, 5));
        controller.enqueue(new Uint8Array(part));
      }
    },
  });
}

describe('starting an upload session', () => {
  test('POST → 202 with Location and Docker-Upload-UUID; the Location contains the session id', async () => {
    const repo = repoName('up-post');
    const s = await startUpload(repo);
    assert.ok(s.uuid.length > 0);
    assert.ok(header(s.res, 'location').includes(s.uuid), `Location should contain the session id:\n${describeRes(s.res)}`);
  });

  test('two sessions get distinct locations and ids', async () => {
    const repo = repoName('up-post-two');
    const a = await startUpload(repo);
    const b = await startUpload(repo);
    assert.notEqual(a.uuid, b.uuid);
    assert.notEqual(a.loc.href, b.loc.href);
  });

  test('GET on a fresh session → 204 with Location and Docker-Upload-UUID', async () => {
    const repo = repoName('up-post-status');
    const s = await startUpload(repo);
    const res = await http(s.loc);
    expectStatus(res, 204);
    header(res, 'location');
    assert.equal(header(res, 'docker-upload-uuid'), s.uuid);
  });
});

describe('monolithic uploads', () => {
  test('single POST ?digest= with the body → 201 with Location and Docker-Content-Digest; Location is pullable', async () => {
    const repo = repoName('up-single');
    const b = blob(randomBytes(5000));
    const res = await http(`${uploadsUrl(repo)}?digest=${b.digest}`, { method: 'POST', headers: { 'content-type': OCTET }, body: b.bytes });
    expectCreated(res, b.digest);
    const pulled = await http(location(res, base));
    expectStatus(pulled, 200);
    assert.ok(pulled.body.equals(b.bytes));
    await expectBlob(repo, b);
  });

  test('single POST of an empty blob → 201', async () => {
    const repo = repoName('up-single-empty');
    const b = blob(Buffer.alloc(0));
    const res = await http(`${uploadsUrl(repo)}?digest=${b.digest}`, { method: 'POST', headers: { 'content-type': OCTET }, body: b.bytes });
    expectCreated(res, b.digest);
    await expectBlob(repo, b);
  });

  test('single POST with a digest that does not match → 400 DIGEST_INVALID, nothing stored', async () => {
    const repo = repoName('up-single-mismatch');
    const b = blob();
    const claimed = blob().digest;
    const res = await http(`${uploadsUrl(repo)}?digest=${claimed}`, { method: 'POST', headers: { 'content-type': OCTET }, body: b.bytes });
    expectError(res, 400, 'DIGEST_INVALID');
    await expectNoBlob(repo, claimed);
    await expectNoBlob(repo, b.digest);
  });

  test('single POST with sha512 → 201; the blob is pullable by its sha512 digest', async () => {
    const repo = repoName('up-single-512');
    const bytes = randomBytes(4000);
    const digest = sha512(bytes);
    const res = await http(`${uploadsUrl(repo)}?digest=${digest}`, { method: 'POST', headers: { 'content-type': OCTET }, body: bytes });
    expectCreated(res, digest);
    const pulled = await http(blobUrl(repo, digest));
    expectStatus(pulled, 200);
    assert.ok(pulled.body.equals(bytes));
    assert.ok([digest, sha256(bytes)].includes(header(pulled, 'docker-content-digest')));
  });

  test('single POST with an unsupported algorithm (md5) → 400 DIGEST_INVALID', async () => {
    const repo = repoName('up-single-md5');
    const bytes = randomBytes(100);
    const res = await http(`${uploadsUrl(repo)}?digest=md5:${'a'.repeat(32)}`, { method: 'POST', headers: { 'content-type': OCTET }, body: bytes });
    expectError(res, 400, 'DIGEST_INVALID');
  });

  test('single POST with a malformed digest → 400 DIGEST_INVALID', async () => {
    const repo = repoName('up-single-bad');
    const res = await http(`${uploadsUrl(repo)}?digest=sha256:xyz`, { method: 'POST', headers: { 'content-type': OCTET }, body: randomBytes(10) });
    expectError(res, 400, 'DIGEST_INVALID');
  });

  test('POST then PUT <location>?digest= with the body → 201; the session is closed afterwards', async () => {
    const repo = repoName('up-postput');
    const b = blob(randomBytes(7000));
    const s = await startUpload(repo);
    const res = await put(s.loc, b.digest, b.bytes);
    expectCreated(res, b.digest);
    const pulled = await http(location(res, base));
    expectStatus(pulled, 200);
    assert.ok(pulled.body.equals(b.bytes));
    await expectBlob(repo, b);
    expectError(await http(s.loc), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('POST then PUT of a blob that already exists → 201 again', async () => {
    const repo = repoName('up-postput-dup');
    const b = blob();
    await pushBlob(base, repo, b);
    const s = await startUpload(repo);
    expectCreated(await put(s.loc, b.digest, b.bytes), b.digest);
    await expectBlob(repo, b);
  });

  test('PUT with a digest that does not match → 400 DIGEST_INVALID and the blob is not visible', async () => {
    const repo = repoName('up-put-mismatch');
    const b = blob();
    const claimed = blob().digest;
    const s = await startUpload(repo);
    expectError(await put(s.loc, claimed, b.bytes), 400, 'DIGEST_INVALID');
    await expectNoBlob(repo, claimed);
    await expectNoBlob(repo, b.digest);
  });

  test('PUT without ?digest= → 400 DIGEST_INVALID', async () => {
    const repo = repoName('up-put-nodigest');
    const b = blob();
    const s = await startUpload(repo);
    expectError(await put(s.loc, null, b.bytes), 400, 'DIGEST_INVALID');
    await expectNoBlob(repo, b.digest);
  });

  test('PUT with an unsupported algorithm (md5) → 400 DIGEST_INVALID', async () => {
    const repo = repoName('up-put-md5');
    const s = await startUpload(repo);
    expectError(await put(s.loc, `md5:${'0'.repeat(32)}`, randomBytes(64)), 400, 'DIGEST_INVALID');
  });

  test('PUT with a malformed digest → 400 DIGEST_INVALID', async () => {
    const repo = repoName('up-put-bad');
    const s = await startUpload(repo);
    expectError(await put(s.loc, 'sha256:1234', randomBytes(64)), 400, 'DIGEST_INVALID');
  });

  test('POST then PUT with sha512 → 201', async () => {
    const repo = repoName('up-postput-512');
    const bytes = randomBytes(3333);
    const digest = sha512(bytes);
    const s = await startUpload(repo);
    expectCreated(await put(s.loc, digest, bytes), digest);
    const pulled = await http(blobUrl(repo, digest));
    expectStatus(pulled, 200);
    assert.ok(pulled.body.equals(bytes));
  });
});

describe('chunked uploads', () => {
  test('PATCH chunks with Content-Range (always the first Location), then PUT with no body → 201', async () => {
    const repo = repoName('up-chunked');
    const b = blob(randomBytes(10_000));
    const s = await startUpload(repo);
    for (const { chunk, start, end } of chunks(b.bytes, [4000, 3000, 3000])) {
      const res = await patch(s.loc, chunk, { start, end });
      expectStatus(res, 202);
      header(res, 'location');
      assert.equal(header(res, 'range'), `0-${end}`);
    }
    const status = await http(s.loc);
    expectStatus(status, 204);
    assert.equal(header(status, 'range'), `0-${b.size - 1}`);
    header(status, 'location');
    assert.equal(header(status, 'docker-upload-uuid'), s.uuid);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });

  test('following the Location of each PATCH response works too', async () => {
    const repo = repoName('up-chunked-follow');
    const b = blob(randomBytes(6000));
    const s = await startUpload(repo);
    let loc = s.loc;
    for (const { chunk, start, end } of chunks(b.bytes, [1000, 2000, 3000])) {
      const res = await patch(loc, chunk, { start, end });
      expectStatus(res, 202);
      assert.equal(header(res, 'range'), `0-${end}`);
      loc = location(res, base);
    }
    expectCreated(await put(loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });

  test('the final chunk may be sent with the closing PUT', async () => {
    const repo = repoName('up-chunked-final-put');
    const b = blob(randomBytes(9000));
    const s = await startUpload(repo);
    const [first, second, last] = chunks(b.bytes, [3000, 3000, 3000]);
    for (const c of [first!, second!]) expectStatus(await patch(s.loc, c.chunk, { start: c.start, end: c.end }), 202);
    expectCreated(await put(s.loc, b.digest, last!.chunk, { start: last!.start, end: last!.end }), b.digest);
    await expectBlob(repo, b);
  });

  test('the final chunk may be sent with the closing PUT without a Content-Range', async () => {
    const repo = repoName('up-chunked-final-norange');
    const b = blob(randomBytes(5000));
    const [first, last] = chunks(b.bytes, [2000, 3000]);
    const s = await startUpload(repo);
    expectStatus(await patch(s.loc, first!.chunk, first!), 202);
    expectCreated(await put(s.loc, b.digest, last!.chunk), b.digest);
    await expectBlob(repo, b);
  });

  test('a single PATCH of the whole blob then an empty PUT → 201', async () => {
    const repo = repoName('up-chunked-one');
    const b = blob(randomBytes(2500));
    const s = await startUpload(repo);
    const res = await patch(s.loc, b.bytes, { start: 0, end: b.size - 1 });
    expectStatus(res, 202);
    assert.equal(header(res, 'range'), `0-${b.size - 1}`);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });

  test('an out-of-order chunk (a gap) → 416; the session still accepts the correct chunk and completes', async () => {
    const repo = repoName('up-chunked-gap');
    const b = blob(randomBytes(3000));
    const [c1, c2, c3] = chunks(b.bytes, [1000, 1000, 1000]);
    const s = await startUpload(repo);
    expectStatus(await patch(s.loc, c1!.chunk, c1!), 202);
    expectError(await patch(s.loc, c3!.chunk, c3!), 416);
    const status = await http(s.loc);
    expectStatus(status, 204);
    assert.equal(header(status, 'range'), `0-${c1!.end}`, 'the rejected chunk must not move the offset');
    const ok = await patch(s.loc, c2!.chunk, c2!);
    expectStatus(ok, 202);
    assert.equal(header(ok, 'range'), `0-${c2!.end}`);
    expectStatus(await patch(s.loc, c3!.chunk, c3!), 202);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });

  test('a repeated chunk → 416; the session continues with the next chunk and completes', async () => {
    const repo = repoName('up-chunked-repeat');
    const b = blob(randomBytes(2000));
    const [c1, c2] = chunks(b.bytes, [1000, 1000]);
    const s = await startUpload(repo);
    expectStatus(await patch(s.loc, c1!.chunk, c1!), 202);
    expectError(await patch(s.loc, c1!.chunk, c1!), 416);
    const ok = await patch(s.loc, c2!.chunk, c2!);
    expectStatus(ok, 202);
    assert.equal(header(ok, 'range'), `0-${b.size - 1}`);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });

  test('a first chunk that does not start at 0 → 416; then a chunk from 0 is accepted', async () => {
    const repo = repoName('up-chunked-notzero');
    const b = blob(randomBytes(1000));
    const s = await startUpload(repo);
    expectError(await patch(s.loc, b.bytes.subarray(10), { start: 10, end: 999 }), 416);
    expectStatus(await patch(s.loc, b.bytes, { start: 0, end: 999 }), 202);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });

  test('a Content-Range that disagrees with the body length is rejected (400 or 416)', async () => {
    const repo = repoName('up-chunked-len');
    const s = await startUpload(repo);
    const res = await patch(s.loc, randomBytes(10), { start: 0, end: 99 });
    expectError(res, [400, 416]);
  });

  test('chunked upload with a sha512 digest → 201', async () => {
    const repo = repoName('up-chunked-512');
    const bytes = randomBytes(5000);
    const digest = sha512(bytes);
    const s = await startUpload(repo);
    for (const { chunk, start, end } of chunks(bytes, [2500, 2500])) expectStatus(await patch(s.loc, chunk, { start, end }), 202);
    expectCreated(await put(s.loc, digest), digest);
    const pulled = await http(blobUrl(repo, digest));
    expectStatus(pulled, 200);
    assert.ok(pulled.body.equals(bytes));
  });

  test('chunked upload closed with a wrong digest → 400 DIGEST_INVALID and the blob is not visible', async () => {
    const repo = repoName('up-chunked-mismatch');
    const b = blob(randomBytes(2000));
    const claimed = blob().digest;
    const s = await startUpload(repo);
    for (const { chunk, start, end } of chunks(b.bytes, [1000, 1000])) expectStatus(await patch(s.loc, chunk, { start, end }), 202);
    expectError(await put(s.loc, claimed), 400, 'DIGEST_INVALID');
    await expectNoBlob(repo, claimed);
    await expectNoBlob(repo, b.digest);
  });

  test('PATCH without Content-Range (Content-Length only) appends: 202 with Range 0-<n-1>', async () => {
    const repo = repoName('up-patch-norange');
    const b = blob(randomBytes(4000));
    const [c1, c2] = chunks(b.bytes, [1500, 2500]);
    const s = await startUpload(repo);
    const r1 = await patch(s.loc, c1!.chunk);
    expectStatus(r1, 202);
    assert.equal(header(r1, 'range'), `0-${c1!.end}`);
    const r2 = await patch(s.loc, c2!.chunk);
    expectStatus(r2, 202);
    assert.equal(header(r2, 'range'), `0-${b.size - 1}`);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });
});

describe('streamed uploads', () => {
  test('a streamed PATCH (chunked transfer encoding, no Content-Range/Content-Length) → 202, then PUT → 201', async () => {
    const repo = repoName('up-stream');
    const parts = [randomBytes(70_000), randomBytes(1), randomBytes(33_333), randomBytes(100_000)];
    const b = blob(Buffer.concat(parts));
    const s = await startUpload(repo);
    const res = await http(s.loc, { method: 'PATCH', headers: { 'content-type': OCTET }, body: streamOf(parts), duplex: 'half' } as RequestInit);
    expectStatus(res, 202);
    header(res, 'location');
    assert.equal(header(res, 'range'), `0-${b.size - 1}`);
    const status = await http(s.loc);
    expectStatus(status, 204);
    assert.equal(header(status, 'range'), `0-${b.size - 1}`);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });

  test('a streamed PUT body completes an upload in one request', async () => {
    const repo = repoName('up-stream-put');
    const parts = [randomBytes(20_000), randomBytes(20_000)];
    const b = blob(Buffer.concat(parts));
    const s = await startUpload(repo);
    const res = await http(withQuery(s.loc, { digest: b.digest }), { method: 'PUT', headers: { 'content-type': OCTET }, body: streamOf(parts), duplex: 'half' } as RequestInit);
    expectCreated(res, b.digest);
    await expectBlob(repo, b);
  });

  test('two streamed PATCHes append in order', async () => {
    const repo = repoName('up-stream-two');
    const p1 = [randomBytes(10_000), randomBytes(5_000)];
    const p2 = [randomBytes(7_000)];
    const b = blob(Buffer.concat([...p1, ...p2]));
    const s = await startUpload(repo);
    const r1 = await http(s.loc, { method: 'PATCH', headers: { 'content-type': OCTET }, body: streamOf(p1), duplex: 'half' } as RequestInit);
    expectStatus(r1, 202);
    assert.equal(header(r1, 'range'), `0-${15_000 - 1}`);
    const r2 = await http(s.loc, { method: 'PATCH', headers: { 'content-type': OCTET }, body: streamOf(p2), duplex: 'half' } as RequestInit);
    expectStatus(r2, 202);
    assert.equal(header(r2, 'range'), `0-${b.size - 1}`);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });
});

describe('upload status and cancellation', () => {
  test('GET <location> → 204 with Range, Location and Docker-Upload-UUID', async () => {
    const repo = repoName('up-status');
    const s = await startUpload(repo);
    expectStatus(await patch(s.loc, randomBytes(777), { start: 0, end: 776 }), 202);
    const res = await http(s.loc);
    expectStatus(res, 204);
    assert.equal(res.body.length, 0);
    assert.equal(header(res, 'range'), '0-776');
    header(res, 'location');
    assert.equal(header(res, 'docker-upload-uuid'), s.uuid);
  });

  test('DELETE <location> → 204; the session is then unknown to GET, PATCH and PUT', async () => {
    const repo = repoName('up-cancel');
    const b = blob(randomBytes(100));
    const s = await startUpload(repo);
    expectStatus(await patch(s.loc, b.bytes, { start: 0, end: 99 }), 202);
    expectStatus(await http(s.loc, { method: 'DELETE' }), 204);
    expectError(await http(s.loc), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await patch(s.loc, randomBytes(10), { start: 100, end: 109 }), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await put(s.loc, b.digest), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectNoBlob(repo, b.digest);
  });

  test('DELETE of an already cancelled session → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const repo = repoName('up-cancel-twice');
    const s = await startUpload(repo);
    expectStatus(await http(s.loc, { method: 'DELETE' }), 204);
    expectError(await http(s.loc, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('an unknown upload id → 404 BLOB_UPLOAD_UNKNOWN for GET, PATCH, PUT and DELETE', async () => {
    const repo = repoName('up-unknown');
    await pushBlob(base, repo, blob());
    const loc = new URL(`${uploadsUrl(repo)}${randomUUID()}`);
    expectError(await http(loc), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await patch(loc, randomBytes(10), { start: 0, end: 9 }), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await put(loc, blob().digest, randomBytes(10)), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await http(loc, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  test('a completed session is gone: PATCH after the closing PUT → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const repo = repoName('up-after-close');
    const b = blob(randomBytes(100));
    const s = await startUpload(repo);
    expectCreated(await put(s.loc, b.digest, b.bytes), b.digest);
    expectError(await patch(s.loc, randomBytes(10), { start: 100, end: 109 }), 404, 'BLOB_UPLOAD_UNKNOWN');
  });
});

describe('sessions are isolated and safe under concurrency', () => {
  test('a session id used under another repository’s path → 404 BLOB_UPLOAD_UNKNOWN; nothing leaks', async () => {
    const a = repoName('up-iso-a');
    const other = repoName('up-iso-b');
    await pushBlob(base, other, blob());
    const b = blob(randomBytes(500));
    const s = await startUpload(a);
    expectStatus(await patch(s.loc, b.bytes, { start: 0, end: b.size - 1 }), 202);
    const foreign = new URL(`${uploadsUrl(other)}${s.uuid}`);
    expectError(await http(foreign), 404, 'BLOB_UPLOAD_UNKNOWN');
    expectError(await put(foreign, b.digest), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectNoBlob(other, b.digest);
    // The session itself is untouched and completes in its own repository.
    const status = await http(s.loc);
    expectStatus(status, 204);
    assert.equal(header(status, 'range'), `0-${b.size - 1}`);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(a, b);
    await expectNoBlob(other, b.digest);
  });

  test('a final chunk sent with PUT at the wrong offset → 416', async () => {
    const repo = repoName('up-put-badrange');
    const b = blob(randomBytes(2000));
    const [c1, c2] = chunks(b.bytes, [1000, 1000]);
    const s = await startUpload(repo);
    expectStatus(await patch(s.loc, c1!.chunk, c1!), 202);
    const res = await put(s.loc, b.digest, c2!.chunk, { start: 1500, end: 2499 });
    expectError(res, 416);
    await expectNoBlob(repo, b.digest);
  });

  test('two concurrent PATCHes of the same chunk: at most one is accepted and the blob is intact', async () => {
    const repo = repoName('up-race-patch');
    const b = blob(randomBytes(200_000));
    const [c1, c2] = chunks(b.bytes, [100_000, 100_000]);
    const s = await startUpload(repo);
    const results = await Promise.all([patch(s.loc, c1!.chunk, c1!), patch(s.loc, c1!.chunk, c1!)]);
    const accepted = results.filter((r) => r.status === 202).length;
    for (const r of results) expectStatus(r, [202, 416, 409, 400]);
    assert.ok(accepted <= 1, `both overlapping chunks were accepted:\n${results.map(describeRes).join('\n')}`);
    // Continue from wherever the session really is.
    const status = await http(s.loc);
    expectStatus(status, 204);
    const range = status.headers.get('range');
    const offset = accepted === 1 ? c1!.end + 1 : 0;
    if (accepted === 1) assert.equal(range, `0-${c1!.end}`);
    if (offset === 0) expectStatus(await patch(s.loc, c1!.chunk, c1!), 202);
    expectStatus(await patch(s.loc, c2!.chunk, c2!), 202);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });

  test('the same blob uploaded concurrently through several sessions → all 201, one intact blob', async () => {
    const repo = repoName('up-race-same');
    const b = blob(randomBytes(300_000));
    const sessions = await Promise.all([1, 2, 3, 4].map(() => startUpload(repo)));
    const results = await Promise.all(sessions.map((s) => put(s.loc, b.digest, b.bytes)));
    for (const r of results) expectCreated(r, b.digest);
    await expectBlob(repo, b);
  });

  test('a large streamed upload (8 MiB) is stored intact and range-readable', async () => {
    const repo = repoName('up-large');
    const parts = Array.from({ length: 128 }, () => randomBytes(64 * 1024));
    const b = blob(Buffer.concat(parts));
    const s = await startUpload(repo);
    const res = await http(s.loc, { method: 'PATCH', headers: { 'content-type': OCTET }, body: streamOf(parts), duplex: 'half' } as RequestInit);
    expectStatus(res, 202);
    assert.equal(header(res, 'range'), `0-${b.size - 1}`);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
    const tail = await http(blobUrl(repo, b.digest), { headers: { range: 'bytes=-1000' } });
    expectStatus(tail, 206);
    assert.ok(tail.body.equals(b.bytes.subarray(b.size - 1000)));
  });
});

describe('nothing is visible before the closing PUT', () => {
  test('bytes of an unfinished session are neither pullable nor usable by a manifest', async () => {
    const repo = repoName('up-unfinished');
    const img = image();
    for (const b of img.layers) await pushBlob(base, repo, b);
    const s = await startUpload(repo);
    expectStatus(await patch(s.loc, img.config.bytes, { start: 0, end: img.config.size - 1 }), 202);
    await expectNoBlob(repo, img.config.digest);
    expectError(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 400, 'MANIFEST_BLOB_UNKNOWN');
    expectCreated(await put(s.loc, img.config.digest), img.config.digest);
    expectStatus(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 201);
  });

  test('a PATCH aborted mid-body leaves a consistent session that can be resumed', async () => {
    const repo = repoName('up-abort');
    const b = blob(randomBytes(3000));
    const s = await startUpload(repo);
    expectStatus(await patch(s.loc, b.bytes.subarray(0, 1000), { start: 0, end: 999 }), 202);
    // Send a 1000-byte chunk but stop after 500 bytes and drop the connection.
    await new Promise<void>((resolve) => {
      const req = httpRequest({
        host: s.loc.hostname,
        port: s.loc.port,
        method: 'PATCH',
        path: `${s.loc.pathname}${s.loc.search}`,
        headers: { 'content-type': OCTET, 'content-range': '1000-1999', 'content-length': '1000' },
      });
      req.on('error', () => resolve());
      req.on('response', (r) => {
        r.resume();
        resolve();
      });
      req.write(b.bytes.subarray(1000, 1500), () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 100);
      });
    });
    await new Promise((r) => setTimeout(r, 500));
    const status = await http(s.loc);
    expectStatus(status, 204);
    const m = /^0-(\d+)$/.exec(header(status, 'range'));
    assert.ok(m, `Range must be 0-<end>:\n${describeRes(status)}`);
    const offset = Number(m[1]) + 1;
    assert.ok(offset >= 1000 && offset <= 1500, `offset ${offset} is outside what was received`);
    const rest = await patch(s.loc, b.bytes.subarray(offset), { start: offset, end: b.size - 1 });
    expectStatus(rest, 202);
    assert.equal(header(rest, 'range'), `0-${b.size - 1}`);
    expectCreated(await put(s.loc, b.digest), b.digest);
    await expectBlob(repo, b);
  });
});
