/**
 * Memory is taken as bytes arrive: many uploads that have sent a little and then go slow do not
 * make the server reserve a part buffer each (on S3, 8 MiB per running append before the fix).
 * Measured from outside, as the server process's address space (/proc/PID/status VmSize):
 * bytes reserved but not yet written do not show in its resident size.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { send } from './util.js';

const MiB = 1024 * 1024;
const SLOW_UPLOADS = 48;

async function addressSpaceMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmSize:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

describe('memory of slow uploads', { timeout: 60_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(async () => {
    await registry?.stop();
  });

  it(`${SLOW_UPLOADS} uploads that sent 1 KiB each hold about what they sent`, async (t) => {
    // Warm up: full-size appends, so reusable buffers and allocator arenas exist before measuring.
    const full = Buffer.alloc(9 * MiB, 1);
    for (let i = 0; i < 2; i++) {
      const start = await send(registry.url, 'POST', '/v2/memory/warm/blobs/uploads/');
      const r = await send(registry.url, 'PATCH', String(start.headers.location), { 'content-type': 'application/octet-stream' }, full);
      assert.equal(r.status, 202, r.text);
    }
    const pid = registry.process.pid!;
    const before = await addressSpaceMiB(pid);
    const u = new URL(registry.url);
    const sockets: Socket[] = [];
    for (let i = 0; i < SLOW_UPLOADS; i++) {
      const start = await send(registry.url, 'POST', '/v2/memory/slow/blobs/uploads/');
      const socket = connect({ host: u.hostname, port: Number(u.port) });
      socket.on('error', () => {});
      socket.write(`PATCH ${start.headers.location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${16 * MiB}\r\n\r\n`);
      socket.write(Buffer.alloc(1024, 2));
      sockets.push(socket);
    }
    // Every upload is in its handler once the server answers a later request.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await send(registry.url, 'GET', '/v2/')).status, 200);
    const grown = (await addressSpaceMiB(pid)) - before;
    t.diagnostic(`address space grew by ${grown.toFixed(1)} MiB for ${SLOW_UPLOADS} slow uploads`);
    for (const s of sockets) s.destroy();
    // A part buffer each would be 8 MiB apiece (384 MiB); allow for allocator noise.
    assert.ok(grown < 128, `the server reserved ${grown.toFixed(1)} MiB for ${SLOW_UPLOADS} uploads of 1 KiB each`);
  });
});
