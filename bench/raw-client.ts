/**
 * A lean keep-alive HTTP/1.1 client on raw sockets for request-bound figures (small-image
 * pushes). node:http's client costs about 0.3 ms of CPU per request here; on 2 cores the
 * load generator's CPU comes out of the server's share, so a heavy client flattens every ratio
 * towards 1. This one writes each request with one socket write and parses just enough of the
 * response to frame it (status, headers, Content-Length or chunked body). Whole-buffer bodies
 * only; streaming uploads and downloads use `Client` from http.ts.
 */
import net from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { responseEnd } from './loadgen.js';
import type { RequestOptions, Response } from './http.js';

interface Pending {
  head: boolean;
  resolve(res: Response): void;
  reject(err: Error): void;
}

interface Connection {
  socket: net.Socket;
  buf: Buffer;
  pending: Pending | null;
  dead: boolean;
}

export class RawClient {
  private readonly host: string;
  private readonly port: number;
  private readonly hostHeader: string;
  private readonly idle: Connection[] = [];
  private readonly waiting: ((c: Connection) => void)[] = [];
  private open = 0;

  constructor(
    readonly base: string,
    private readonly maxSockets = 16,
  ) {
    const url = new URL(base);
    if (url.protocol !== 'http:') throw new Error('RawClient: only http:// URLs');
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port || 80);
    this.hostHeader = url.host;
  }

  url(pathOrUrl: string): URL {
    return new URL(pathOrUrl, this.base);
  }

  async request(target: string | URL, options: RequestOptions = {}): Promise<Response> {
    const { method = 'GET', headers = {}, body } = options;
    if (body !== undefined && !Buffer.isBuffer(body) && typeof body !== 'string') throw new Error('RawClient: whole-buffer bodies only');
    const path = typeof target === 'string' ? target : target.pathname + target.search;
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    let head = `${method} ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    if (payload || method === 'PUT' || method === 'POST' || method === 'PATCH') head += `Content-Length: ${payload?.length ?? 0}\r\n`;
    head += '\r\n';
    const conn = await this.acquire();
    return new Promise<Response>((resolve, reject) => {
      conn.pending = { head: method === 'HEAD', resolve, reject };
      conn.socket.write(payload ? Buffer.concat([Buffer.from(head, 'latin1'), payload]) : head, 'latin1');
    });
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.socket.destroy();
  }

  private acquire(): Promise<Connection> {
    const ready = this.idle.pop();
    if (ready) return Promise.resolve(ready);
    if (this.open < this.maxSockets) return Promise.resolve(this.connect());
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(conn: Connection): void {
    const next = this.waiting.shift();
    if (next) next(conn);
    else this.idle.push(conn);
  }

  private connect(): Connection {
    this.open++;
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    const conn: Connection = { socket, buf: Buffer.alloc(0), pending: null, dead: false };
    socket.on('data', (chunk: Buffer) => {
      conn.buf = conn.buf.length ? Buffer.concat([conn.buf, chunk]) : chunk;
      const p = conn.pending;
      if (!p) return;
      const end = responseEnd(conn.buf, p.head);
      if (end < 0) return;
      if (end === 0) return this.fail(conn, new Error('unparseable response'));
      const res = parse(conn.buf.subarray(0, end));
      conn.buf = conn.buf.subarray(end);
      conn.pending = null;
      if (/close/i.test(String(res.headers.connection ?? ''))) this.retire(conn);
      else this.release(conn);
      p.resolve(res);
    });
    socket.on('error', (err) => this.fail(conn, err));
    socket.on('close', () => this.fail(conn, new Error('connection closed before the response ended')));
    return conn;
  }

  private fail(conn: Connection, err: Error): void {
    const p = conn.pending;
    conn.pending = null;
    this.retire(conn);
    p?.reject(err);
  }

  /** Closes a connection for good and hands its slot to a waiting request. */
  private retire(conn: Connection): void {
    if (conn.dead) return;
    conn.dead = true;
    conn.socket.destroy();
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.open--;
    const next = this.waiting.shift();
    if (next) next(this.connect());
  }
}

function parse(raw: Buffer): Response {
  const headEnd = raw.indexOf('\r\n\r\n');
  const lines = raw.toString('latin1', 0, headEnd).split('\r\n');
  const headers: IncomingHttpHeaders = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = raw.subarray(headEnd + 4);
  const chunked = /chunked/i.test(String(headers['transfer-encoding'] ?? ''));
  const decoded = chunked ? dechunk(body) : body;
  return { status: Number(lines[0]!.slice(9, 12)), headers, body: decoded, bytes: decoded.length };
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let pos = 0; ; ) {
    const lineEnd = body.indexOf('\r\n', pos, 'latin1');
    const size = parseInt(body.toString('latin1', pos, lineEnd), 16);
    if (!(size > 0)) return Buffer.concat(parts);
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    pos = lineEnd + 2 + size + 2;
  }
}
