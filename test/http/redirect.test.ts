/** --blob-redirect: blob GETs answer 307 to a presigned object-store URL (S3 only; off by default). */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { blob, pushBlob } from '../helpers/oci.js';
import { ENGINE, runCli, startRegistry } from '../helpers/registry.js';

if (ENGINE === 'pg-s3') {
  test('blob GETs redirect to a presigned URL that serves the exact bytes; HEAD does not redirect', async () => {
    const reg = await startRegistry({ args: ['--blob-redirect', '5m'] });
    try {
      // Past the inline limit: the bytes are an S3 object.
      const b = blob(randomBytes(100_000));
      await pushBlob(reg.url, 'redirect/repo', b);
      // A small blob lives in the database: it has no URL to send the client to.
      const small = blob(randomBytes(2000));
      await pushBlob(reg.url, 'redirect/repo', small);
      const served = await fetch(`${reg.url}/v2/redirect/repo/blobs/${small.digest}`, { redirect: 'manual' });
      assert.equal(served.status, 200);
      assert.deepEqual(Buffer.from(await served.arrayBuffer()), small.bytes);
      const res = await fetch(`${reg.url}/v2/redirect/repo/blobs/${b.digest}`, { redirect: 'manual' });
      assert.equal(res.status, 307);
      assert.equal(res.headers.get('docker-content-digest'), b.digest);
      const location = res.headers.get('location')!;
      assert.match(location, /X-Amz-Signature=/);
      const direct = await fetch(location);
      assert.equal(direct.status, 200);
      assert.deepEqual(Buffer.from(await direct.arrayBuffer()), b.bytes);
      const ranged = await fetch(location, { headers: { range: 'bytes=10-19' } });
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), b.bytes.subarray(10, 20));
      const head = await fetch(`${reg.url}/v2/redirect/repo/blobs/${b.digest}`, { method: 'HEAD', redirect: 'manual' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(b.size));
      const missing = await fetch(`${reg.url}/v2/redirect/repo/blobs/${blob('absent').digest}`, { redirect: 'manual' });
      assert.equal(missing.status, 404);
    } finally {
      await reg.stop();
    }
  });
} else {
  test('--blob-redirect on a store that cannot presign is a one-line start-up error', async () => {
    const r = await runCli(['serve', '--addr', '127.0.0.1:0', '--data-dir', `/tmp/portfolio-redirect-${process.pid}`, '--blob-redirect', '5m']);
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), /^portfolio: --blob-redirect needs an object store that can presign URLs/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  test('without --blob-redirect, blob GETs serve the bytes', async () => {
    const reg = await startRegistry();
    try {
      const b = blob(randomBytes(1000));
      await pushBlob(reg.url, 'redirect/off', b);
      const res = await fetch(`${reg.url}/v2/redirect/off/blobs/${b.digest}`, { redirect: 'manual' });
      assert.equal(res.status, 200);
    } finally {
      await reg.stop();
    }
  });
}
