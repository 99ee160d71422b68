/**
 * Helpers of the hostile-input suites: raw sockets (to lie about lengths, stall, or send bytes
 * no HTTP client would), and the checks every case ends with — the server still answers
 * `GET /v2/` with 200, and nothing was written (the catalog and the stored blobs are unchanged).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { request as httpRequest, Agent } from 'node:http';

export interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Everything the server sent. */
  raw: string;
  /** True when the server closed the connection. */
  closed: boolean;
}

/** Parses the first HTTP response in `raw` (enough for error envelopes with Content-Length). */
export function parseRaw(raw: string, closed: boolean): RawReply | null {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  const body = raw.slice(end + 4, end + 4 + length);
  return { status, headers, body, raw, closed };
}

export interface RawOptions {
  /** Half-close the socket after writing (the client says it has nothing more to send). */
  end?: boolean;
  /** How long to wait for the whole answer. */
  timeoutMs?: number;
}

/**
 * Writes `chunks` on a fresh TCP connection and collects what comes back until the server
 * closes the connection, a complete response has arrived, or the timeout fires (which fails).
 */
export function rawExchange(url: string, chunks: (string | Buffer)[], options: RawOptions = {}): Promise<RawReply> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: u.hostname, port: Number(u.port) });
    let raw = Buffer.alloc(0);
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      const reply = parseRaw(raw.toString('latin1'), closed);
      if (!closed && (!reply || Buffer.byteLength(reply.body, 'latin1') < Number(reply.headers['content-length'] ?? 0))) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (!reply) return reject(new Error(`connection closed without a response; got ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`));
      resolve(reply);
    };
    const timer = setTimeout(() => {
      settled = true;
      socket.destroy();
      reject(new Error(`no complete response within ${options.timeoutMs ?? 10_000} ms; got ${JSON.stringify(raw.toString('latin1').slice(0, 300))}`));
    }, options.timeoutMs ?? 10_000);
    socket.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', () => {
      for (const c of chunks) socket.write(c);
      if (options.end) socket.end();
    });
  });
}

/** An open socket that has sent `head` and then nothing: resolves with when and how it was closed. */
export function stall(url: string, head: string | Buffer, keepWriting?: { every: number; bytes: string }): Promise<{ ms: number; received: string; socket: Socket }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect({ host: u.hostname, port: Number(u.port) });
    let received = '';
    let drip: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(head);
      if (keepWriting) drip = setInterval(() => socket.write(keepWriting.bytes), keepWriting.every);
    });
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(drip);
      resolve({ ms: Date.now() - started, received, socket });
    });
  });
}

/**
 * Sends `head`, then `bytes` every `every` ms until the server closes the connection or
 * `giveUpMs` passes (then the client closes it): how long it lasted and who closed it.
 */
export function dribble(
  url: string,
  head: string,
  options: { every: number; bytes: string; giveUpMs: number },
): Promise<{ ms: number; received: string; closedByServer: boolean }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect({ host: u.hostname, port: Number(u.port) });
    let received = '';
    let gaveUp = false;
    let drip: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => {
      gaveUp = true;
      socket.destroy();
    }, options.giveUpMs);
    socket.on('connect', () => {
      socket.write(head);
      drip = setInterval(() => socket.write(options.bytes), options.every);
    });
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(drip);
      clearTimeout(giveUp);
      resolve({ ms: Date.now() - started, received, closedByServer: !gaveUp });
    });
  });
}

export interface Snapshot {
  repositories: string[];
  blobs: number;
  storedBytes: number;
}

/** What is stored: the catalog and the blob count and bytes (the admin usage route). */
export async function snapshot(base: string): Promise<Snapshot> {
  const catalog = await fetch(`${base}/v2/_catalog`);
  assert.equal(catalog.status, 200);
  const usage = await fetch(`${base}/_portfolio/usage`);
  assert.equal(usage.status, 200, 'the admin usage route answers');
  const u = (await usage.json()) as { blobs: number; storedBytes: number };
  return { repositories: ((await catalog.json()) as { repositories: string[] }).repositories, blobs: u.blobs, storedBytes: u.storedBytes };
}

/** The server still answers and stores exactly what it did before. */
export async function assertUnharmed(base: string, before: Snapshot, what: string): Promise<void> {
  const alive = await fetch(`${base}/v2/`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(alive.status, 200, `${what}: GET /v2/ after it`);
  assert.deepEqual(await snapshot(base), before, `${what}: something was written`);
}

/** One request with the path exactly as given, through a keep-alive agent; never throws on status. */
export function send(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer | string,
  agent?: Agent,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string; json: any; body: Buffer }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method, path, headers, agent, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = raw.toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, body: raw });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 20 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Asserts status and error code of a reply from send(). */
export function expectCode(r: { status: number; json: any; text: string }, status: number, code: string | null, what: string): void {
  assert.equal(r.status, status, `${what}: status (body ${r.text.slice(0, 300)})`);
  if (code !== null) assert.equal(r.json?.errors?.[0]?.code, code, `${what}: code (body ${r.text.slice(0, 300)})`);
}
