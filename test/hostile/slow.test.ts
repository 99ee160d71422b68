/**
 * Slow clients: half a header and a stall, a slowloris header that drips forever, a request body
 * that stops arriving, and a download nobody reads are each cut off (--header-timeout,
 * --idle-timeout), while a slow but steady upload that outlasts the idle timeout succeeds.
 * Dribbling clients, which never fall silent long enough for the idle timeout, are cut off by
 * the transfer rate (--min-transfer-rate over --transfer-window) and, for bodies read whole
 * into memory, by --body-timeout; a steady client above the rate is not.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { blob, sha256 } from '../helpers/oci.js';
import { assertUnharmed, dribble, send, snapshot, stall, type Snapshot } from './util.js';

const TIMEOUT_MS = 1000;

describe('slow clients', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  let base: Snapshot;
  const big = blob(randomBytes(48 * 1024 * 1024));

  before(async () => {
    registry = await startRegistry({ args: ['--header-timeout', '1s', '--idle-timeout', '1s'] });
    const r = await send(registry.url, 'POST', `/v2/slow/repo/blobs/uploads/?digest=${big.digest}`, { 'content-type': 'application/octet-stream' }, big.bytes);
    assert.equal(r.status, 201, r.text);
    base = await snapshot(registry.url);
  });
  after(async () => {
    await registry?.stop();
  });

  it('half a header, then nothing: cut off after the header timeout (408)', async () => {
    const r = await stall(registry.url, 'GET /v2/ HTTP/1.1\r\nHost: x\r\nAccept: ');
    assert.ok(r.ms >= TIMEOUT_MS * 0.9, `closed after ${r.ms} ms: too early for the timeout`);
    assert.ok(r.ms < TIMEOUT_MS + 4000, `closed after ${r.ms} ms`);
    assert.match(r.received, /^HTTP\/1\.1 408 /, `got ${JSON.stringify(r.received.slice(0, 100))}`);
    await assertUnharmed(registry.url, base, 'half a header');
  });

  it('a header that drips a byte every 100 ms is cut off all the same', async () => {
    const r = await stall(registry.url, 'GET /v2/ HTTP/1.1\r\nHost: x\r\n', { every: 100, bytes: 'X' });
    assert.ok(r.ms < TIMEOUT_MS + 4000, `closed after ${r.ms} ms`);
    assert.match(r.received, /^HTTP\/1\.1 408 /);
  });

  it('a request body that stops arriving: the connection is closed and the chunk is not appended', async () => {
    const start = await send(registry.url, 'POST', '/v2/slow/repo/blobs/uploads/');
    const location = String(start.headers.location);
    const r = await stall(registry.url, `PATCH ${location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
    assert.ok(r.ms >= TIMEOUT_MS * 0.9 && r.ms < TIMEOUT_MS + 4000, `closed after ${r.ms} ms`);
    const status = await send(registry.url, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, '0-0', 'nothing appended');
    await send(registry.url, 'DELETE', location);
    await assertUnharmed(registry.url, base, 'stalled body');
  });

  it('a download nobody reads is closed after the idle timeout', async () => {
    const u = new URL(registry.url);
    const path = `/v2/slow/repo/blobs/${big.digest}`;
    let bytes = 0;
    const socket = connect({ host: u.hostname, port: Number(u.port) }, () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('data', (d: Buffer) => (bytes += d.length));
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause(); // read the first bytes, then stop reading
    // The server logs each request when its response closes; an incomplete one was cut off.
    const deadline = Date.now() + TIMEOUT_MS + 8000;
    const cut = () => registry.output().split('\n').some((l) => l.includes(`"path":"${path}"`) && l.includes('"complete":false'));
    while (!cut()) {
      assert.ok(Date.now() < deadline, 'the server did not close the stalled download');
      await new Promise((r) => setTimeout(r, 100));
    }
    socket.resume();
    await closed;
    assert.ok(bytes < big.size, `the client got ${bytes} of ${big.size} bytes: the transfer was cut`);
    await assertUnharmed(registry.url, base, 'unread download');
  });

  it('a connection that never sends anything is closed by the header timeout', async () => {
    const r = await stall(registry.url, '');
    assert.ok(r.ms < TIMEOUT_MS + 4000, `closed after ${r.ms} ms`);
  });

  it('a slow but steady upload that outlasts the idle timeout succeeds', async () => {
    const data = randomBytes(64 * 1024);
    const digest = sha256(data);
    const u = new URL(registry.url);
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: u.hostname, port: Number(u.port) }, async () => {
        socket.write(`POST /v2/slow/steady/blobs/uploads/?digest=${digest} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${data.length}\r\nConnection: close\r\n\r\n`);
        // 8 pieces, 400 ms apart: 2.8 s in all, never 1 s of silence.
        for (let i = 0; i < 8; i++) {
          socket.write(data.subarray(i * 8192, (i + 1) * 8192));
          if (i < 7) await new Promise((r) => setTimeout(r, 400));
        }
      });
      let received = '';
      socket.on('data', (d: Buffer) => (received += d.toString()));
      socket.on('error', reject);
      socket.on('close', () => resolve(received));
    });
    assert.match(reply, /^HTTP\/1\.1 201 /, reply.slice(0, 200));
    assert.equal((await send(registry.url, 'HEAD', `/v2/slow/steady/blobs/${digest}`)).status, 200);
  });
});

describe('dribbling clients', { timeout: 60_000 }, () => {
  // Idle timeout 2 s, but a byte every 100 ms keeps a connection from ever being idle.
  const WINDOW_MS = 1000;
  let registry: RunningRegistry;
  let base: Snapshot;
  const big = blob(randomBytes(48 * 1024 * 1024));

  before(async () => {
    const args = ['--idle-timeout', '2s', '--transfer-window', '1s', '--min-transfer-rate', '8K', '--body-timeout', '2s'];
    registry = await startRegistry({ args });
    const r = await send(registry.url, 'POST', `/v2/drip/repo/blobs/uploads/?digest=${big.digest}`, { 'content-type': 'application/octet-stream' }, big.bytes);
    assert.equal(r.status, 201, r.text);
    base = await snapshot(registry.url);
  });
  after(async () => {
    await registry?.stop();
  });

  it('a blob body dribbled below the minimum rate is cut off, and nothing is appended', async () => {
    const start = await send(registry.url, 'POST', '/v2/drip/repo/blobs/uploads/');
    const location = String(start.headers.location);
    const head = `PATCH ${location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n`;
    // 100 bytes every 100 ms: 1 KB/s, under the 8 KiB/s minimum.
    const r = await dribble(registry.url, head, { every: 100, bytes: 'x'.repeat(100), giveUpMs: 15_000 });
    assert.ok(r.closedByServer, `the server kept the dribbling upload open for ${r.ms} ms`);
    assert.ok(r.ms >= WINDOW_MS * 0.9 && r.ms < 3 * WINDOW_MS + 3000, `closed after ${r.ms} ms`);
    // The log line may reach us a moment after the close.
    const logged = Date.now() + 5000;
    while (!registry.output().includes('client too slow')) {
      assert.ok(Date.now() < logged, 'the transfer rate closed it');
      await new Promise((r) => setTimeout(r, 50));
    }
    const status = await send(registry.url, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, '0-0', 'nothing appended');
    await send(registry.url, 'DELETE', location);
    await assertUnharmed(registry.url, base, 'dribbled blob body');
  });

  it('a manifest body that keeps the rate but takes longer than the body timeout is cut off', async () => {
    // 16 KiB every 100 ms is well above the rate, but 1 MiB would take 6.4 s: the body timeout is 2 s.
    const head = `PUT /v2/drip/repo/manifests/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: ${1024 * 1024}\r\n\r\n`;
    const r = await dribble(registry.url, head, { every: 100, bytes: ' '.repeat(16 * 1024), giveUpMs: 15_000 });
    assert.ok(r.closedByServer, `the server kept the slow manifest open for ${r.ms} ms`);
    assert.ok(r.ms >= 1800 && r.ms < 6000, `closed after ${r.ms} ms`);
    assert.equal((await send(registry.url, 'GET', '/v2/drip/repo/manifests/slow')).status, 404);
    await assertUnharmed(registry.url, base, 'slow manifest');
  });

  it('a download read below the minimum rate is cut off', async () => {
    const u = new URL(registry.url);
    const path = `/v2/drip/repo/blobs/${big.digest}`;
    const socket = connect({ host: u.hostname, port: Number(u.port) }, () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    // Read 1 KiB every 250 ms (4 KiB/s): never idle, always under the minimum. A paused client
    // does not see the close behind the bytes it has not read: the server's log tells.
    const cut = () => registry.output().split('\n').some((l) => l.includes('client too slow') && l.includes(`"path":"${path}"`));
    let bytes = 0;
    const deadline = Date.now() + 20_000;
    while (!cut()) {
      assert.ok(Date.now() < deadline, 'the slow reader was still served after 20 s');
      await new Promise((r) => setTimeout(r, 250));
      bytes += (socket.read(1024) as Buffer | null)?.length ?? 0;
    }
    socket.on('data', (d: Buffer) => (bytes += d.length));
    await closed;
    assert.ok(bytes < big.size, `the client got ${bytes} of ${big.size} bytes: the transfer was cut`);
    await assertUnharmed(registry.url, base, 'slow reader');
  });

  it('an upload that keeps above the minimum rate for several windows succeeds', async () => {
    const data = randomBytes(96 * 1024);
    const digest = sha256(data);
    const u = new URL(registry.url);
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: u.hostname, port: Number(u.port) }, async () => {
        socket.write(`POST /v2/drip/steady/blobs/uploads/?digest=${digest} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${data.length}\r\nConnection: close\r\n\r\n`);
        // 4 KiB every 100 ms: 40 KiB/s for 2.4 s, five times the minimum.
        for (let i = 0; i < 24; i++) {
          socket.write(data.subarray(i * 4096, (i + 1) * 4096));
          await new Promise((r) => setTimeout(r, 100));
        }
      });
      let received = '';
      socket.on('data', (d: Buffer) => (received += d.toString()));
      socket.on('error', reject);
      socket.on('close', () => resolve(received));
    });
    assert.match(reply, /^HTTP\/1\.1 201 /, reply.slice(0, 200));
    assert.equal((await send(registry.url, 'HEAD', `/v2/drip/steady/blobs/${digest}`)).status, 200);
  });
});
