/**
 * A client of one upstream registry's distribution API: plain node:http(s) so bodies stream as
 * they arrive, redirects followed (blob downloads often go to a storage host; credentials are not
 * sent there), Basic auth or the Docker token flow with the configured username/password, and a
 * deadline for the answer's headers so a dead upstream never hangs a client.
 */
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { UpstreamConfig } from './config.js';

/** The upstream could not be asked or did not answer in time: the caller may serve stale content. */
export class UpstreamUnavailable extends Error {
  constructor(
    message: string,
    /** The upstream's status when it answered (5xx, 429), else undefined. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'UpstreamUnavailable';
  }
}

export interface UpstreamResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: IncomingMessage;
}

interface Token {
  value: string;
  expiresAt: number;
}

const MAX_REDIRECTS = 5;
const MAX_TOKENS = 10_000;
/** Token answers are small; more than this is not a token endpoint. */
const MAX_TOKEN_BYTES = 64 * 1024;

export class UpstreamClient {
  /** Bearer tokens by scope; the scheme the upstream asked for, sent up front from then on. */
  private readonly tokens = new Map<string, Token>();
  private scheme: 'none' | 'basic' | 'bearer' = 'none';

  constructor(readonly config: UpstreamConfig) {}

  /**
   * `method` on `/v2/<repository>/<path>`. Answers every status (the caller maps them); throws
   * UpstreamUnavailable for network failures, time-outs, 5xx and 429 — after draining the body.
   */
  async fetch(method: 'GET' | 'HEAD', repository: string, path: string, headers: OutgoingHttpHeaders = {}): Promise<UpstreamResponse> {
    const url = `${this.config.url}/v2/${repository}/${path}`;
    const scope = `repository:${repository}:pull`;
    let response = await this.send(method, url, { ...headers, ...(await this.authorization(scope)) });
    if (response.status === 401) {
      const challenge = String(response.headers['www-authenticate'] ?? '');
      response.body.resume();
      const auth = await this.answerChallenge(challenge, scope);
      if (auth) response = await this.send(method, url, { ...headers, ...auth });
    }
    if (response.status >= 500 || response.status === 429) {
      response.body.resume();
      throw new UpstreamUnavailable(`upstream answered ${response.status}`, response.status);
    }
    return response;
  }

  private async authorization(scope: string): Promise<OutgoingHttpHeaders> {
    if (this.scheme === 'basic') return this.basic();
    if (this.scheme === 'bearer') {
      const token = this.tokens.get(scope);
      if (token && token.expiresAt > Date.now()) return { authorization: `Bearer ${token.value}` };
    }
    return {};
  }

  private basic(): OutgoingHttpHeaders {
    const c = this.config.credentials;
    return c ? { authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` } : {};
  }

  /** Headers that answer a 401's challenge, or null when there is nothing more to try. */
  private async answerChallenge(header: string, scope: string): Promise<OutgoingHttpHeaders | null> {
    const scheme = header.split(' ', 1)[0]!.toLowerCase();
    if (scheme === 'basic') {
      if (!this.config.credentials || this.scheme === 'basic') return null;
      this.scheme = 'basic';
      return this.basic();
    }
    if (scheme !== 'bearer') return null;
    const params = parseChallenge(header.slice(scheme.length));
    if (!params.realm) return null;
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? scope);
    const response = await this.send('GET', realm.toString(), { ...this.basic(), accept: 'application/json' });
    const text = await readSmall(response.body, MAX_TOKEN_BYTES);
    if (response.status !== 200) {
      if (response.status >= 500 || response.status === 429) throw new UpstreamUnavailable(`token endpoint answered ${response.status}`, response.status);
      return null; // wrong credentials or no access: the caller sees the upstream's 401
    }
    let token: string | undefined;
    let expiresIn = 60;
    try {
      const body = JSON.parse(text) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
      token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
      if (typeof body.expires_in === 'number' && body.expires_in > 0) expiresIn = body.expires_in;
    } catch {
      // not JSON: no token
    }
    if (!token) throw new UpstreamUnavailable('token endpoint answered without a token');
    this.scheme = 'bearer';
    // Renewed a little early, so a token never expires between here and the upstream.
    if (this.tokens.size >= MAX_TOKENS) this.tokens.clear(); // one per repository: bounded, refetched when needed
    this.tokens.set(scope, { value: token, expiresAt: Date.now() + Math.max(1, expiresIn - 10) * 1000 });
    return { authorization: `Bearer ${token}` };
  }

  /** One request, following redirects; the headers must arrive within the timeout. */
  private async send(method: string, url: string, headers: OutgoingHttpHeaders, hops = 0): Promise<UpstreamResponse> {
    const response = await this.once(method, url, headers);
    const location = response.headers.location;
    if (response.status >= 300 && response.status < 400 && response.status !== 304 && location) {
      response.body.resume();
      if (hops >= MAX_REDIRECTS) throw new UpstreamUnavailable('too many redirects');
      const next = new URL(location, url);
      // Credentials are for the registry, never for the storage host it redirects to.
      const sameOrigin = next.origin === new URL(url).origin;
      const { authorization: _dropped, ...rest } = headers;
      return this.send(method === 'HEAD' ? 'HEAD' : 'GET', next.toString(), sameOrigin ? headers : rest, hops + 1);
    }
    return response;
  }

  private once(method: string, url: string, headers: OutgoingHttpHeaders): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => {
      const target = new URL(url);
      const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(target, { method, headers: { 'user-agent': 'portfolio-proxy', ...headers } });
      const timer = setTimeout(() => {
        req.destroy(new UpstreamUnavailable(`upstream did not answer within ${this.config.timeoutMs} ms`));
      }, this.config.timeoutMs);
      req.once('response', (res) => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.once('error', (err) => {
        clearTimeout(timer);
        reject(err instanceof UpstreamUnavailable ? err : new UpstreamUnavailable(`upstream unreachable: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      });
      req.end();
    });
  }
}

/** `key="value",key=value` pairs of a WWW-Authenticate challenge. */
export function parseChallenge(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    out[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  }
  return out;
}

/** Reads a body of at most `limit` bytes as text (larger: cut off, the caller fails on it). */
export async function readSmall(body: IncomingMessage, limit: number): Promise<string> {
  return (await readBytes(body, limit)) ?.toString('utf8') ?? '';
}

/** A whole body of at most `limit` bytes, or null when it is larger. */
export async function readBytes(body: IncomingMessage, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += (chunk as Buffer).length;
    if (length > limit) {
      body.destroy();
      return null;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
