/**
 * A small HTTP forwarder in front of a real upstream registry, for the cache tests: it counts the
 * requests that pass (per method and path), and can play a broken upstream — refusing
 * connections (down), never answering (hung), or flipping a byte of one blob's body (lying) — and
 * hold a blob's body midway until the test lets it go on.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export type Mode = 'pass' | 'down' | 'hang';

export class Forwarder {
  /** `METHOD PATH STATUS` of every request answered. */
  readonly requests: string[] = [];
  mode: Mode = 'pass';
  /** Blob digests whose bodies are corrupted on the way. */
  readonly lieAbout = new Set<string>();
  /** Blob digests whose bodies stop after some bytes until released. */
  private readonly holds = new Map<string, { bytes: number; reached: () => void; released: Promise<void> }>();
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  url = '';

  constructor(private readonly target: string) {}

  async start(): Promise<this> {
    const target = new URL(this.target);
    this.server = createServer((req, res) => void this.forward(target, req, res));
    this.server.on('connection', (socket) => {
      if (this.mode === 'down') {
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Successful (2xx) requests with this method whose path contains `fragment`: a 401 before a token does not count. */
  count(method: string, fragment: string): number {
    return this.requests.filter((r) => r.startsWith(`${method} `) && r.includes(fragment) && / 2\d\d$/.test(r)).length;
  }

  /**
   * Stops the next GET of a blob's body after `bytes` (the headers and those bytes pass):
   * `reached` resolves when it stops there, `release` lets the rest through.
   */
  hold(digest: string, bytes: number): { reached: Promise<void>; release(): void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedP = new Promise<void>((resolve) => (reached = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.holds.set(digest, { bytes, reached, released });
    return { reached: reachedP, release };
  }

  /** Changes the mode and drops open connections, so the next request sees it. */
  set(mode: Mode): void {
    this.mode = mode;
    for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async forward(target: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.mode === 'down') return void res.destroy();
    if (this.mode === 'hang') return; // the socket is destroyed by set() or stop()
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } });
    upstream.on('response', (answer) => {
      this.requests.push(`${req.method} ${req.url} ${answer.statusCode}`);
      const headers = { ...answer.headers };
      // A token realm or redirect of the upstream points at the upstream itself: keep it behind the forwarder.
      for (const name of ['www-authenticate', 'location'] as const) {
        const value = headers[name];
        if (typeof value === 'string') headers[name] = value.replaceAll(target.origin, this.url);
      }
      res.writeHead(answer.statusCode ?? 502, headers);
      const lie = [...this.lieAbout].some((d) => req.method === 'GET' && req.url?.endsWith(`/blobs/${d}`));
      const heldDigest = [...this.holds.keys()].find((d) => req.method === 'GET' && answer.statusCode === 200 && req.url?.endsWith(`/blobs/${d}`));
      const hold = heldDigest === undefined ? undefined : this.holds.get(heldDigest);
      if (heldDigest !== undefined) this.holds.delete(heldDigest);
      let passed = 0;
      const flip = new Transform({
        transform(chunk: Buffer, _enc, done) {
          if (lie) {
            chunk = Buffer.from(chunk);
            chunk[0] = chunk[0]! ^ 0xff;
          }
          if (hold && passed < hold.bytes && passed + chunk.length >= hold.bytes) {
            const before = chunk.subarray(0, hold.bytes - passed);
            const rest = chunk.subarray(hold.bytes - passed);
            passed += chunk.length;
            this.push(before);
            hold.reached();
            void hold.released.then(() => done(null, rest));
            return;
          }
          passed += chunk.length;
          done(null, chunk);
        },
      });
      pipeline(answer, flip, res).catch(() => res.destroy());
    });
    upstream.on('error', () => res.destroy());
    pipeline(req, upstream).catch(() => res.destroy());
  }
}
