/**
 * Hostile names and digests: traversal-like and encoded names (`..`, `%2e%2e`, `%2F`, `%00`),
 * 300-character names, raw bytes no client would send, and malformed digests or algorithms.
 * Each gets its 4xx and error code, the server stays up, and nothing is written.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { blob, image, pushImage } from '../helpers/oci.js';
import { assertUnharmed, expectCode, rawExchange, send, snapshot, type Snapshot } from './util.js';

describe('hostile names and digests', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  let before_: Snapshot;
  const img = image();
  before(async () => {
    registry = await startRegistry();
    assert.equal((await pushImage(registry.url, 'good/repo', img, 'v1')).status, 201);
    before_ = await snapshot(registry.url);
  });
  after(async () => {
    await registry?.stop();
  });

  const long = 'a'.repeat(300);
  const deep = `${'ab/'.repeat(90)}x`;
  const NAMES: [string, string][] = [
    ['..', 'dot-dot segment'],
    ['../etc', 'leading dot-dot'],
    ['good/../repo', 'dot-dot inside'],
    ['good/repo/..', 'trailing dot-dot'],
    ['.', 'dot'],
    ['%2e%2e', 'encoded dot-dot'],
    ['good/%2e%2e/repo', 'encoded dot-dot inside'],
    ['%2E%2E%2Fetc', 'upper-case encoded traversal'],
    ['good%2Frepo', 'encoded slash'],
    ['good%2frepo', 'encoded slash, lower case'],
    ['good%252Frepo', 'double-encoded slash'],
    ['good%00', 'encoded NUL'],
    ['good%00/repo', 'encoded NUL inside'],
    [long, '300-character name'],
    [deep, '271-character name of 91 segments'],
    ['Good/Repo', 'upper case'],
    ['good//repo', 'empty segment'],
    ['/good/repo', 'leading slash'],
    ['good/repo/', 'trailing slash'],
    ['-good', 'leading dash'],
    ['good.', 'trailing dot'],
    ['good..repo', 'double dot'],
    ['g%C3%B6od', 'non-ASCII'],
    ['good%20repo', 'space'],
    ['good\\repo', 'backslash'],
    ['good;repo', 'semicolon'],
  ];

  it('every endpoint: a lookup of a malformed name is 404 NAME_UNKNOWN, a write 400 NAME_INVALID', async () => {
    const body = img.manifest;
    for (const [name, what] of NAMES) {
      const requests: [string, string, Record<string, string>, Buffer?][] = [
        ['GET', `/v2/${name}/manifests/v1`, {}],
        ['HEAD', `/v2/${name}/blobs/${img.config.digest}`, {}],
        ['PUT', `/v2/${name}/manifests/v1`, { 'content-type': img.mediaType }, body],
        ['POST', `/v2/${name}/blobs/uploads/?digest=${img.config.digest}`, { 'content-type': 'application/octet-stream' }, img.config.bytes],
        ['POST', `/v2/${name}/blobs/uploads/?mount=${img.config.digest}&from=good/repo`, {}],
        ['DELETE', `/v2/${name}/manifests/${img.digest}`, {}],
        ['GET', `/v2/${name}/tags/list`, {}],
      ];
      for (const [method, path, headers, payload] of requests) {
        const r = await send(registry.url, method, path, headers, payload);
        const label = `${what}: ${method} ${path.slice(0, 80)}`;
        const lookup = method === 'GET' || method === 'HEAD' || method === 'DELETE';
        // A path no route matches is 404 NAME_UNKNOWN for every method.
        assert.ok(lookup ? r.status === 404 : r.status === 400 || r.status === 404, `${label} -> ${r.status} ${r.text.slice(0, 200)}`);
        if (method !== 'HEAD') {
          const code = r.json?.errors?.[0]?.code;
          assert.equal(code, r.status === 400 ? 'NAME_INVALID' : 'NAME_UNKNOWN', `${label}: ${r.status} ${code}`);
        }
      }
    }
    await assertUnharmed(registry.url, before_, 'malformed names');
  });

  it('names that are exactly the spec grammar limits: 255 characters pass, 256 fail', async () => {
    const n255 = `${'a'.repeat(127)}/${'b'.repeat(127)}`;
    assert.equal(n255.length, 255);
    expectCode(await send(registry.url, 'GET', `/v2/${n255}/tags/list`), 404, 'NAME_UNKNOWN', '255 characters');
    expectCode(await send(registry.url, 'GET', `/v2/${n255}b/tags/list`), 404, 'NAME_UNKNOWN', '256 characters, a lookup');
    expectCode(await send(registry.url, 'POST', `/v2/${n255}b/blobs/uploads/`), 400, 'NAME_INVALID', '256 characters, a write');
  });

  it('a mount `from` a traversal-like or foreign name falls back to an upload session', async () => {
    // Query parameters are percent-decoded (`from=good%2Frepo` is the name good/repo); the
    // decoded value must still be a valid name.
    for (const from of ['..', 'good/../repo', '%2e%2e', 'good%2F..%2Frepo', 'good%00', long]) {
      const r = await send(registry.url, 'POST', `/v2/good/repo/blobs/uploads/?mount=${img.config.digest}&from=${from}`);
      assert.equal(r.status, 202, `from=${from}: ${r.text}`);
      const id = String(r.headers['docker-upload-uuid']);
      assert.equal((await send(registry.url, 'DELETE', `/v2/good/repo/blobs/uploads/${id}`)).status, 204);
    }
    await assertUnharmed(registry.url, before_, 'mount from bad names');
  });

  it('bytes no client would send in a request line are refused by the parser with 400', async () => {
    for (const line of [
      'GET /v2/good\0repo/tags/list HTTP/1.1',
      'GET /v2/good repo/tags/list HTTP/1.1',
      'GET /v2/good\trepo/tags/list HTTP/1.1',
      'GET /v2/\u00ff/tags/list HTTP/1.1',
      `GET /v2/${'a'.repeat(100_000)}/tags/list HTTP/1.1`,
      'G\0ET /v2/ HTTP/1.1',
      'GET /v2/ HTTP/9.9',
    ]) {
      const r = await rawExchange(registry.url, [Buffer.from(`${line}\r\nHost: x\r\nConnection: close\r\n\r\n`, 'latin1')]);
      assert.ok([400, 414, 431, 505].includes(r.status), `${JSON.stringify(line.slice(0, 60))} -> ${r.status}`);
    }
    await assertUnharmed(registry.url, before_, 'raw request lines');
  });

  it('malformed digests and algorithms are 400 DIGEST_INVALID wherever a digest goes (a blob path part without a colon names no blob)', async () => {
    const hex = 'a'.repeat(64);
    const DIGESTS = [
      'sha256:abc',
      `sha256:${'g'.repeat(64)}`,
      `sha256:${hex.toUpperCase()}`,
      `sha256:${hex}0`,
      `sha512:${hex}`,
      'md5:d41d8cd98f00b204e9800998ecf8427e',
      `blake3:${hex}`,
      `SHA256:${hex}`,
      `sha256::${hex}`,
      `:${hex}`,
      'sha256',
      `sha256:${hex}%00`,
      `sha256:${'0'.repeat(10_000)}`,
    ];
    // In the path a digest is taken as sent: an encoded colon is no colon, so the path part is
    // no digest at all and names no blob.
    expectCode(await send(registry.url, 'GET', `/v2/good/repo/blobs/sha256%3A${hex}`), 404, 'BLOB_UNKNOWN', 'encoded colon in the path');
    for (const d of DIGESTS) {
      const label = d.slice(0, 40);
      // What means to be a digest (`algorithm:…`) and is malformed is invalid; the rest names no blob.
      const [status, code] = d.includes(':') ? [400, 'DIGEST_INVALID'] : [404, 'BLOB_UNKNOWN'];
      expectCode(await send(registry.url, 'GET', `/v2/good/repo/blobs/${d}`), status, code, `GET blob ${label}`);
      expectCode(await send(registry.url, 'DELETE', `/v2/good/repo/blobs/${d}`), status, code, `DELETE blob ${label}`);
      const b = blob();
      expectCode(
        await send(registry.url, 'POST', `/v2/good/repo/blobs/uploads/?digest=${d}`, { 'content-type': 'application/octet-stream' }, b.bytes),
        400,
        'DIGEST_INVALID',
        `monolithic upload ?digest=${label}`,
      );
      expectCode(await send(registry.url, 'POST', `/v2/good/repo/blobs/uploads/?mount=${d}&from=good/repo`), 400, 'DIGEST_INVALID', `mount=${label}`);
      expectCode(await send(registry.url, 'GET', `/v2/good/repo/referrers/${d}`), 400, 'DIGEST_INVALID', `referrers ${label}`);
    }
    // A digest reference to a manifest: the tag grammar excludes ':', so these are digest errors too.
    expectCode(await send(registry.url, 'GET', `/v2/good/repo/manifests/md5:${'0'.repeat(32)}`), 400, 'DIGEST_INVALID', 'manifest by md5');
    expectCode(await send(registry.url, 'GET', `/v2/good/repo/manifests/${'t'.repeat(129)}`), 404, 'MANIFEST_UNKNOWN', '129-character tag: no manifest');
    await assertUnharmed(registry.url, before_, 'malformed digests');
  });

  it('a completed upload whose bytes do not match its digest is 400 DIGEST_INVALID and leaves nothing', async () => {
    const b = blob();
    const other = blob();
    expectCode(
      await send(registry.url, 'POST', `/v2/good/repo/blobs/uploads/?digest=${other.digest}`, { 'content-type': 'application/octet-stream' }, b.bytes),
      400,
      'DIGEST_INVALID',
      'monolithic mismatch',
    );
    const start = await send(registry.url, 'POST', '/v2/good/repo/blobs/uploads/');
    assert.equal(start.status, 202);
    const location = String(start.headers.location);
    const sep = location.includes('?') ? '&' : '?';
    expectCode(await send(registry.url, 'PUT', `${location}${sep}digest=${other.digest}`, { 'content-type': 'application/octet-stream' }, b.bytes), 400, 'DIGEST_INVALID', 'session mismatch');
    for (const d of [b.digest, other.digest]) assert.equal((await send(registry.url, 'HEAD', `/v2/good/repo/blobs/${d}`)).status, 404);
    assert.equal((await send(registry.url, 'DELETE', location)).status < 500, true);
    await assertUnharmed(registry.url, before_, 'digest mismatch');
  });
});
