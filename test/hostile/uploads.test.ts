/**
 * Hostile uploads: abusive Content-Range values, missing or lying Content-Length (a raw socket
 * that sends less than it declared), and blobs beyond --max-blob-size (413; the bytes are not
 * left behind: the session offset stays where it was and no blob is visible).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { blob, sha256 } from '../helpers/oci.js';
import { assertUnharmed, expectCode, rawExchange, send, snapshot, type Snapshot } from './util.js';

const KiB = 1024;
const LIMIT = 64 * KiB;

describe('hostile uploads', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  let base: Snapshot;
  const REPO = 'hostile/up';

  before(async () => {
    registry = await startRegistry({ args: ['--max-blob-size', '64k'] });
    const seed = blob();
    assert.equal((await send(registry.url, 'POST', `/v2/${REPO}/blobs/uploads/?digest=${seed.digest}`, { 'content-type': 'application/octet-stream' }, seed.bytes)).status, 201);
    base = await snapshot(registry.url);
  });
  after(async () => {
    await registry?.stop();
  });

  async function session(): Promise<string> {
    const r = await send(registry.url, 'POST', `/v2/${REPO}/blobs/uploads/`);
    assert.equal(r.status, 202, r.text);
    return String(r.headers.location);
  }
  const withDigest = (location: string, digest: string) => `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`;
  /** The session's offset, from the `Range: 0-<last>` of its status (0 for `0-0` of an empty session). */
  async function offset(location: string, expectedEmpty = false): Promise<number> {
    const r = await send(registry.url, 'GET', location);
    assert.equal(r.status, 204, `upload status: ${r.status} ${r.text}`);
    const end = Number(/^0-(\d+)$/.exec(String(r.headers.range))?.[1]);
    return expectedEmpty || end === 0 ? 0 : end + 1;
  }
  const patch = (location: string, bytes: Buffer, headers: Record<string, string> = {}) =>
    send(registry.url, 'PATCH', location, { 'content-type': 'application/octet-stream', ...headers }, bytes);
  /**
   * A PATCH written in one piece (headers and body in one TCP segment): the server refuses it
   * before reading the body and closes the connection, and a body arriving after that close
   * would make the kernel reset the connection before the client read the answer.
   */
  async function patchOnce(location: string, bytes: Buffer, headers: Record<string, string>) {
    const lines = Object.entries({ host: 'x', 'content-type': 'application/octet-stream', 'content-length': String(bytes.length), ...headers }).map(([k, v]) => `${k}: ${v}`);
    const r = await rawExchange(registry.url, [Buffer.concat([Buffer.from(`PATCH ${location} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`), bytes])]);
    return { status: r.status, text: r.body, json: r.body ? JSON.parse(r.body) : null };
  }

  it('abusive Content-Range values are 416 BLOB_UPLOAD_INVALID and leave the session where it was', async () => {
    const data = randomBytes(300);
    const location = await session();
    assert.equal((await patch(location, data.subarray(0, 100), { 'content-range': '0-99' })).status, 202);
    const chunk = data.subarray(100, 200);
    const ranges = [
      '-5-94', '100--5', '-100', '100-', '0-99', '50-149', '200-299', '101-200', '100-50', '100-98',
      '99999999999999999999-100000000000000000099', '100-99999999999999999999', '1e2-199', '0x64-199', 'bytes=abc', ' ', '100-199-299',
    ];
    for (const range of ranges) {
      const r = await patchOnce(location, chunk, { 'content-range': range });
      expectCode(r, 416, 'BLOB_UPLOAD_INVALID', `Content-Range ${JSON.stringify(range)}`);
      assert.equal(await offset(location), 100, `offset after Content-Range ${range}`);
    }
    expectCode(await patchOnce(location, chunk.subarray(0, 50), { 'content-range': '100-199' }), 416, 'BLOB_UPLOAD_INVALID', 'Content-Range and Content-Length disagree');
    // The session is still good: the real next chunk and the commit work.
    assert.equal((await patch(location, chunk, { 'content-range': '100-199' })).status, 202);
    assert.equal((await send(registry.url, 'PUT', withDigest(location, sha256(data)), { 'content-type': 'application/octet-stream', 'content-range': '200-299' }, data.subarray(200))).status, 201);
    const got = await send(registry.url, 'GET', `/v2/${REPO}/blobs/${sha256(data)}`);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(data), 'the blob is exactly the three good chunks');
    assert.equal((await send(registry.url, 'DELETE', `/v2/${REPO}/blobs/${sha256(data)}`)).status, 202);
    base = await snapshot(registry.url);
    await assertUnharmed(registry.url, base, 'Content-Range abuse');
  });

  it('a body shorter than its Content-Length (raw socket, then EOF) stores nothing', async () => {
    const location = await session();
    assert.equal((await patch(location, randomBytes(100))).status, 202);
    const head = (method: string, path: string, length: number) =>
      `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`;
    const short = randomBytes(10);
    // PATCH: declared 1000, sent 10, then the client half-closes.
    const cut = await rawExchange(registry.url, [head('PATCH', location, 1000), short], { end: true }).catch((err: Error) => ({ status: 0, raw: err.message }));
    assert.ok(cut.status === 0 || cut.status === 400, `short PATCH answered ${cut.status}: ${cut.raw.slice(0, 200)}`);
    assert.equal(await offset(location), 100, 'the partial chunk was not appended');
    // Monolithic POST and the closing PUT of a session: declared more than sent.
    const b = blob(randomBytes(2000));
    await rawExchange(registry.url, [head('POST', `/v2/${REPO}/blobs/uploads/?digest=${b.digest}`, b.size), b.bytes.subarray(0, 1000)], { end: true }).catch(() => null);
    await rawExchange(registry.url, [head('PUT', withDigest(location, b.digest), b.size), b.bytes.subarray(0, 1000)], { end: true }).catch(() => null);
    const manifest = '{"schemaVersion":2}';
    await rawExchange(registry.url, [head('PUT', `/v2/${REPO}/manifests/v1`, 500), manifest], { end: true }).catch(() => null);
    assert.equal((await send(registry.url, 'HEAD', `/v2/${REPO}/blobs/${b.digest}`)).status, 404);
    assert.equal((await send(registry.url, 'GET', `/v2/${REPO}/manifests/v1`)).status, 404);
    const status = await send(registry.url, 'GET', location);
    assert.ok(status.status === 204 || status.status === 404, `session after a cut PUT: ${status.status}`);
    if (status.status === 204) assert.equal(await offset(location), 100);
    await send(registry.url, 'DELETE', location);
    await assertUnharmed(registry.url, base, 'short bodies');
  });

  it('missing, malformed and conflicting lengths are refused', async () => {
    const location = await session();
    // No Content-Length and no chunked encoding: the body is empty, the rest is garbage for the parser.
    // (node's parser may answer the garbage with its own bare 400 before the handler answers the PUT.)
    const noLength = await rawExchange(registry.url, [`PUT /v2/${REPO}/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\r\n{"schemaVersion":2}`]);
    assert.equal(noLength.status, 400, noLength.raw.slice(0, 300));
    if (noLength.body) assert.equal(JSON.parse(noLength.body).errors[0].code, 'MANIFEST_INVALID');
    for (const [what, headers] of [
      ['non-numeric', 'Content-Length: abc\r\n'],
      ['negative', 'Content-Length: -1\r\n'],
      ['two different lengths', 'Content-Length: 10\r\nContent-Length: 20\r\n'],
      ['length and chunked (smuggling)', 'Content-Length: 10\r\nTransfer-Encoding: chunked\r\n'],
      ['bad chunk size', 'Transfer-Encoding: chunked\r\n'],
      ['enormous', 'Content-Length: 99999999999999999999999\r\n'],
    ] as const) {
      const tail = what === 'bad chunk size' ? 'zz\r\nabc\r\n0\r\n\r\n' : '0123456789';
      const r = await rawExchange(registry.url, [`PATCH ${location} HTTP/1.1\r\nHost: x\r\n${headers}\r\n${tail}`], { end: true });
      assert.ok(r.status === 400 || r.status === 413, `${what}: ${r.status} ${r.raw.slice(0, 200)}`);
      assert.equal(await offset(location, true), 0, `${what}: nothing appended`);
    }
    await send(registry.url, 'DELETE', location);
    await assertUnharmed(registry.url, base, 'bad lengths');
  });

  it('blobs beyond --max-blob-size are 413 in every upload style; nothing stays behind', async () => {
    const big = blob(randomBytes(LIMIT + 1));
    const exact = blob(randomBytes(LIMIT));
    // Monolithic POST.
    expectCode(await send(registry.url, 'POST', `/v2/${REPO}/blobs/uploads/?digest=${big.digest}`, { 'content-type': 'application/octet-stream' }, big.bytes), 413, 'SIZE_INVALID', 'monolithic');
    // Declared 10 GiB on a raw socket: refused once the limit is crossed, without waiting for the rest.
    const declared = await rawExchange(registry.url, [`POST /v2/${REPO}/blobs/uploads/?digest=${big.digest} HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n\r\n`, big.bytes]);
    assert.equal(declared.status, 413, declared.raw.slice(0, 300));
    // A session: a chunk that crosses the limit (with a length, and streamed without one).
    const location = await session();
    assert.equal((await patch(location, big.bytes.subarray(0, 40 * KiB))).status, 202);
    expectCode(await patch(location, big.bytes.subarray(40 * KiB)), 413, 'SIZE_INVALID', 'PATCH with Content-Length');
    assert.equal(await offset(location), 40 * KiB, 'offset after the refused chunk');
    const chunked = [`PATCH ${location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`];
    const parts: (string | Buffer)[] = [...chunked];
    for (let i = 0; i < 8; i++) parts.push(`${(8 * KiB).toString(16)}\r\n`, randomBytes(8 * KiB), '\r\n');
    parts.push('0\r\n\r\n');
    const streamed = await rawExchange(registry.url, parts);
    assert.equal(streamed.status, 413, streamed.raw.slice(0, 300));
    assert.equal(await offset(location), 40 * KiB, 'offset after the refused streamed chunk');
    // The closing PUT carrying the rest.
    expectCode(await send(registry.url, 'PUT', withDigest(location, big.digest), { 'content-type': 'application/octet-stream' }, big.bytes.subarray(40 * KiB)), 413, 'SIZE_INVALID', 'closing PUT');
    for (const d of [big.digest]) assert.equal((await send(registry.url, 'HEAD', `/v2/${REPO}/blobs/${d}`)).status, 404, 'no blob is visible');
    await send(registry.url, 'DELETE', location);
    await assertUnharmed(registry.url, base, 'oversized blobs');
    // The control: exactly the limit is accepted.
    assert.equal((await send(registry.url, 'POST', `/v2/${REPO}/blobs/uploads/?digest=${exact.digest}`, { 'content-type': 'application/octet-stream' }, exact.bytes)).status, 201);
  });
});
