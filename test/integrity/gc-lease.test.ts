/**
 * Collection runs under a lease so that one collector deletes at a time. A collector whose
 * lease passed to another (it stalled past the expiry, and another process took over) must
 * stop before its next deletion, not when its next renewal happens to notice.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { blob, pushBlob } from '../helpers/oci.js';
import { CLI, s3Env, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { openStores } from '../helpers/stores.js';

/** Enough pages of links (500 each, one deleting statement per page) for the takeover to land mid-pass. */
const BLOBS = 6000;
const PAGE = 500;

let reg: RunningRegistry;
before(async () => {
  reg = await startRegistry({ args: ['--gc-interval', '0'] });
});
after(async () => reg?.stop());

test('a collector that lost its lease deletes nothing more', async () => {
  const queue = Array.from({ length: BLOBS }, (_, i) => blob(`loose ${i}`));
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let b = queue.pop(); b; b = queue.pop()) await pushBlob(reg.url, 'lease/loose', b);
    }),
  );
  const engine = await openStores(reg.dataDir, reg.engineArgs);
  try {
    const db = engine.database.db;
    const links = async () => Number((await db.selectFrom('repository_blobs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    assert.equal(await links(), BLOBS);
    const gc = spawn(process.execPath, [CLI, 'gc', '--grace', '0', '--json', ...reg.engineArgs], { env: { ...process.env, ...s3Env() }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number>((r) => gc.once('exit', (code) => r(code ?? -1)));
    // Once it is deleting, another process takes the lease over (as after an expiry).
    while ((await links()) === BLOBS) await new Promise((r) => setTimeout(r, 5));
    await db.updateTable('leases').set({ owner: 'elsewhere:1:taken-over', expires_at: Date.now() + 600_000 }).where('name', '=', 'gc').execute();
    const atTakeover = await links();
    await exited;
    const left = await links();
    assert.ok(left > 0, `the collector went on deleting after losing its lease (${atTakeover} links at the takeover, ${left} after)`);
    // At most the deletion in flight at the takeover (one page's statement) may still land.
    assert.ok(atTakeover - left <= PAGE, `${atTakeover - left} links deleted after the takeover`);
  } finally {
    await engine.registry.close();
  }
});
