/**
 * The web interface's static files (built by `npm run build` into dist/ui), read once at start
 * and served from memory under `/ui/`: hashed assets with a year's cache lifetime, the page
 * itself revalidated every time, gzip when the client takes it. Every path under `/ui/` that
 * is not an asset is the page (the interface routes on the client).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { errors } from '../core/errors.js';

export const UI_PREFIX = '/ui/';

interface Asset {
  body: Buffer;
  gzip: Buffer;
  type: string;
  immutable: boolean;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
};

export class UiAssets {
  private readonly assets = new Map<string, Asset>();

  /** Reads the built interface from `dir` (index.html and assets/). Throws when it is not built. */
  constructor(dir: string) {
    const add = (path: string, rel: string) => {
      const body = readFileSync(path);
      this.assets.set(rel, { body, gzip: gzipSync(body, { level: 9 }), type: TYPES[extname(rel)] ?? 'application/octet-stream', immutable: rel.startsWith('assets/') });
    };
    add(join(dir, 'index.html'), 'index.html');
    const assetsDir = join(dir, 'assets');
    for (const name of readdirSync(assetsDir)) if (statSync(join(assetsDir, name)).isFile()) add(join(assetsDir, name), `assets/${name}`);
  }

  serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') throw errors.unsupported(`method ${method} is not allowed`);
    if (path === '/ui') {
      res.writeHead(301, { Location: UI_PREFIX, 'Content-Length': '0' });
      res.end();
      return;
    }
    const rel = path.slice(UI_PREFIX.length);
    let asset = this.assets.get(rel);
    if (!asset) {
      if (rel.startsWith('assets/')) throw errors.endpointUnknown();
      asset = this.assets.get('index.html')!;
    }
    const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gzip ? asset.gzip : asset.body;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': asset.type,
      'Content-Length': String(body.length),
      'Cache-Control': asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      Vary: 'Accept-Encoding',
      ...(gzip ? { 'Content-Encoding': 'gzip' } : {}),
    });
    res.end(method === 'HEAD' ? undefined : body);
  }
}
