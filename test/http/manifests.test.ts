/** Conformance: pushing, pulling, checking and deleting manifests of every supported type. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  blob,
  image,
  index,
  pushBlob,
  sha256,
  sha512,
  OCI_MANIFEST,
  OCI_INDEX,
  DOCKER_MANIFEST,
  DOCKER_LIST,
  OCI_CONFIG,
  type Image,
} from '../helpers/oci.js';
import { http, pushImageOk, putManifest, expectStatus, expectError, expectReason, expectNoBody, header, location, json, reformat, repoName, describeRes, type Res, useRegistry } from './util.js';

let base: string;
useRegistry({}, (url) => (base = url));

const manifestUrl = (repo: string, ref: string) => `${base}/v2/${repo}/manifests/${ref}`;

interface Doc {
  manifest: Buffer;
  digest: string;
  mediaType: string;
}

/** An image whose manifest bytes are non-canonical JSON, with its blobs pushed. */
async function prettyImage(repo: string, mediaType = OCI_MANIFEST): Promise<Image> {
  const img = reformat(image({ mediaType }));
  for (const b of [img.config, ...img.layers]) await pushBlob(base, repo, b);
  return img;
}

/** A non-canonical index (or Docker list) over two children pushed by digest. */
async function prettyIndex(repo: string, mediaType = OCI_INDEX): Promise<Doc> {
  const childType = mediaType === DOCKER_LIST ? DOCKER_MANIFEST : OCI_MANIFEST;
  const children: Doc[] = [];
  for (let i = 0; i < 2; i++) {
    const child = await prettyImage(repo, childType);
    expectStatus(await putManifest(base, repo, child.digest, child.manifest, child.mediaType), 201);
    children.push(child);
  }
  return reformat(index(children.map((c) => ({ digest: c.digest, size: c.manifest.length, mediaType: c.mediaType })), mediaType));
}

function expectManifest(res: Res, doc: Doc): void {
  expectStatus(res, 200);
  assert.ok(res.body.equals(doc.manifest), `manifest bytes must be returned verbatim:\n${describeRes(res)}`);
  assert.equal(header(res, 'content-type'), doc.mediaType);
  assert.equal(header(res, 'docker-content-digest'), doc.digest);
  assert.equal(header(res, 'content-length'), String(doc.manifest.length));
}

function expectManifestHead(res: Res, doc: Doc): void {
  expectStatus(res, 200);
  expectNoBody(res);
  assert.equal(header(res, 'content-type'), doc.mediaType);
  assert.equal(header(res, 'docker-content-digest'), doc.digest);
  assert.equal(header(res, 'content-length'), String(doc.manifest.length));
}

function expectPutCreated(res: Res, digest: string): void {
  expectStatus(res, 201);
  header(res, 'location');
  assert.equal(header(res, 'docker-content-digest'), digest);
}

async function tagsOf(repo: string): Promise<string[]> {
  const res = await http(`${base}/v2/${repo}/tags/list`);
  expectStatus(res, 200);
  return json<{ tags: string[] | null }>(res).tags ?? [];
}

const KINDS: Array<[string, (repo: string) => Promise<Doc>]> = [
  ['OCI image manifest', (repo) => prettyImage(repo, OCI_MANIFEST)],
  ['OCI image index', (repo) => prettyIndex(repo, OCI_INDEX)],
  ['Docker schema2 manifest', (repo) => prettyImage(repo, DOCKER_MANIFEST)],
  ['Docker manifest list', (repo) => prettyIndex(repo, DOCKER_LIST)],
];

for (const [kind, build] of KINDS) {
  describe(`${kind}: push and pull`, () => {
    test('PUT by tag → 201 with Location and Docker-Content-Digest; the Location is pullable', async () => {
      const repo = repoName('mf-put');
      const doc = await build(repo);
      const res = await putManifest(base, repo, 'latest', doc.manifest, doc.mediaType);
      expectPutCreated(res, doc.digest);
      expectManifest(await http(location(res, base)), doc);
    });

    test('GET by tag and by digest return the bytes verbatim with Content-Type, Docker-Content-Digest, Content-Length', async () => {
      const repo = repoName('mf-get');
      const doc = await build(repo);
      expectStatus(await putManifest(base, repo, 'v1', doc.manifest, doc.mediaType), 201);
      expectManifest(await http(manifestUrl(repo, 'v1')), doc);
      expectManifest(await http(manifestUrl(repo, doc.digest)), doc);
    });

    test('HEAD by tag and by digest has the same headers and no body', async () => {
      const repo = repoName('mf-head');
      const doc = await build(repo);
      expectStatus(await putManifest(base, repo, 'v1', doc.manifest, doc.mediaType), 201);
      expectManifestHead(await http(manifestUrl(repo, 'v1'), { method: 'HEAD' }), doc);
      expectManifestHead(await http(manifestUrl(repo, doc.digest), { method: 'HEAD' }), doc);
    });

    test('PUT by digest → 201; pullable by digest', async () => {
      const repo = repoName('mf-put-digest');
      const doc = await build(repo);
      expectPutCreated(await putManifest(base, repo, doc.digest, doc.manifest, doc.mediaType), doc.digest);
      expectManifest(await http(manifestUrl(repo, doc.digest)), doc);
    });
  });
}

describe('manifest PUT validation', () => {
  test('PUT by a digest that does not match the bytes → 400 DIGEST_INVALID; nothing stored', async () => {
    const repo = repoName('mf-digest-mismatch');
    const img = await prettyImage(repo);
    const wrong = sha256('something else');
    expectError(await putManifest(base, repo, wrong, img.manifest, img.mediaType), 400, 'DIGEST_INVALID');
    expectStatus(await http(manifestUrl(repo, wrong), { method: 'HEAD' }), 404);
    expectStatus(await http(manifestUrl(repo, img.digest), { method: 'HEAD' }), 404);
  });

  test('PUT by a malformed digest reference → 400 DIGEST_INVALID', async () => {
    const repo = repoName('mf-digest-bad');
    const img = await prettyImage(repo);
    expectError(await putManifest(base, repo, 'sha256:abc', img.manifest, img.mediaType), 400, 'DIGEST_INVALID');
  });

  test('PUT by a sha512 digest → 201 with that digest; pullable by it', async () => {
    const repo = repoName('mf-sha512');
    const img = await prettyImage(repo);
    const digest = sha512(img.manifest);
    const res = await putManifest(base, repo, digest, img.manifest, img.mediaType);
    expectPutCreated(res, digest);
    const got = await http(manifestUrl(repo, digest));
    expectStatus(got, 200);
    assert.ok(got.body.equals(img.manifest));
  });

  test('descriptors may use sha512 digests of blobs pushed by sha512', async () => {
    const repo = repoName('mf-sha512-blobs');
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n: Math.random() }));
    const layer = Buffer.from(`layer ${Math.random()}`);
    for (const bytes of [config, layer]) {
      const res = await http(`${base}/v2/${repo}/blobs/uploads/?digest=${sha512(bytes)}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
      expectStatus(res, 201);
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: sha512(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha512(layer), size: layer.length }],
      }),
    );
    expectPutCreated(await putManifest(base, repo, 'v1', manifest, OCI_MANIFEST), sha256(manifest));
    expectReason(await http(`${base}/v2/${repo}/blobs/${sha512(layer)}`, { method: 'DELETE' }), 409, 'DENIED', 'BLOB_REFERENCED');
  });

  test('a missing config blob → 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = repoName('mf-noconfig');
    const img = image();
    for (const b of img.layers) await pushBlob(base, repo, b);
    expectError(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 400, 'MANIFEST_BLOB_UNKNOWN');
    expectStatus(await http(manifestUrl(repo, img.digest), { method: 'HEAD' }), 404);
  });

  test('a missing layer blob → 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = repoName('mf-nolayer');
    const img = image();
    await pushBlob(base, repo, img.config);
    await pushBlob(base, repo, img.layers[0]!);
    expectError(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('blobs present only in ANOTHER repository → 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const other = repoName('mf-blobs-elsewhere-src');
    const repo = repoName('mf-blobs-elsewhere');
    const img = image();
    for (const b of [img.config, ...img.layers]) await pushBlob(base, other, b);
    await pushBlob(base, repo, blob());
    expectError(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('a deleted layer blob cannot be referenced any more → 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = repoName('mf-deleted-layer');
    const img = image();
    for (const b of [img.config, ...img.layers]) await pushBlob(base, repo, b);
    expectStatus(await http(`${base}/v2/${repo}/blobs/${img.layers[1]!.digest}`, { method: 'DELETE' }), 202);
    expectError(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  for (const mediaType of [OCI_INDEX, DOCKER_LIST]) {
    test(`${mediaType === OCI_INDEX ? 'an OCI index' : 'a Docker list'} with a missing child manifest → 400 MANIFEST_BLOB_UNKNOWN`, async () => {
      const repo = repoName('mf-index-nochild');
      const childType = mediaType === DOCKER_LIST ? DOCKER_MANIFEST : OCI_MANIFEST;
      const present = image({ mediaType: childType });
      await pushImageOk(base, repo, present);
      const missing = image({ mediaType: childType });
      const idx = index(
        [present, missing].map((c) => ({ digest: c.digest, size: c.manifest.length, mediaType: c.mediaType })),
        mediaType,
      );
      expectError(await putManifest(base, repo, 'multi', idx.manifest, idx.mediaType), 400, 'MANIFEST_BLOB_UNKNOWN');
      expectError(await http(manifestUrl(repo, 'multi')), 404, 'MANIFEST_UNKNOWN');
    });
  }

  test('an index whose child exists only in another repository → 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const other = repoName('mf-index-child-elsewhere-src');
    const repo = repoName('mf-index-child-elsewhere');
    const child = image();
    await pushImageOk(base, other, child);
    await pushImageOk(base, repo, image(), 'x');
    const idx = index([{ digest: child.digest, size: child.manifest.length, mediaType: child.mediaType }]);
    expectError(await putManifest(base, repo, 'multi', idx.manifest, idx.mediaType), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('a subject that does not exist is allowed → 201', async () => {
    const repo = repoName('mf-subject-missing');
    const ghost = image();
    const img = image({ subject: { mediaType: OCI_MANIFEST, digest: ghost.digest, size: ghost.manifest.length }, artifactType: 'application/vnd.example.sig' });
    const res = await pushImageOk(base, repo, img);
    assert.equal(header(res, 'docker-content-digest'), img.digest);
  });

  test('a body of exactly 4 MiB is accepted → 201', async () => {
    const repo = repoName('mf-4mib');
    const img = paddedImage(4 * 1024 * 1024);
    assert.equal(img.manifest.length, 4 * 1024 * 1024);
    const res = await pushImageOk(base, repo, img, 'big');
    assert.equal(header(res, 'docker-content-digest'), img.digest);
    const got = await http(manifestUrl(repo, 'big'));
    expectStatus(got, 200);
    assert.ok(got.body.equals(img.manifest));
  });

  test('a body over 4 MiB → 413', async () => {
    const repo = repoName('mf-toolarge');
    const img = paddedImage(4 * 1024 * 1024 + 1);
    for (const b of [img.config, ...img.layers]) await pushBlob(base, repo, b);
    const res = await putManifest(base, repo, 'big', img.manifest, img.mediaType);
    expectError(res, 413);
    expectStatus(await http(manifestUrl(repo, 'big'), { method: 'HEAD' }), 404);
  });

  const INVALID: Array<[string, string, string]> = [
    ['invalid JSON', '{"schemaVersion": 2,', OCI_MANIFEST],
    ['a JSON array', '[]', OCI_MANIFEST],
    ['a JSON string', '"manifest"', OCI_MANIFEST],
    ['an empty body', '', OCI_MANIFEST],
    ['schemaVersion 1', JSON.stringify({ schemaVersion: 1, mediaType: OCI_MANIFEST, config: desc(OCI_CONFIG), layers: [] }), OCI_MANIFEST],
    ['no schemaVersion', JSON.stringify({ mediaType: OCI_MANIFEST, config: desc(OCI_CONFIG), layers: [] }), OCI_MANIFEST],
    ['an image without config', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }), OCI_MANIFEST],
    ['layers that are not an array', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: desc(OCI_CONFIG), layers: {} }), OCI_MANIFEST],
    ['a descriptor without digest', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, size: 2 }, layers: [] }), OCI_MANIFEST],
    ['a descriptor with a malformed digest', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, size: 2, digest: 'sha256:zz' }, layers: [] }), OCI_MANIFEST],
    ['a descriptor with a negative size', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { ...desc(OCI_CONFIG), size: -1 }, layers: [] }), OCI_MANIFEST],
    ['an index without manifests', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX }), OCI_INDEX],
    ['an index whose manifests is not an array', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: 'x' }), OCI_INDEX],
  ];
  for (const [what, body, contentType] of INVALID) {
    test(`${what} → 400 MANIFEST_INVALID`, async () => {
      const repo = repoName('mf-invalid');
      await pushBlob(base, repo, blob('{}')); // the blob desc() points at, so only validity is in question
      expectError(await putManifest(base, repo, 'v1', Buffer.from(body), contentType), 400, 'MANIFEST_INVALID');
      expectStatus(await http(manifestUrl(repo, 'v1'), { method: 'HEAD' }), 404);
    });
  }

  const MISMATCHED: Array<[string, string, string]> = [
    ['an OCI manifest sent as an OCI index', OCI_MANIFEST, OCI_INDEX],
    ['an OCI manifest sent as a Docker manifest', OCI_MANIFEST, DOCKER_MANIFEST],
    ['a Docker manifest sent as an OCI manifest', DOCKER_MANIFEST, OCI_MANIFEST],
  ];
  for (const [what, bodyType, contentType] of MISMATCHED) {
    test(`Content-Type differing from the body's mediaType (${what}) → 400 MANIFEST_INVALID`, async () => {
      const repo = repoName('mf-ctype');
      const img = image({ mediaType: bodyType });
      for (const b of [img.config, ...img.layers]) await pushBlob(base, repo, b);
      expectError(await putManifest(base, repo, 'v1', img.manifest, contentType), 400, 'MANIFEST_INVALID');
      expectStatus(await http(manifestUrl(repo, 'v1'), { method: 'HEAD' }), 404);
    });
  }

  test('an OCI index body sent as a Docker list → 400 MANIFEST_INVALID', async () => {
    const repo = repoName('mf-ctype-index');
    const child = image();
    await pushImageOk(base, repo, child);
    const idx = index([{ digest: child.digest, size: child.manifest.length, mediaType: child.mediaType }]);
    expectError(await putManifest(base, repo, 'v1', idx.manifest, DOCKER_LIST), 400, 'MANIFEST_INVALID');
  });

  test('parameters on the Content-Type are ignored → 201; GET answers the bare media type', async () => {
    const repo = repoName('mf-ctype-params');
    const img = await prettyImage(repo);
    expectPutCreated(await putManifest(base, repo, 'v1', img.manifest, `${OCI_MANIFEST}; charset=utf-8`), img.digest);
    const got = await http(manifestUrl(repo, 'v1'));
    expectStatus(got, 200);
    assert.equal(header(got, 'content-type'), OCI_MANIFEST);
  });

  test('a manifest without a mediaType field is accepted under its Content-Type', async () => {
    const repo = repoName('mf-no-mediatype');
    const img = image();
    for (const b of [img.config, ...img.layers]) await pushBlob(base, repo, b);
    const body = JSON.parse(img.manifest.toString()) as Record<string, unknown>;
    delete body.mediaType;
    const bytes = Buffer.from(JSON.stringify(body));
    expectPutCreated(await putManifest(base, repo, 'v1', bytes, OCI_MANIFEST), sha256(bytes));
    expectManifest(await http(manifestUrl(repo, 'v1')), { manifest: bytes, digest: sha256(bytes), mediaType: OCI_MANIFEST });
  });

  for (const [what, tag] of [
    ['129 characters', 'a'.repeat(129)],
    ['a leading "."', '.hidden'],
    ['a leading "-"', '-dash'],
    ['a forbidden character', 'a+b'],
    ["the OCI conformance suite's invalid name", '.INVALID_MANIFEST_NAME'],
  ] as const) {
    test(`a tag with ${what}: PUT → 400 TAG_INVALID; GET, HEAD, DELETE → 404 MANIFEST_UNKNOWN`, async () => {
      const repo = repoName('mf-badtag');
      const img = await prettyImage(repo);
      expectError(await putManifest(base, repo, encodeURIComponent(tag), img.manifest, img.mediaType), 400, 'TAG_INVALID');
      // A reference that cannot be a tag names no manifest (the OCI conformance suite, CNCF distribution).
      expectError(await http(manifestUrl(repo, encodeURIComponent(tag))), 404, 'MANIFEST_UNKNOWN');
      expectStatus(await http(manifestUrl(repo, encodeURIComponent(tag)), { method: 'HEAD' }), 404);
      expectError(await http(manifestUrl(repo, encodeURIComponent(tag)), { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
    });
  }

  test('a 128-character tag and tags using . _ - are accepted', async () => {
    const repo = repoName('mf-longtag');
    const img = await prettyImage(repo);
    const tags = ['a'.repeat(128), '_under', 'v1.2.3-rc_1', '0'];
    for (const tag of tags) expectPutCreated(await putManifest(base, repo, tag, img.manifest, img.mediaType), img.digest);
    for (const tag of tags) expectManifest(await http(manifestUrl(repo, tag)), img);
  });
});

describe('conditional GET', () => {
  test('GET has an ETag of the quoted digest; If-None-Match with it → 304', async () => {
    const repo = repoName('mf-etag');
    const img = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 201);
    for (const ref of ['v1', img.digest]) {
      const res = await http(manifestUrl(repo, ref));
      expectStatus(res, 200);
      const etag = header(res, 'etag');
      assert.equal(etag, `"${img.digest}"`);
      const cached = await http(manifestUrl(repo, ref), { headers: { 'if-none-match': etag } });
      expectStatus(cached, 304);
      assert.equal(cached.body.length, 0);
    }
  });

  test('If-None-Match follows RFC 9110: a list of ETags, or a weak ETag, that includes the digest → 304', async () => {
    const repo = repoName('mf-etag-list');
    const img = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 201);
    for (const value of [`"${sha256('a')}", "${img.digest}"`, `W/"${img.digest}"`, '*']) {
      const res = await http(manifestUrl(repo, 'v1'), { headers: { 'if-none-match': value } });
      expectStatus(res, 304);
    }
  });

  test('If-None-Match with another ETag → 200 with the body', async () => {
    const repo = repoName('mf-etag-other');
    const img = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 201);
    const res = await http(manifestUrl(repo, 'v1'), { headers: { 'if-none-match': `"${sha256('other')}"` } });
    expectManifest(res, img);
  });

  test('after a tag moves, the old ETag no longer matches → 200 with the new manifest', async () => {
    const repo = repoName('mf-etag-move');
    const a = await prettyImage(repo);
    const b = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, 'v1', a.manifest, a.mediaType), 201);
    expectStatus(await putManifest(base, repo, 'v1', b.manifest, b.mediaType), 201);
    expectManifest(await http(manifestUrl(repo, 'v1'), { headers: { 'if-none-match': `"${a.digest}"` } }), b);
  });
});

describe('tags on manifests', () => {
  test('re-pushing an existing manifest under a new tag creates the tag; both are listed', async () => {
    const repo = repoName('mf-retag');
    const img = await prettyImage(repo);
    expectPutCreated(await putManifest(base, repo, 'one', img.manifest, img.mediaType), img.digest);
    expectPutCreated(await putManifest(base, repo, 'two', img.manifest, img.mediaType), img.digest);
    expectManifest(await http(manifestUrl(repo, 'one')), img);
    expectManifest(await http(manifestUrl(repo, 'two')), img);
    assert.deepEqual(await tagsOf(repo), ['one', 'two']);
  });

  test('a tag moves: PUT manifest B under the tag of A → GET tag returns B; A stays by digest', async () => {
    const repo = repoName('mf-move');
    const a = await prettyImage(repo);
    const b = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, 'latest', a.manifest, a.mediaType), 201);
    expectManifest(await http(manifestUrl(repo, 'latest')), a);
    expectStatus(await putManifest(base, repo, 'latest', b.manifest, b.mediaType), 201);
    expectManifest(await http(manifestUrl(repo, 'latest')), b);
    expectManifest(await http(manifestUrl(repo, a.digest)), a);
    assert.deepEqual(await tagsOf(repo), ['latest']);
  });

  test('a tag can move between manifest types (image → index)', async () => {
    const repo = repoName('mf-move-type');
    const img = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, 'latest', img.manifest, img.mediaType), 201);
    const idx = await prettyIndex(repo);
    expectStatus(await putManifest(base, repo, 'latest', idx.manifest, idx.mediaType), 201);
    expectManifest(await http(manifestUrl(repo, 'latest')), idx);
  });
});

describe('concurrent pushes', () => {
  test('concurrent pushes of different manifests to one tag: all 201, the tag ends on one of them', async () => {
    const repo = repoName('mf-race-tag');
    const imgs = await Promise.all([1, 2, 3, 4, 5].map(() => prettyImage(repo)));
    const results = await Promise.all(imgs.map((img) => putManifest(base, repo, 'latest', img.manifest, img.mediaType)));
    for (const [i, r] of results.entries()) expectPutCreated(r, imgs[i]!.digest);
    const got = await http(manifestUrl(repo, 'latest'));
    expectStatus(got, 200);
    const winner = imgs.find((img) => img.digest === header(got, 'docker-content-digest'));
    assert.ok(winner, `the tag points at none of the pushed manifests:\n${describeRes(got)}`);
    expectManifest(got, winner);
    assert.deepEqual(await tagsOf(repo), ['latest']);
    for (const img of imgs) expectStatus(await http(manifestUrl(repo, img.digest), { method: 'HEAD' }), 200);
  });

  test('the same manifest pushed concurrently under many tags: all 201, all listed', async () => {
    const repo = repoName('mf-race-many');
    const img = await prettyImage(repo);
    const tags = Array.from({ length: 8 }, (_, i) => `t${i}`);
    const results = await Promise.all(tags.map((t) => putManifest(base, repo, t, img.manifest, img.mediaType)));
    for (const r of results) expectPutCreated(r, img.digest);
    assert.deepEqual(await tagsOf(repo), tags);
  });
});

describe('unknown manifests', () => {
  test('an unknown tag or digest in a known repository → 404 MANIFEST_UNKNOWN; HEAD → 404', async () => {
    const repo = repoName('mf-unknown');
    await pushImageOk(base, repo, image(), 'v1');
    for (const ref of ['nope', sha256('nope')]) {
      expectError(await http(manifestUrl(repo, ref)), 404, 'MANIFEST_UNKNOWN');
      const head = await http(manifestUrl(repo, ref), { method: 'HEAD' });
      expectStatus(head, 404);
      expectNoBody(head);
    }
  });

  test('a manifest in an unknown repository → 404 NAME_UNKNOWN or MANIFEST_UNKNOWN', async () => {
    const repo = repoName('mf-norepo');
    expectError(await http(manifestUrl(repo, 'latest')), 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
    expectError(await http(manifestUrl(repo, sha256('x'))), 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
    expectStatus(await http(manifestUrl(repo, 'latest'), { method: 'HEAD' }), 404);
  });

  test('a manifest pushed to repo a is not visible from repo b', async () => {
    const a = repoName('mf-scope-a');
    const b = repoName('mf-scope-b');
    const img = image();
    await pushImageOk(base, a, img, 'v1');
    await pushImageOk(base, b, image(), 'v1');
    expectError(await http(manifestUrl(b, img.digest)), 404, 'MANIFEST_UNKNOWN');
  });

  test('GET by a malformed digest → 400 DIGEST_INVALID', async () => {
    const repo = repoName('mf-get-baddigest');
    await pushImageOk(base, repo, image(), 'v1');
    expectError(await http(manifestUrl(repo, 'sha256:123')), 400, 'DIGEST_INVALID');
  });
});

describe('deleting manifests', () => {
  test('DELETE by tag → 202 and removes only the tag', async () => {
    const repo = repoName('mf-del-tag');
    const img = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, 'keep', img.manifest, img.mediaType), 201);
    expectStatus(await putManifest(base, repo, 'drop', img.manifest, img.mediaType), 201);
    expectStatus(await http(manifestUrl(repo, 'drop'), { method: 'DELETE' }), 202);
    expectError(await http(manifestUrl(repo, 'drop')), 404, 'MANIFEST_UNKNOWN');
    expectManifest(await http(manifestUrl(repo, img.digest)), img);
    expectManifest(await http(manifestUrl(repo, 'keep')), img);
    assert.deepEqual(await tagsOf(repo), ['keep']);
  });

  test('DELETE by digest → 202 and removes the manifest and all its tags', async () => {
    const repo = repoName('mf-del-digest');
    const img = await prettyImage(repo);
    const other = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, 't1', img.manifest, img.mediaType), 201);
    expectStatus(await putManifest(base, repo, 't2', img.manifest, img.mediaType), 201);
    expectStatus(await putManifest(base, repo, 'other', other.manifest, other.mediaType), 201);
    expectStatus(await http(manifestUrl(repo, img.digest), { method: 'DELETE' }), 202);
    expectError(await http(manifestUrl(repo, img.digest)), 404, 'MANIFEST_UNKNOWN');
    expectError(await http(manifestUrl(repo, 't1')), 404, 'MANIFEST_UNKNOWN');
    expectError(await http(manifestUrl(repo, 't2')), 404, 'MANIFEST_UNKNOWN');
    expectStatus(await http(manifestUrl(repo, img.digest), { method: 'HEAD' }), 404);
    assert.deepEqual(await tagsOf(repo), ['other']);
    expectManifest(await http(manifestUrl(repo, 'other')), other);
  });

  test('a deleted manifest can be pushed again', async () => {
    const repo = repoName('mf-del-repush');
    const img = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), 201);
    expectStatus(await http(manifestUrl(repo, img.digest), { method: 'DELETE' }), 202);
    expectPutCreated(await putManifest(base, repo, 'v1', img.manifest, img.mediaType), img.digest);
    expectManifest(await http(manifestUrl(repo, 'v1')), img);
  });

  test('DELETE of an unknown digest or tag → 404 MANIFEST_UNKNOWN', async () => {
    const repo = repoName('mf-del-unknown');
    await pushImageOk(base, repo, image(), 'v1');
    expectError(await http(manifestUrl(repo, sha256('unknown')), { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
    expectError(await http(manifestUrl(repo, 'nosuchtag'), { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
  });

  test('DELETE in an unknown repository → 404', async () => {
    const repo = repoName('mf-del-norepo');
    expectError(await http(manifestUrl(repo, sha256('x')), { method: 'DELETE' }), 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
  });

  for (const mediaType of [OCI_INDEX, DOCKER_LIST]) {
    test(`deleting a manifest that ${mediaType === OCI_INDEX ? 'an OCI index' : 'a Docker list'} references → 409 MANIFEST_REFERENCED; allowed once the index is gone`, async () => {
      const repo = repoName('mf-del-child');
      const idx = await prettyIndex(repo, mediaType);
      expectStatus(await putManifest(base, repo, 'multi', idx.manifest, idx.mediaType), 201);
      const child = (JSON.parse(idx.manifest.toString()) as { manifests: Array<{ digest: string }> }).manifests[0]!.digest;
      expectReason(await http(manifestUrl(repo, child), { method: 'DELETE' }), 409, 'DENIED', 'MANIFEST_REFERENCED');
      expectStatus(await http(manifestUrl(repo, child), { method: 'HEAD' }), 200);
      expectStatus(await http(manifestUrl(repo, idx.digest), { method: 'DELETE' }), 202);
      expectStatus(await http(manifestUrl(repo, child), { method: 'DELETE' }), 202);
      expectStatus(await http(manifestUrl(repo, child), { method: 'HEAD' }), 404);
    });
  }

  test('an index in ANOTHER repository does not block deleting the child here', async () => {
    const a = repoName('mf-del-child-xa');
    const b = repoName('mf-del-child-xb');
    const child = image();
    await pushImageOk(base, a, child);
    await pushImageOk(base, b, child);
    const idx = index([{ digest: child.digest, size: child.manifest.length, mediaType: child.mediaType }]);
    expectStatus(await putManifest(base, a, 'multi', idx.manifest, idx.mediaType), 201);
    expectStatus(await http(manifestUrl(b, child.digest), { method: 'DELETE' }), 202);
    expectStatus(await http(manifestUrl(b, child.digest), { method: 'HEAD' }), 404);
    expectStatus(await http(manifestUrl(a, child.digest), { method: 'HEAD' }), 200);
    expectStatus(await http(manifestUrl(a, 'multi'), { method: 'HEAD' }), 200);
  });

  test('a child pushed after being deleted can be referenced again', async () => {
    const repo = repoName('mf-del-child-again');
    const child = image();
    await pushImageOk(base, repo, child);
    expectStatus(await http(manifestUrl(repo, child.digest), { method: 'DELETE' }), 202);
    const idx = index([{ digest: child.digest, size: child.manifest.length, mediaType: child.mediaType }]);
    expectError(await putManifest(base, repo, 'multi', idx.manifest, idx.mediaType), 400, 'MANIFEST_BLOB_UNKNOWN');
    await pushImageOk(base, repo, child);
    expectStatus(await putManifest(base, repo, 'multi', idx.manifest, idx.mediaType), 201);
  });

  test('DELETE of a reference that cannot be a tag → 404 MANIFEST_UNKNOWN', async () => {
    const repo = repoName('mf-del-badtag');
    await pushImageOk(base, repo, image(), 'v1');
    expectError(await http(manifestUrl(repo, '.bad'), { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
  });
});

function desc(mediaType: string): { mediaType: string; digest: string; size: number } {
  const b = blob('{}');
  return { mediaType, digest: b.digest, size: b.size };
}

/** An OCI image whose manifest is padded (with an annotation) to exactly `size` bytes. */
function paddedImage(size: number): Image {
  const img = image({ annotations: { pad: '' } });
  const body = JSON.parse(img.manifest.toString()) as { annotations: Record<string, string> };
  body.annotations.pad = 'x'.repeat(size - img.manifest.length);
  const manifest = Buffer.from(JSON.stringify(body));
  return { ...img, manifest, digest: sha256(manifest) };
}

describe('descriptors with urls, and the number of references', () => {
  const FOREIGN = [
    'application/vnd.oci.image.layer.nondistributable.v1.tar',
    'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
    'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
    'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  ];
  const urls = ['https://example.com/layer.tar.gz'];
  const missing = () => ({ digest: sha256(randomBytes(16)), size: 1024 });
  const manifestOf = (body: Record<string, unknown>, mediaType = OCI_MANIFEST) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, ...body }));

  for (const mediaType of [OCI_MANIFEST, DOCKER_MANIFEST]) {
    test(`${mediaType}: random config and layer digests with urls → 400 MANIFEST_BLOB_UNKNOWN`, async () => {
      const repo = repoName('mf-urls-random');
      await pushBlob(base, repo, blob());
      const manifest = manifestOf(
        {
          config: { mediaType: OCI_CONFIG, ...missing(), urls },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...missing(), urls }],
        },
        mediaType,
      );
      expectError(await putManifest(base, repo, 'v1', manifest, mediaType), 400, 'MANIFEST_BLOB_UNKNOWN');
      expectStatus(await http(manifestUrl(repo, 'v1'), { method: 'HEAD' }), 404);
    });
  }

  test('an ordinary layer with urls must be in the repository even when the config is', async () => {
    const repo = repoName('mf-urls-layer');
    const config = blob('{}');
    await pushBlob(base, repo, config);
    const manifest = manifestOf({ config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...missing(), urls }] });
    expectError(await putManifest(base, repo, 'v1', manifest, OCI_MANIFEST), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('a config with a foreign media type and urls is still checked', async () => {
    const repo = repoName('mf-urls-config');
    const layer = blob();
    await pushBlob(base, repo, layer);
    const manifest = manifestOf({ config: { mediaType: FOREIGN[0], ...missing(), urls }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.size }] });
    expectError(await putManifest(base, repo, 'v1', manifest, OCI_MANIFEST), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('non-distributable (foreign) layers with urls need not be pushed; without urls they must be', async () => {
    const repo = repoName('mf-urls-foreign');
    const config = blob('{"os":"windows"}');
    await pushBlob(base, repo, config);
    const configDescriptor = { mediaType: OCI_CONFIG, digest: config.digest, size: config.size };
    const withUrls = manifestOf({ config: configDescriptor, layers: FOREIGN.map((mediaType) => ({ mediaType, ...missing(), urls })) });
    expectStatus(await putManifest(base, repo, 'v1', withUrls, OCI_MANIFEST), 201);
    expectStatus(await http(manifestUrl(repo, 'v1')), 200);
    const withoutUrls = manifestOf({ config: configDescriptor, layers: [{ mediaType: FOREIGN[1], ...missing() }] });
    expectError(await putManifest(base, repo, 'v2', withoutUrls, OCI_MANIFEST), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  // Layers may repeat a digest: the limit counts descriptors, so these stay cheap to store.
  const LIMIT = 10_000;
  const layerOf = (b: { digest: string; size: number }) => ({ mediaType: 'a/b', digest: b.digest, size: b.size });

  test(`an image at the limit (config + ${LIMIT - 1} layers) is accepted; one more descriptor → 400 MANIFEST_INVALID naming the limit`, async () => {
    const repo = repoName('mf-refs-cap');
    const config = blob('{}');
    const layer = blob();
    for (const b of [config, layer]) await pushBlob(base, repo, b);
    const configDescriptor = { mediaType: OCI_CONFIG, digest: config.digest, size: config.size };
    const at = manifestOf({ config: configDescriptor, layers: Array.from({ length: LIMIT - 1 }, () => layerOf(layer)) });
    expectStatus(await putManifest(base, repo, 'at', at, OCI_MANIFEST), 201);
    const over = manifestOf({ config: configDescriptor, layers: Array.from({ length: LIMIT }, () => layerOf(layer)) });
    const entry = expectError(await putManifest(base, repo, 'over', over, OCI_MANIFEST), 400, 'MANIFEST_INVALID')[0]!;
    assert.match(String(entry.message), /10000/);
    assert.deepEqual(entry.detail, { references: LIMIT + 1, limit: LIMIT });
  });

  test('33,000 distinct layers (under 4 MiB) → 400 MANIFEST_INVALID, not a server error', async () => {
    const repo = repoName('mf-refs-33k');
    const config = blob('{}');
    await pushBlob(base, repo, config);
    const layers = Array.from({ length: 33_000 }, () => layerOf(missing()));
    const manifest = manifestOf({ config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, layers });
    assert.ok(manifest.length < 4 * 1024 * 1024);
    expectError(await putManifest(base, repo, 'v1', manifest, OCI_MANIFEST), 400, 'MANIFEST_INVALID');
  });

  test(`an index with ${LIMIT} entries is accepted; with a subject as well → 400 MANIFEST_INVALID`, async () => {
    const repo = repoName('mf-refs-cap-index');
    const child = await prettyImage(repo);
    expectStatus(await putManifest(base, repo, child.digest, child.manifest, child.mediaType), 201);
    const entry = { mediaType: child.mediaType, digest: child.digest, size: child.manifest.length };
    const at = manifestOf({ manifests: Array.from({ length: LIMIT }, () => entry) }, OCI_INDEX);
    expectStatus(await putManifest(base, repo, 'at', at, OCI_INDEX), 201);
    const over = manifestOf({ manifests: Array.from({ length: LIMIT }, () => entry), subject: entry }, OCI_INDEX);
    expectError(await putManifest(base, repo, 'over', over, OCI_INDEX), 400, 'MANIFEST_INVALID');
  });
});
