/**
 * A small, efficient HTTP client for the benchmark on node:http with a keep-alive agent, so the
 * client is not the bottleneck: bodies are streamed with backpressure, and downloads can be
 * discarded without buffering.
 */
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body (empty when `discard` was set). */
  body: Buffer;
  /** Bytes of body received. */
  bytes: number;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  /** A whole body, or a lazily generated sequence of chunks (streamed with backpressure). */
  body?: Buffer | string | Iterable<Buffer>;
  /** Read and drop the response body instead of keeping it. */
  discard?: boolean;
  /** Follow 301/302/303/307/308 redirects (e.g. to object storage), up to 5. */
  followRedirects?: boolean;
  /** Idle-socket timeout: fail when no byte moves for this long (default 30 s). */
  timeoutMs?: number;
}

/** What the request-bound figures need of a client: `Client` below, or the lean `RawClient`. */
export interface HttpClient {
  url(pathOrUrl: string): URL;
  request(target: string | URL, options?: RequestOptions): Promise<Response>;
}

export class Client implements HttpClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(
    readonly base: string,
    maxSockets = 16,
  ) {
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
  }

  /** Resolves a path or a Location header against the registry's base URL. */
  url(pathOrUrl: string): URL {
    return new URL(pathOrUrl, this.base);
  }

  async request(target: string | URL, options: RequestOptions = {}): Promise<Response> {
    let url = typeof target === 'string' ? this.url(target) : target;
    for (let hops = 0; ; hops++) {
      const res = await this.once(url, options);
      const location = res.headers.location;
      if (options.followRedirects && location && [301, 302, 303, 307, 308].includes(res.status) && hops < 5) {
        url = new URL(location, url);
        // A redirect to another host (object storage) must not carry the registry's headers.
        options = { ...options, headers: {} };
        continue;
      }
      return res;
    }
  }

  private once(url: URL, options: RequestOptions): Promise<Response> {
    const { method = 'GET', headers = {}, body, discard = false, timeoutMs = 30_000 } = options;
    const isHttps = url.protocol === 'https:';
    const mod = isHttps ? https : http;
    const reqHeaders: Record<string, string | number> = { ...headers };
    if ((Buffer.isBuffer(body) || typeof body === 'string') && reqHeaders['Content-Length'] === undefined) {
      reqHeaders['Content-Length'] = Buffer.byteLength(body);
    } else if (body === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH') && reqHeaders['Content-Length'] === undefined) {
      reqHeaders['Content-Length'] = 0;
    }
    return new Promise<Response>((resolve, reject) => {
      let settled = false;
      let responded = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      const req = mod.request(
        url,
        { method, headers: reqHeaders, agent: isHttps ? this.httpsAgent : this.httpAgent, timeout: timeoutMs },
        (res) => {
          responded = true;
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on('data', (c: Buffer) => {
            bytes += c.length;
            if (!discard) chunks.push(c);
          });
          res.on('error', fail);
          res.on('end', () => {
            if (settled) return;
            settled = true;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: discard ? Buffer.alloc(0) : Buffer.concat(chunks), bytes });
          });
        },
      );
      req.on('error', fail);
      req.on('timeout', () => req.destroy(new Error(`no progress for ${timeoutMs} ms: ${method} ${url.href}`)));
      if (body === undefined) {
        req.end();
      } else if (Buffer.isBuffer(body) || typeof body === 'string') {
        req.end(body);
      } else {
        void (async () => {
          try {
            for (const chunk of body) {
              if (responded || req.destroyed) break; // the server answered early (an error)
              if (!req.write(chunk)) await once(req, 'drain');
            }
            req.end();
          } catch (err) {
            fail(err as Error);
          }
        })();
      }
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** Throws unless the response has one of the expected statuses. */
export function expect(res: Response, statuses: number | number[], what: string): Response {
  const ok = Array.isArray(statuses) ? statuses : [statuses];
  if (!ok.includes(res.status)) {
    const text = res.body.subarray(0, 500).toString();
    throw new Error(`${what}: HTTP ${res.status} (expected ${ok.join('/')})${text ? `: ${text}` : ''}`);
  }
  return res;
}

export function header(res: Response, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Adds a query parameter to an upload Location (which may already carry a query). */
export function withQuery(url: URL, key: string, value: string): URL {
  const out = new URL(url);
  out.searchParams.append(key, value);
  return out;
}
