/**
 * Connection caps: past --max-connections in all, or --max-connections-per-client from one IP,
 * a new connection is closed at once without an answer; open connections are served as before,
 * other clients are not affected, and a closed connection frees its slot. Both are on by default.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { Agent } from 'node:http';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { send, stall } from './util.js';

/** A keep-alive connection that has been served once (so the server surely counts it). */
async function held(url: string, localAddress = '127.0.0.1'): Promise<Socket> {
  const u = new URL(url);
  const socket = connect({ host: u.hostname, port: Number(u.port), localAddress });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    let received = '';
    socket.on('connect', () => socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'));
    socket.on('data', function onData(d: Buffer) {
      received += d.toString('latin1');
      if (received.includes('\r\n\r\n')) {
        socket.off('data', onData);
        if (/^HTTP\/1\.1 200 /.test(received)) resolve();
        else reject(new Error(`held connection: ${received.slice(0, 100)}`));
      }
    });
    socket.on('close', () => reject(new Error(`held connection closed: ${received.slice(0, 100)}`)));
  });
  return socket;
}

/** A request on a fresh connection: closed at once without a byte, or answered. */
async function refused(url: string): Promise<boolean> {
  const r = await Promise.race([
    stall(url, 'GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000)),
  ]);
  assert.ok(r, 'neither answered nor closed within 5 s');
  if (r.received === '') return true;
  assert.match(r.received, /^HTTP\/1\.1 200 /);
  return false;
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('connection cap', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry({ args: ['--max-connections', '3', '--max-connections-per-client', '0'] });
  });
  after(async () => {
    await registry?.stop();
  });

  it('past --max-connections a new connection is closed unanswered; the open ones are served; a freed slot is reused', async () => {
    const sockets = [await held(registry.url), await held(registry.url, '127.0.0.2'), await held(registry.url, '127.0.0.3')];
    assert.ok(await refused(registry.url), 'a fourth connection is refused');
    // Another address is no exception to the global cap.
    const other = await send(registry.url, 'GET', '/v2/', {}, undefined, new Agent({ localAddress: '127.0.0.4' } as never)).catch((err: Error) => err);
    assert.ok(other instanceof Error, 'the cap counts every client');
    // A held connection is still served.
    const again = new Promise<string>((resolve) => sockets[0]!.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    sockets[0]!.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(await again, /^HTTP\/1\.1 200 /);
    sockets[1]!.destroy();
    await eventually('a closed connection frees its slot', async () => !(await refused(registry.url)));
    // The log line travels through the server's stdout pipe: it may trail the refusal a little.
    await eventually('the refusals are logged', async () => registry.output().includes('"limit":"max-connections"'));
    for (const s of sockets) s.destroy();
  });
});

describe('connection cap per client', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry({ args: ['--max-connections-per-client', '2'] });
  });
  after(async () => {
    await registry?.stop();
  });

  it('past --max-connections-per-client one IP is refused new connections, another IP is not', async () => {
    const sockets = [await held(registry.url), await held(registry.url)];
    assert.ok(await refused(registry.url), 'a third connection from 127.0.0.1 is refused');
    const other = await send(registry.url, 'GET', '/v2/', {}, undefined, new Agent({ localAddress: '127.0.0.2' } as never));
    assert.equal(other.status, 200, 'another client IP is served');
    sockets[0]!.destroy();
    await eventually('a closed connection frees its slot', async () => !(await refused(registry.url)));
    for (const s of sockets) s.destroy();
  });
});

describe('connection caps by default', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(async () => {
    await registry?.stop();
  });

  it('one client IP gets at most 128 connections without any flag', async () => {
    const sockets: Socket[] = [];
    for (let i = 0; i < 128; i++) sockets.push(await held(registry.url));
    assert.ok(await refused(registry.url), 'the 129th connection from 127.0.0.1 is refused');
    const other = await send(registry.url, 'GET', '/v2/', {}, undefined, new Agent({ localAddress: '127.0.0.2' } as never));
    assert.equal(other.status, 200, 'another client IP is served');
    for (const s of sockets) s.destroy();
  });
});
