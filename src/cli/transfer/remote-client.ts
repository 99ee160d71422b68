/**
 * A small distribution-API client for reading a registry: Basic credentials, or the token flow
 * (a Bearer challenge sends it to the realm with those credentials, anonymous without), with the
 * token kept per scope and fetched again when it expires.
 */
import { Readable } from 'node:stream';

export interface Credentials {
  username: string;
  password: string;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export class RemoteClient {
  private readonly tokens = new Map<string, string>();
  private basicNeeded = false;

  constructor(
    readonly base: string,
    private readonly credentials: Credentials | undefined,
  ) {}

  /** A GET with authentication; `scope` is what a token must allow (`repository:NAME:pull`, `registry:catalog:*`). */
  async get(path: string, scope: string, headers: Record<string, string> = {}): Promise<Response> {
    let res = await fetch(this.base + path, { headers: { ...headers, ...this.auth(scope) } });
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get('www-authenticate'));
    await res.body?.cancel();
    if (challenge?.scheme === 'basic') {
      if (!this.credentials) throw new Error(`${this.base}: the registry asks for credentials (--username)`);
      this.basicNeeded = true;
    } else if (challenge?.scheme === 'bearer') {
      this.tokens.set(scope, await this.token(challenge.params, scope));
    } else {
      throw new Error(`${this.base}${path}: 401 without a challenge Portfolio understands`);
    }
    res = await fetch(this.base + path, { headers: { ...headers, ...this.auth(scope) } });
    if (res.status === 401) throw new Error(`${this.base}${path}: credentials refused (401)`);
    return res;
  }

  async json<T>(path: string, scope: string): Promise<{ body: T; next: string | null }> {
    const res = await this.get(path, scope, { accept: 'application/json' });
    if (res.status !== 200) throw new Error(`GET ${this.base}${path}: ${res.status} ${(await res.text()).slice(0, 200)}`);
    return { body: (await res.json()) as T, next: nextLink(res.headers.get('link')) };
  }

  async bytes(path: string, scope: string, accept: string): Promise<{ bytes: Buffer; contentType: string | undefined }> {
    const res = await this.get(path, scope, { accept });
    if (res.status !== 200) throw new Error(`GET ${this.base}${path}: ${res.status} ${(await res.text()).slice(0, 200)}`);
    return { bytes: Buffer.from(await res.arrayBuffer()), contentType: res.headers.get('content-type') ?? undefined };
  }

  /** A streamed body and its length; null on 404. */
  async stream(path: string, scope: string): Promise<{ size: number; body: Readable } | null> {
    const res = await this.get(path, scope);
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    const length = Number(res.headers.get('content-length'));
    if (res.status !== 200 || !res.body || !Number.isSafeInteger(length)) {
      await res.body?.cancel();
      throw new Error(`GET ${this.base}${path}: ${res.status}${res.status === 200 ? ' without a Content-Length' : ''}`);
    }
    return { size: length, body: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>) };
  }

  private auth(scope: string): Record<string, string> {
    const token = this.tokens.get(scope);
    if (token) return { authorization: `Bearer ${token}` };
    if (this.basicNeeded && this.credentials) return { authorization: basic(this.credentials) };
    return {};
  }

  private async token(params: Record<string, string>, scope: string): Promise<string> {
    if (!params.realm) throw new Error(`${this.base}: a Bearer challenge without a realm`);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', scope);
    if (this.credentials) url.searchParams.set('account', this.credentials.username);
    const res = await fetch(url, { headers: this.credentials ? { authorization: basic(this.credentials) } : {} });
    if (res.status !== 200) throw new Error(`token from ${url.origin}${url.pathname}: ${res.status}`);
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new Error(`token from ${url.origin}${url.pathname}: no token in the answer`);
    return token;
  }
}

function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/** `Bearer realm="…",service="…",scope="…"` → scheme and parameters. */
export function parseChallenge(header: string | null): Challenge | null {
  if (!header) return null;
  const space = header.indexOf(' ');
  const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/([A-Za-z_]+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  return { scheme, params };
}

/** The path of a `Link: </v2/…?last=…>; rel="next"` header. */
function nextLink(header: string | null): string | null {
  const m = header?.match(/<([^>]+)>\s*;\s*rel="?next"?/);
  if (!m) return null;
  const url = new URL(m[1]!, 'http://x');
  return url.pathname + url.search;
}
