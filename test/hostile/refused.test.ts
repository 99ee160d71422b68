/**
 * Refused bodies: a request refused for who sends it (401) is answered at once, and of its body
 * at most 64 KiB is read, within a short deadline (the body timeout, at most 5 s); a larger
 * body is not read at all (Connection: close). A dribbling refused client cannot hold a
 * connection open.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { writeHtpasswd } from '../auth/util.js';
import { dribble, parseRaw } from './util.js';

describe('refused bodies', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-refused-'));
    const htpasswd = join(dir, 'htpasswd');
    await writeHtpasswd(htpasswd, { alice: 'secret' });
    // No transfer rate here: the refused body's own deadline is what is tested.
    registry = await startRegistry({ args: ['--htpasswd', htpasswd, '--body-timeout', '1s', '--min-transfer-rate', '0', '--idle-timeout', '60s'] });
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const put = (length: number) =>
    `PUT /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: ${length}\r\n\r\n`;

  it('a small refused body that dribbles: 401 at once, the connection closed after the deadline', async () => {
    // 100 bytes every 100 ms would take 60 s; the idle timeout (60 s) never fires.
    const r = await dribble(registry.url, put(60_000), { every: 100, bytes: ' '.repeat(100), giveUpMs: 15_000 });
    assert.equal(parseRaw(r.received, true)?.status, 401, r.received.slice(0, 200));
    assert.ok(r.closedByServer, `the refused client was drained for ${r.ms} ms`);
    assert.ok(r.ms >= 900 && r.ms < 5000, `closed after ${r.ms} ms`);
  });

  it('a refused body over 64 KiB is not read: 401 with Connection: close', async () => {
    const r = await dribble(registry.url, put(200_000), { every: 100, bytes: ' '.repeat(100), giveUpMs: 15_000 });
    const reply = parseRaw(r.received, true);
    assert.equal(reply?.status, 401, r.received.slice(0, 200));
    assert.equal(reply?.headers.connection, 'close');
    assert.ok(r.closedByServer && r.ms < 3000, `closed after ${r.ms} ms`);
  });
});
