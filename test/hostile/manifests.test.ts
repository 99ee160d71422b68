/**
 * Hostile manifests: invalid JSON and encodings, 100k-deep nesting, huge bodies (declared and
 * streamed), lying media types, manifests pointing at what is not there, and digest references
 * that do not match. Each is refused with its code; nothing is stored; the server stays up.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, image, pushBlob, sha256 } from '../helpers/oci.js';
import { assertUnharmed, expectCode, rawExchange, send, snapshot, type Snapshot } from './util.js';

const MiB = 1024 * 1024;

describe('hostile manifests', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  let base: Snapshot;
  const img = image();
  const body = JSON.parse(img.manifest.toString());
  const put = (bytes: Buffer | string, contentType: string | undefined = OCI_MANIFEST, reference = 'v1') =>
    send(registry.url, 'PUT', `/v2/hostile/manifests/${reference}`, contentType === undefined ? {} : { 'content-type': contentType }, bytes);

  before(async () => {
    registry = await startRegistry();
    for (const b of [img.config, ...img.layers]) await pushBlob(registry.url, 'hostile', b);
    base = await snapshot(registry.url);
    assert.deepEqual(base.repositories, ['hostile']);
  });
  after(async () => {
    await registry?.stop();
  });

  it('invalid JSON, wrong shapes and bad encodings are 400 MANIFEST_INVALID', async () => {
    const cases: [string, Buffer | string][] = [
      ['empty', ''],
      ['truncated', img.manifest.subarray(0, img.manifest.length - 1)],
      ['null', 'null'],
      ['array', '[]'],
      ['string', '"manifest"'],
      ['number', '2'],
      ['no config', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] })],
      ['schemaVersion 1', JSON.stringify({ ...body, schemaVersion: 1 })],
      ['schemaVersion as string', JSON.stringify({ ...body, schemaVersion: '2' })],
      ['layers not an array', JSON.stringify({ ...body, layers: {} })],
      ['size negative', JSON.stringify({ ...body, config: { ...body.config, size: -1 } })],
      ['size huge', JSON.stringify({ ...body, config: { ...body.config, size: 1e300 } })],
      ['digest garbage', JSON.stringify({ ...body, config: { ...body.config, digest: 'sha256:../../etc/passwd' } })],
      ['annotations not strings', JSON.stringify({ ...body, annotations: { a: 1 } })],
      ['BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), img.manifest])],
      ['invalid UTF-8', Buffer.concat([img.manifest.subarray(0, 10), Buffer.from([0xff, 0xfe]), img.manifest.subarray(10)])],
      ['UTF-16', Buffer.from(img.manifest.toString(), 'utf16le')],
      ['trailing garbage', Buffer.concat([img.manifest, Buffer.from('}')])],
      ['duplicate keys hiding a layer', `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${JSON.stringify(body.config)},"layers":[],"layers":"x"}`],
    ];
    for (const [what, bytes] of cases) expectCode(await put(bytes), 400, 'MANIFEST_INVALID', what);
    await assertUnharmed(registry.url, base, 'invalid manifests');
  });

  it('100,000-deep nesting is refused without exhausting the stack', async () => {
    const depth = 100_000;
    const arrays = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const objects = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    expectCode(await put(arrays), 400, 'MANIFEST_INVALID', 'nested arrays');
    expectCode(await put(objects), 400, 'MANIFEST_INVALID', 'nested objects');
    const inField = JSON.stringify({ ...body, annotations: { deep: 'x' } }).replace('"x"', arrays);
    expectCode(await put(inField), 400, 'MANIFEST_INVALID', 'nesting inside annotations');
    const inConfig = JSON.stringify({ ...body, config: { ...body.config, platform: 'x' } }).replace('"x"', objects);
    const r = await put(inConfig);
    assert.ok(r.status === 400 || r.status === 201, `nesting in an unknown descriptor field: ${r.status} ${r.text.slice(0, 200)}`);
    if (r.status === 201) {
      // Accepted as an opaque extension field: it must then come back byte for byte.
      const got = await send(registry.url, 'GET', '/v2/hostile/manifests/v1', { accept: OCI_MANIFEST });
      assert.equal(got.text, inConfig);
      assert.equal((await send(registry.url, 'DELETE', `/v2/hostile/manifests/${sha256(inConfig)}`)).status, 202);
      base = await snapshot(registry.url);
    }
    await assertUnharmed(registry.url, base, 'deep nesting');
  });

  it('bodies over 4 MiB are 413, whether declared, streamed or chunked', async () => {
    const huge = Buffer.alloc(4 * MiB + 1, 0x20);
    huge.write(img.manifest.toString());
    expectCode(await put(huge), 413, 'SIZE_INVALID', 'Content-Length 4 MiB + 1');
    // Declared huge, nothing sent: refused before reading.
    const declared = await rawExchange(registry.url, [`PUT /v2/hostile/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: ${OCI_MANIFEST}\r\nContent-Length: 99999999999\r\n\r\n`]);
    assert.equal(declared.status, 413, declared.raw.slice(0, 300));
    assert.equal(JSON.parse(declared.body).errors[0].code, 'SIZE_INVALID');
    // Chunked, no length: cut at the limit.
    const chunk = Buffer.alloc(MiB, 0x20);
    const chunks = [`PUT /v2/hostile/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: ${OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\n\r\n`];
    const parts: (string | Buffer)[] = [...chunks];
    for (let i = 0; i < 5; i++) parts.push(`${chunk.length.toString(16)}\r\n`, chunk, '\r\n');
    parts.push('0\r\n\r\n');
    const streamed = await rawExchange(registry.url, parts);
    assert.equal(streamed.status, 413, streamed.raw.slice(0, 300));
    await assertUnharmed(registry.url, base, 'huge manifests');
  });

  it('lying media types are 400 MANIFEST_INVALID', async () => {
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    const noType = JSON.stringify({ ...body, mediaType: undefined });
    const cases: [string, string, string][] = [
      ['image manifest sent as an OCI index', img.manifest.toString(), OCI_INDEX],
      ['image manifest sent as a Docker list', img.manifest.toString(), DOCKER_LIST],
      ['index sent as an image manifest', index, OCI_MANIFEST],
      ['body says OCI, header says Docker', img.manifest.toString(), DOCKER_MANIFEST],
      ['untyped image body sent as an index', noType, OCI_INDEX],
      ['unknown media type in the body', JSON.stringify({ ...body, mediaType: 'application/x-evil' }), 'application/octet-stream'],
      ['schema1 signed manifest', JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'v1', fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
    ];
    for (const [what, bytes, type] of cases) expectCode(await put(bytes, type), 400, 'MANIFEST_INVALID', what);
    await assertUnharmed(registry.url, base, 'lying media types');
  });

  it('references to what the repository lacks, and digests that do not match, are refused', async () => {
    const missing = image();
    expectCode(await put(missing.manifest), 400, 'MANIFEST_BLOB_UNKNOWN', 'unknown blobs');
    const other = image();
    expectCode(await put(img.manifest, OCI_MANIFEST, other.digest), 400, 'DIGEST_INVALID', 'PUT by a digest of other bytes');
    expectCode(await put(img.manifest, OCI_MANIFEST, `sha512:${'0'.repeat(128)}`), 400, 'DIGEST_INVALID', 'PUT by a sha512 of other bytes');
    const child = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: other.digest, size: other.manifest.length }] });
    expectCode(await put(child, OCI_INDEX), 400, 'MANIFEST_BLOB_UNKNOWN', 'index of an unknown manifest');
    expectCode(await put(img.manifest, OCI_MANIFEST, 'bad:tag'), 400, 'DIGEST_INVALID', 'tag with a colon');
    expectCode(await put(img.manifest, OCI_MANIFEST, '.hidden'), 400, 'TAG_INVALID', 'tag starting with a dot');
    await assertUnharmed(registry.url, base, 'dangling references');
    // The control: the same manifest, told the truth, is stored.
    assert.equal((await put(img.manifest)).status, 201);
  });
});
