/**
 * Floods: per-client limits on requests in flight (--max-concurrent-requests) and on the request
 * rate (--rate-limit) answer 429 TOOMANYREQUESTS with Retry-After; other clients are not
 * affected, and the client is served again once it calms down.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Agent } from 'node:http';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { expectCode, send } from './util.js';

describe('floods: requests in flight per client', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry({ args: ['--max-concurrent-requests', '2'] });
  });
  after(async () => {
    await registry?.stop();
  });

  it('the third concurrent request of one client gets 429 until one finishes', async () => {
    const u = new URL(registry.url);
    const locations = [];
    for (let i = 0; i < 2; i++) locations.push(String((await send(registry.url, 'POST', '/v2/flood/blobs/uploads/')).headers.location));
    // Two uploads whose bodies are still arriving: both in flight.
    const open = locations.map(
      (location) =>
        new Promise<{ socket: ReturnType<typeof connect>; reply: Promise<string> }>((resolve) => {
          const socket = connect({ host: u.hostname, port: Number(u.port) }, () => {
            socket.write(`PATCH ${location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n`);
            let received = '';
            const reply = new Promise<string>((done) => {
              socket.on('data', (d: Buffer) => {
                received += d.toString();
                if (received.includes('\r\n\r\n')) done(received);
              });
              socket.on('close', () => done(received));
            });
            resolve({ socket, reply });
          });
          socket.on('error', () => {});
        }),
    );
    const slow = await Promise.all(open);
    // Wait until the server has both (the log line comes at the end, so ask: a third request is refused).
    const deadline = Date.now() + 5000;
    let third = await send(registry.url, 'GET', '/v2/');
    while (third.status === 200) {
      assert.ok(Date.now() < deadline, 'the third request was never refused');
      await new Promise((r) => setTimeout(r, 50));
      third = await send(registry.url, 'GET', '/v2/');
    }
    expectCode(third, 429, 'TOOMANYREQUESTS', 'third concurrent request');
    assert.equal(third.headers['retry-after'], '1');
    // Another client (another loopback address) is served.
    const other = await send(registry.url, 'GET', '/v2/', {}, undefined, new Agent({ localAddress: '127.0.0.2' } as never));
    assert.equal(other.status, 200, 'a different client IP is not limited');
    // One upload finishes: the client is served again.
    slow[0]!.socket.write('0\r\n\r\n');
    assert.match(await slow[0]!.reply, /^HTTP\/1\.1 (202|416) /);
    let again = await send(registry.url, 'GET', '/v2/');
    const deadline2 = Date.now() + 5000;
    while (again.status !== 200) {
      assert.ok(Date.now() < deadline2, `still refused after a request finished: ${again.status}`);
      again = await send(registry.url, 'GET', '/v2/');
    }
    for (const { socket } of slow) socket.destroy();
  });
});

describe('floods: request rate per client', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry({ args: ['--rate-limit', '20/s'] });
  });
  after(async () => {
    await registry?.stop();
  });

  it('a burst beyond the rate gets 429 with Retry-After; the client is served after waiting that long', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const started = Date.now();
    const replies = await Promise.all(Array.from({ length: 100 }, () => send(registry.url, 'GET', '/v2/', {}, undefined, agent)));
    const elapsed = (Date.now() - started) / 1000;
    const ok = replies.filter((r) => r.status === 200).length;
    const limited = replies.filter((r) => r.status === 429);
    assert.equal(ok + limited.length, 100, `only 200 and 429: ${[...new Set(replies.map((r) => r.status))]}`);
    assert.ok(ok >= 20, `the burst allowance (20) is served: ${ok}`);
    assert.ok(ok <= 20 + Math.ceil(elapsed * 20) + 1, `at most the rate is served: ${ok} in ${elapsed} s`);
    assert.ok(limited.length > 0);
    for (const r of limited) {
      expectCode(r, 429, 'TOOMANYREQUESTS', 'rate limited');
      assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After ${r.headers['retry-after']}`);
    }
    const other = await send(registry.url, 'GET', '/v2/', {}, undefined, new Agent({ localAddress: '127.0.0.3' } as never));
    assert.equal(other.status, 200, 'a different client IP is not limited');
    // Doing what Retry-After says is enough.
    const retry = Number(limited[limited.length - 1]!.headers['retry-after']);
    await new Promise((r) => setTimeout(r, retry * 1000));
    assert.equal((await send(registry.url, 'GET', '/v2/', {}, undefined, agent)).status, 200);
    agent.destroy();
  });
});
