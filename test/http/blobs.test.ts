/** Conformance: pulling, range-reading, checking and deleting blobs. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { blob, image, pushBlob, type Blob } from '../helpers/oci.js';
import { http, pushImageOk, putManifest, expectStatus, expectError, expectReason, expectNoBody, header, repoName, describeRes, OCTET, type Res, useRegistry } from './util.js';

let base: string;
useRegistry({}, (url) => (base = url));

const blobUrl = (repo: string, digest: string) => `${base}/v2/${repo}/blobs/${digest}`;

function expectBody(res: Res, expected: Buffer): void {
  assert.equal(res.body.length, expected.length, `body length:\n${describeRes(res)}`);
  assert.ok(res.body.equals(expected), `body bytes differ:\n${describeRes(res)}`);
}

async function withBlob(prefix: string, size = 1024): Promise<{ repo: string; b: Blob }> {
  const repo = repoName(prefix);
  const b = blob(randomBytes(size));
  await pushBlob(base, repo, b);
  return { repo, b };
}

describe('GET and HEAD blobs', () => {
  test('GET returns the bytes with Docker-Content-Digest, Content-Length, Content-Type and Accept-Ranges', async () => {
    const { repo, b } = await withBlob('blob-get', 3000);
    const res = await http(blobUrl(repo, b.digest));
    expectStatus(res, 200);
    expectBody(res, b.bytes);
    assert.equal(header(res, 'docker-content-digest'), b.digest);
    assert.equal(header(res, 'content-length'), String(b.size));
    assert.equal(header(res, 'content-type'), OCTET);
    assert.equal(header(res, 'accept-ranges'), 'bytes');
  });

  test('HEAD returns the same headers and no body', async () => {
    const { repo, b } = await withBlob('blob-head', 2048);
    const res = await http(blobUrl(repo, b.digest), { method: 'HEAD' });
    expectStatus(res, 200);
    expectNoBody(res);
    assert.equal(header(res, 'docker-content-digest'), b.digest);
    assert.equal(header(res, 'content-length'), String(b.size));
    assert.equal(header(res, 'content-type'), OCTET);
    assert.equal(header(res, 'accept-ranges'), 'bytes');
  });

  test('an empty blob is served with Content-Length: 0', async () => {
    const repo = repoName('blob-empty');
    const b = blob(Buffer.alloc(0));
    await pushBlob(base, repo, b);
    const res = await http(blobUrl(repo, b.digest));
    expectStatus(res, 200);
    assert.equal(res.body.length, 0);
    assert.equal(header(res, 'content-length'), '0');
    assert.equal(header(res, 'docker-content-digest'), b.digest);
    const head = await http(blobUrl(repo, b.digest), { method: 'HEAD' });
    expectStatus(head, 200);
    assert.equal(header(head, 'content-length'), '0');
  });

  test('an unknown blob → 404 BLOB_UNKNOWN (GET), 404 (HEAD)', async () => {
    const { repo } = await withBlob('blob-unknown');
    const missing = blob().digest;
    expectError(await http(blobUrl(repo, missing)), 404, 'BLOB_UNKNOWN');
    const head = await http(blobUrl(repo, missing), { method: 'HEAD' });
    expectStatus(head, 404);
    expectNoBody(head);
  });

  test('a blob in an unknown repository → 404', async () => {
    const res = await http(blobUrl(repoName('blob-norepo'), blob().digest));
    expectError(res, 404, ['BLOB_UNKNOWN', 'NAME_UNKNOWN']);
  });

  const malformed = ['sha256:abc', `sha256:${'g'.repeat(64)}`, `sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(65)}`, `sha512:${'a'.repeat(64)}`, 'sha256:', `md5:${'a'.repeat(32)}`];
  for (const bad of malformed) {
    test(`a malformed digest in the path (${bad.slice(0, 20)}) → 400 DIGEST_INVALID on GET, HEAD and DELETE`, async () => {
      const { repo } = await withBlob('blob-baddigest');
      expectError(await http(blobUrl(repo, bad)), 400, 'DIGEST_INVALID');
      expectStatus(await http(blobUrl(repo, bad), { method: 'HEAD' }), 400);
      expectError(await http(blobUrl(repo, bad), { method: 'DELETE' }), 400, 'DIGEST_INVALID');
    });
  }

  // A path part that is no digest at all names no blob: not found, as in CNCF distribution.
  for (const notDigest of ['nocolon', 'latest', '.bad']) {
    test(`a path part that is no digest (${notDigest}) → 404 BLOB_UNKNOWN on GET, HEAD and DELETE`, async () => {
      const { repo } = await withBlob('blob-notdigest');
      expectError(await http(blobUrl(repo, notDigest)), 404, 'BLOB_UNKNOWN');
      expectStatus(await http(blobUrl(repo, notDigest), { method: 'HEAD' }), 404);
      expectError(await http(blobUrl(repo, notDigest), { method: 'DELETE' }), 404, 'BLOB_UNKNOWN');
    });
  }
});

describe('Range requests', () => {
  const SIZE = 1024;
  async function range(value: string, size = SIZE): Promise<{ res: Res; b: Blob }> {
    const { repo, b } = await withBlob('blob-range', size);
    const res = await http(blobUrl(repo, b.digest), { headers: { range: value } });
    return { res, b };
  }
  function expectPartial(res: Res, b: Blob, start: number, end: number): void {
    expectStatus(res, 206);
    assert.equal(header(res, 'content-range'), `bytes ${start}-${end}/${b.size}`);
    assert.equal(header(res, 'content-length'), String(end - start + 1));
    assert.equal(header(res, 'content-type'), OCTET);
    expectBody(res, b.bytes.subarray(start, end + 1));
  }

  test('bytes=0-9 → 206 with Content-Range bytes 0-9/size', async () => {
    const { res, b } = await range('bytes=0-9');
    expectPartial(res, b, 0, 9);
  });

  test('a middle range bytes=100-299 → 206', async () => {
    const { res, b } = await range('bytes=100-299');
    expectPartial(res, b, 100, 299);
  });

  test('a single byte bytes=1023-1023 → 206', async () => {
    const { res, b } = await range('bytes=1023-1023');
    expectPartial(res, b, 1023, 1023);
  });

  test('open-ended bytes=1000- → 206 to the end', async () => {
    const { res, b } = await range('bytes=1000-');
    expectPartial(res, b, 1000, SIZE - 1);
  });

  test('suffix bytes=-100 → 206 with the last 100 bytes', async () => {
    const { res, b } = await range('bytes=-100');
    expectPartial(res, b, SIZE - 100, SIZE - 1);
  });

  test('a suffix longer than the blob → 206 with the whole blob', async () => {
    const { res, b } = await range('bytes=-5000');
    expectPartial(res, b, 0, SIZE - 1);
  });

  test('an end past the size is clamped: bytes=1000-99999 → bytes 1000-1023/1024', async () => {
    const { res, b } = await range('bytes=1000-99999');
    expectPartial(res, b, 1000, SIZE - 1);
  });

  test('an end beyond 2^53 is clamped too', async () => {
    const { res, b } = await range('bytes=5-99999999999999999999');
    expectPartial(res, b, 5, SIZE - 1);
  });

  test('bytes=0-<exactly size> is clamped to the whole blob', async () => {
    const { res, b } = await range(`bytes=0-${SIZE}`);
    expectPartial(res, b, 0, SIZE - 1);
  });

  for (const value of [`bytes=${SIZE}-`, `bytes=${SIZE}-${SIZE + 10}`, 'bytes=5000-6000', 'bytes=99999999999999999999-']) {
    test(`unsatisfiable ${value} → 416 with Content-Range: bytes */size and an error envelope`, async () => {
      const { res, b } = await range(value);
      expectReason(res, 416, 'SIZE_INVALID', 'RANGE_NOT_SATISFIABLE');
      assert.equal(header(res, 'content-range'), `bytes */${b.size}`);
    });
  }

  test('a zero-length suffix bytes=-0 is unsatisfiable → 416 (RFC 9110 §14.1.1)', async () => {
    const { res, b } = await range('bytes=-0');
    expectStatus(res, 416);
    assert.equal(header(res, 'content-range'), `bytes */${b.size}`);
  });

  test('any range of an empty blob is unsatisfiable → 416 bytes */0', async () => {
    const repo = repoName('blob-range-empty');
    const b = blob(Buffer.alloc(0));
    await pushBlob(base, repo, b);
    const res = await http(blobUrl(repo, b.digest), { headers: { range: 'bytes=0-' } });
    expectStatus(res, 416);
    assert.equal(header(res, 'content-range'), 'bytes */0');
  });

  for (const value of ['bytes=abc', 'bytes=5-2', 'items=0-5', 'bytes=', 'bytes 0-5', 'bytes=--5', 'bytes=1-2-3', 'bytes=x-10']) {
    test(`a malformed Range (${value}) is ignored → 200 with the full body`, async () => {
      const { res, b } = await range(value);
      expectStatus(res, 200);
      expectBody(res, b.bytes);
      assert.equal(header(res, 'content-length'), String(b.size));
      assert.equal(res.headers.get('content-range'), null, 'a 200 must not carry Content-Range');
    });
  }

  test('a multi-range request never fails: 200 with the full body or 206', async () => {
    const { res, b } = await range('bytes=0-1,5-6');
    expectStatus(res, [200, 206]);
    if (res.status === 200) expectBody(res, b.bytes);
  });

  test('a HEAD with a Range header does not send a body', async () => {
    const { repo, b } = await withBlob('blob-range-head');
    const res = await http(blobUrl(repo, b.digest), { method: 'HEAD', headers: { range: 'bytes=0-9' } });
    expectStatus(res, [200, 206]);
    expectNoBody(res);
  });
});

describe('blobs past the inline limit (kept in the object store)', () => {
  const MiB = 1024 * 1024;

  test('a 7 MiB blob comes back whole, and ranges across read buffers are exact', async () => {
    const { repo, b } = await withBlob('blob-big', 7 * MiB + 123);
    const full = await http(blobUrl(repo, b.digest));
    expectStatus(full, 200);
    expectBody(full, b.bytes);
    for (const [start, end] of [
      [0, 9],
      [2 * MiB - 5, 2 * MiB + 5],
      [MiB, 6 * MiB + 77],
      [b.size - 3 * MiB, b.size - 1],
    ] as const) {
      const res = await http(blobUrl(repo, b.digest), { headers: { range: `bytes=${start}-${end}` } });
      expectStatus(res, 206);
      assert.equal(header(res, 'content-range'), `bytes ${start}-${end}/${b.size}`);
      expectBody(res, b.bytes.subarray(start, end + 1));
    }
  });

  test('a slow reader gets the exact bytes (the server cannot reuse a buffer still being sent)', async () => {
    // Larger than the socket buffers of both ends, so writes must wait for the reader.
    const { repo, b } = await withBlob('blob-slow', 24 * MiB);
    const body = await new Promise<Buffer>((resolve, reject) => {
      get(blobUrl(repo, b.digest), (res) => {
        const chunks: Buffer[] = [];
        res.pause();
        setTimeout(() => res.resume(), 300);
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          // Stall now and then, so the server's writes back up behind a full socket.
          if (chunks.length % 8 === 0) {
            res.pause();
            setTimeout(() => res.resume(), 20);
          }
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(body.length, b.size);
    assert.ok(body.equals(b.bytes), 'body bytes differ');
  });

  test('a 100 KiB blob serves closed, open-ended and suffix ranges', async () => {
    const { repo, b } = await withBlob('blob-stored', 100 * 1024);
    for (const [value, start, end] of [
      ['bytes=100-299', 100, 299],
      ['bytes=100000-', 100_000, b.size - 1],
      ['bytes=-10', b.size - 10, b.size - 1],
    ] as const) {
      const res = await http(blobUrl(repo, b.digest), { headers: { range: value } });
      expectStatus(res, 206);
      expectBody(res, b.bytes.subarray(start, end + 1));
    }
  });

  test('a client that hangs up mid-download leaves the server serving', async () => {
    const { repo, b } = await withBlob('blob-abort', 9 * MiB);
    for (let i = 0; i < 3; i++) {
      const controller = new AbortController();
      const res = await fetch(blobUrl(repo, b.digest), { signal: controller.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      await reader.read();
      controller.abort();
      await reader.read().catch(() => {});
    }
    const full = await http(blobUrl(repo, b.digest));
    expectStatus(full, 200);
    expectBody(full, b.bytes);
  });
});

describe('DELETE blobs', () => {
  test('DELETE → 202, then GET → 404 BLOB_UNKNOWN and HEAD → 404', async () => {
    const { repo, b } = await withBlob('blob-del');
    expectStatus(await http(blobUrl(repo, b.digest), { method: 'DELETE' }), 202);
    expectError(await http(blobUrl(repo, b.digest)), 404, 'BLOB_UNKNOWN');
    expectStatus(await http(blobUrl(repo, b.digest), { method: 'HEAD' }), 404);
  });

  test('a deleted blob can be pushed again', async () => {
    const { repo, b } = await withBlob('blob-del-repush');
    expectStatus(await http(blobUrl(repo, b.digest), { method: 'DELETE' }), 202);
    await pushBlob(base, repo, b);
    const res = await http(blobUrl(repo, b.digest));
    expectStatus(res, 200);
    expectBody(res, b.bytes);
  });

  test('DELETE of an unknown blob → 404 BLOB_UNKNOWN', async () => {
    const { repo } = await withBlob('blob-del-unknown');
    expectError(await http(blobUrl(repo, blob().digest), { method: 'DELETE' }), 404, 'BLOB_UNKNOWN');
  });

  test('DELETE twice → the second answers 404 BLOB_UNKNOWN', async () => {
    const { repo, b } = await withBlob('blob-del-twice');
    expectStatus(await http(blobUrl(repo, b.digest), { method: 'DELETE' }), 202);
    expectError(await http(blobUrl(repo, b.digest), { method: 'DELETE' }), 404, 'BLOB_UNKNOWN');
  });

  test('DELETE with an invalid digest → 400 DIGEST_INVALID', async () => {
    const { repo } = await withBlob('blob-del-bad');
    expectError(await http(blobUrl(repo, 'sha256:xyz'), { method: 'DELETE' }), 400, 'DIGEST_INVALID');
  });

  test('deleting a config or layer blob a manifest references → 409 BLOB_REFERENCED, the blob stays', async () => {
    const repo = repoName('blob-del-ref');
    const img = image();
    await pushImageOk(base, repo, img, 'v1');
    for (const b of [img.config, ...img.layers]) {
      expectReason(await http(blobUrl(repo, b.digest), { method: 'DELETE' }), 409, 'DENIED', 'BLOB_REFERENCED');
      const res = await http(blobUrl(repo, b.digest));
      expectStatus(res, 200);
      expectBody(res, b.bytes);
    }
  });

  test('after the manifest is deleted its blobs can be deleted (202)', async () => {
    const repo = repoName('blob-del-after-manifest');
    const img = image();
    await pushImageOk(base, repo, img, 'v1');
    expectStatus(await http(`${base}/v2/${repo}/manifests/${img.digest}`, { method: 'DELETE' }), 202);
    for (const b of [img.config, ...img.layers]) {
      expectStatus(await http(blobUrl(repo, b.digest), { method: 'DELETE' }), 202);
      expectStatus(await http(blobUrl(repo, b.digest), { method: 'HEAD' }), 404);
    }
  });

  test('a reference from a manifest in ANOTHER repository does not block deletion here', async () => {
    const a = repoName('blob-del-xa');
    const b = repoName('blob-del-xb');
    const img = image();
    await pushImageOk(base, a, img, 'v1');
    await pushBlob(base, b, img.config);
    expectStatus(await http(blobUrl(b, img.config.digest), { method: 'DELETE' }), 202);
    expectStatus(await http(blobUrl(b, img.config.digest), { method: 'HEAD' }), 404);
    // Still there in the repository whose manifest uses it.
    const res = await http(blobUrl(a, img.config.digest));
    expectStatus(res, 200);
    expectBody(res, img.config.bytes);
  });
});

describe('repository scoping of blobs', () => {
  test('a blob pushed to repo a is not visible in repo b until pushed there', async () => {
    const { repo: a, b } = await withBlob('blob-scope-a');
    const other = repoName('blob-scope-b');
    await pushBlob(base, other, blob()); // make `other` exist
    expectError(await http(blobUrl(other, b.digest)), 404, 'BLOB_UNKNOWN');
    expectStatus(await http(blobUrl(other, b.digest), { method: 'HEAD' }), 404);
    await pushBlob(base, other, b);
    const res = await http(blobUrl(other, b.digest));
    expectStatus(res, 200);
    expectBody(res, b.bytes);
    expectStatus(await http(blobUrl(a, b.digest), { method: 'HEAD' }), 200);
  });

  test('deleting a blob in one repository leaves the other repository’s copy', async () => {
    const { repo: a, b } = await withBlob('blob-scope-del-a');
    const other = repoName('blob-scope-del-b');
    await pushBlob(base, other, b);
    expectStatus(await http(blobUrl(a, b.digest), { method: 'DELETE' }), 202);
    expectStatus(await http(blobUrl(a, b.digest), { method: 'HEAD' }), 404);
    const res = await http(blobUrl(other, b.digest));
    expectStatus(res, 200);
    expectBody(res, b.bytes);
  });
});

describe('blob deletion racing a manifest push', () => {
  test('exactly one of (manifest PUT, layer DELETE) wins; a stored manifest never points at missing bytes', async () => {
    for (let i = 0; i < 12; i++) {
      const repo = repoName('blob-race');
      const img = image();
      for (const b of [img.config, ...img.layers]) await pushBlob(base, repo, b);
      const victim = img.layers[i % 2]!;
      const [put, del] = await Promise.all([
        putManifest(base, repo, 'v1', img.manifest, img.mediaType),
        http(blobUrl(repo, victim.digest), { method: 'DELETE' }),
      ]);
      if (put.status === 201) {
        expectReason(del, 409, 'DENIED', 'BLOB_REFERENCED');
        for (const b of [img.config, ...img.layers]) {
          const res = await http(blobUrl(repo, b.digest));
          expectStatus(res, 200);
          expectBody(res, b.bytes);
        }
      } else {
        expectError(put, 400, 'MANIFEST_BLOB_UNKNOWN');
        expectStatus(del, 202);
        expectStatus(await http(`${base}/v2/${repo}/manifests/v1`, { method: 'HEAD' }), 404);
      }
    }
  });
});
