/**
 * The orphan scan (fsck --repair, and collection) deletes objects that no blob or upload row
 * names. An upload completing during the scan moves its key from the uploads table to the
 * blobs table in one transaction; the scan must see one side or the other, never neither, or
 * it deletes the bytes of a blob it just acknowledged.
 *
 * The race is timing-dependent: many sessions with bytes in the store complete while repairs
 * run back to back; every acknowledged blob must then read back whole.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { sha256 } from '../helpers/oci.js';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';

const SESSIONS = 400;
/** Repairs running side by side while the sessions complete. */
const REPAIRERS = 3;

let reg: RunningRegistry;
before(async () => {
  reg = await startRegistry({ args: ['--gc-interval', '0'] });
});
after(async () => reg?.stop());

test('an upload completing during fsck --repair keeps its bytes', async () => {
  // Past the inline limit, so each session's bytes are an object at the session's key.
  // 16 at a time: one client address may hold only so many connections (docs/limits.md).
  const sessions: { repo: string; bytes: Buffer; location: URL }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < SESSIONS; i = next++) {
        const bytes = randomBytes(70 * 1024);
        const post = await fetch(`${reg.url}/v2/orphans/r${i % 8}/blobs/uploads/`, { method: 'POST' });
        const location = new URL(post.headers.get('location')!, reg.url);
        const patch = await fetch(location, { method: 'PATCH', headers: { 'content-range': `0-${bytes.length - 1}` }, body: bytes });
        assert.equal(patch.status, 202);
        sessions.push({ repo: `orphans/r${i % 8}`, bytes, location: new URL(patch.headers.get('location')!, reg.url) });
      }
    }),
  );
  let repairing = true;
  const repairs = Promise.all(
    Array.from({ length: REPAIRERS }, async () => {
      while (repairing) {
        const r = await runCli(['fsck', '--repair', '--grace', '0', '--json', ...reg.engineArgs]);
        assert.ok(r.code === 0 || r.code === 1, r.stderr);
      }
    }),
  );
  // Completions start once the repairs are under way.
  await new Promise((r) => setTimeout(r, 1500));
  const queue = [...sessions];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let s = queue.pop(); s; s = queue.pop()) {
        s.location.searchParams.set('digest', sha256(s.bytes));
        const put = await fetch(s.location, { method: 'PUT' });
        assert.equal(put.status, 201, await put.text());
      }
    }),
  );
  repairing = false;
  await repairs;
  const broken: string[] = [];
  for (const s of sessions) {
    const get = await fetch(`${reg.url}/v2/${s.repo}/blobs/${sha256(s.bytes)}`).catch(() => null);
    const bytes = get ? await get.arrayBuffer().then((b) => Buffer.from(b), () => null) : null;
    if (get?.status !== 200 || !bytes?.equals(s.bytes)) broken.push(`${s.repo}@${sha256(s.bytes)} (${get?.status ?? 'no response'})`);
  }
  const check = await runCli(['fsck', '--json', ...reg.engineArgs]);
  assert.deepEqual(broken, [], `${broken.length} acknowledged blobs lost their bytes`);
  assert.equal(check.code, 0, check.stdout);
});
