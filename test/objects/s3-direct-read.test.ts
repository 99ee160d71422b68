/**
 * directRead's handling of the HTTP answer, against a local TCP server that answers each test's
 * bytes verbatim: the plain answers it relays, and the ones it leaves to the SDK (null).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';
import { directRead } from '../../src/backends/objects/s3-direct-read.js';

interface Answer {
  /** Pieces written one after another, each after a short pause (a head split across packets). */
  pieces: Buffer[];
  /** Close the connection after the pieces (otherwise keep it open). */
  close?: boolean;
}

/** Serves `answer` on every connection; resolves the URL and the requests it saw. */
async function server(answer: Answer): Promise<{ url: URL; requests: string[]; stop: () => Promise<void> }> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    let head = '';
    socket.on('data', async (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      requests.push(head);
      for (const piece of answer.pieces) {
        socket.write(piece);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      if (answer.close) socket.end();
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}/bucket/some/key?X-Amz-Signature=abc`),
    requests,
    stop: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => srv.close(() => resolve()));
    },
  };
}

function head(status: string, headers: Record<string, string | number>): Buffer {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  return Buffer.from(`HTTP/1.1 ${status}\r\n${lines.join('')}\r\n`, 'latin1');
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function sink(): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return {
    sink: new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(Buffer.from(chunk));
        done();
      },
    }),
    bytes: () => Buffer.concat(chunks),
  };
}

test('relays a 200 whose head arrives in pieces, with body bytes in the head packet', async () => {
  const body = randomBytes(700 * 1024);
  const h = head('200 OK', { 'Content-Length': body.length, ETag: '"x"' });
  const srv = await server({ pieces: [h.subarray(0, 10), h.subarray(10), body.subarray(0, 100), body.subarray(100)], close: true });
  try {
    const read = await directRead(srv.url);
    assert.ok(read);
    assert.ok((await collect(read)).equals(body));
    assert.match(srv.requests[0]!, /^GET \/bucket\/some\/key\?X-Amz-Signature=abc HTTP\/1\.1\r\n/);
    assert.match(srv.requests[0]!, /\r\nHost: 127\.0\.0\.1:\d+\r\n/);
    assert.doesNotMatch(srv.requests[0]!, /\r\nRange:/);

    const second = await directRead(srv.url);
    const out = sink();
    await second!.sendTo(out.sink);
    assert.ok(out.bytes().equals(body));
  } finally {
    await srv.stop();
  }
});

test('asks for a range and relays the 206', async () => {
  const body = randomBytes(1000);
  const srv = await server({ pieces: [Buffer.concat([head('206 Partial Content', { 'content-length': 1000, 'Content-Range': 'bytes 5-1004/5000' }), body])], close: true });
  try {
    const read = await directRead(srv.url, { start: 5, end: 1004 });
    assert.ok((await collect(read!)).equals(body));
    assert.match(srv.requests[0]!, /\r\nRange: bytes=5-1004\r\n/);
  } finally {
    await srv.stop();
  }
});

test('bytes past the Content-Length are not relayed', async () => {
  const body = randomBytes(100);
  const srv = await server({ pieces: [head('200 OK', { 'Content-Length': 100 }), body, Buffer.from('trailing garbage')], close: true });
  try {
    const read = await directRead(srv.url);
    const out = sink();
    await read!.sendTo(out.sink);
    assert.ok(out.bytes().equals(body));
  } finally {
    await srv.stop();
  }
});

const leftToSdk: [name: string, answer: Answer, range?: { start: number; end: number }][] = [
  ['an error status', { pieces: [head('404 Not Found', { 'Content-Length': 9 }), Buffer.from('NoSuchKey')], close: true }],
  ['a redirect', { pieces: [head('307 Temporary Redirect', { Location: 'http://elsewhere/', 'Content-Length': 0 })], close: true }],
  ['a chunked body', { pieces: [head('200 OK', { 'Transfer-Encoding': 'chunked' }), Buffer.from('3\r\nabc\r\n0\r\n\r\n')], close: true }],
  ['no Content-Length', { pieces: [head('200 OK', {}), Buffer.from('abc')], close: true }],
  ['a malformed Content-Length', { pieces: [head('200 OK', { 'Content-Length': '1e3' })], close: true }],
  ['a whole object when a range was asked for', { pieces: [head('200 OK', { 'Content-Length': 10 }), Buffer.alloc(10)], close: true }, { start: 0, end: 4 }],
  ['a range of another length', { pieces: [head('206 Partial Content', { 'Content-Length': 4 }), Buffer.alloc(4)], close: true }, { start: 0, end: 4 }],
  ['no HTTP at all', { pieces: [Buffer.from('SSH-2.0-OpenSSH\r\n\r\n')], close: true }],
  ['a connection closed before the head ended', { pieces: [Buffer.from('HTTP/1.1 200 OK\r\nContent-Le')], close: true }],
];
for (const [name, answer, range] of leftToSdk) {
  test(`leaves ${name} to the SDK`, async () => {
    const srv = await server(answer);
    try {
      assert.equal(await directRead(srv.url, range), null);
    } finally {
      await srv.stop();
    }
  });
}

test('leaves a refused connection to the SDK', async () => {
  const srv = await server({ pieces: [] });
  await srv.stop();
  assert.equal(await directRead(srv.url), null);
});

test('leaves an https URL to the SDK, whatever answers on its port', async () => {
  const body = randomBytes(100);
  const srv = await server({ pieces: [head('200 OK', { 'Content-Length': body.length }), body], close: true });
  try {
    const url = new URL(srv.url);
    url.protocol = 'https:';
    assert.equal(url.port, srv.url.port);
    assert.equal(await directRead(url), null);
    assert.equal(srv.requests.length, 0, 'nothing was sent in the clear');
  } finally {
    await srv.stop();
  }
});

test('a body cut short fails the stream and the send', async () => {
  const srv = await server({ pieces: [head('200 OK', { 'Content-Length': 1000 }), Buffer.alloc(600)], close: true });
  try {
    await assert.rejects(collect((await directRead(srv.url))!), /closed 400 bytes before the object's end/);
    await assert.rejects((await directRead(srv.url))!.sendTo(sink().sink), /closed 400 bytes before the object's end/);
  } finally {
    await srv.stop();
  }
});

test('after the body, the connection is left for the server to close', async () => {
  const body = randomBytes(300 * 1024);
  let clientEnded = false;
  let serverSocket: net.Socket | null = null;
  const srv = net.createServer((socket) => {
    serverSocket = socket;
    socket.on('error', () => {});
    socket.on('end', () => (clientEnded = true));
    socket.once('data', () => socket.write(Buffer.concat([head('200 OK', { 'Content-Length': body.length }), body])));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = srv.address() as net.AddressInfo;
    const read = await directRead(new URL(`http://127.0.0.1:${port}/b/k`));
    const out = sink();
    await read!.sendTo(out.sink);
    assert.ok(out.bytes().equals(body));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(clientEnded, false, 'Portfolio does not close first (its side would hold the TIME_WAIT)');
    const closed = new Promise((resolve) => serverSocket!.once('close', resolve));
    serverSocket!.end();
    await closed;
    assert.equal(clientEnded, true, 'it closes once the server has');
  } finally {
    await new Promise((resolve) => srv.close(resolve));
  }
});
