/** Upload start advertises OCI-Chunk-Min-Length where the store needs big chunks (S3), and only there. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ENGINE, startRegistry, type RunningRegistry } from '../helpers/registry.js';

let reg: RunningRegistry;
before(async () => {
  reg = await startRegistry();
});
after(async () => reg?.stop());

test(`OCI-Chunk-Min-Length on ${ENGINE}`, async () => {
  const res = await fetch(`${reg.url}/v2/hint/repo/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202);
  const hint = res.headers.get('oci-chunk-min-length');
  if (ENGINE === 'pg-s3') assert.equal(hint, String(5 * 1024 * 1024));
  else assert.equal(hint, null);
});
