/**
 * Helpers for the HTTP conformance suite (test/http/*.test.ts).
 *
 * Every request goes through `http()`, which reads the whole body and fails the test on any
 * 5xx: no request in this suite may make the server fail.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { sha256, pushImage, type Image } from '../helpers/oci.js';
import { startRegistry, type RunningRegistry, type StartOptions } from '../helpers/registry.js';

export interface Res {
  method: string;
  url: string;
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
}

/** A compact description of a response, for assertion messages. */
export function describeRes(res: Res): string {
  const headers = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n  ');
  const text = res.text.length > 600 ? `${res.text.slice(0, 600)}…` : res.text;
  return `${res.method} ${res.url} -> ${res.status}\n  ${headers}\n  body: ${text}`;
}

export const REQUEST_TIMEOUT_MS = 30_000;

/** fetch() that reads the body and asserts the server did not answer with a 5xx. */
export async function http(url: string | URL, init: RequestInit = {}): Promise<Res> {
  const method = init.method ?? 'GET';
  // A hung request fails its test instead of stalling the whole suite.
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...init });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    throw new Error(`${method} ${String(url)} failed without a response: ${e.name}: ${e.message}${e.cause ? ` (cause: ${e.cause.code ?? ''} ${e.cause.message ?? ''})` : ''}`, { cause: err });
  }
  const body = Buffer.from(await response.arrayBuffer());
  const res: Res = { method, url: String(url), status: response.status, headers: response.headers, body, text: body.toString('utf8') };
  assertNo5xx(res);
  return res;
}

/** Wraps a Response obtained elsewhere (e.g. from the oci.ts helpers) into a Res. */
export async function toRes(response: Response, method: string): Promise<Res> {
  const body = Buffer.from(await response.arrayBuffer());
  const res: Res = { method, url: response.url, status: response.status, headers: response.headers, body, text: body.toString('utf8') };
  assertNo5xx(res);
  return res;
}

/** pushImage() from the shared helpers, asserting the manifest PUT answered 201. */
export async function pushImageOk(base: string, repo: string, img: Image, reference?: string): Promise<Res> {
  const res = await toRes(await pushImage(base, repo, img, reference), 'PUT');
  expectStatus(res, 201);
  return res;
}

/**
 * Scans the server's log for requests answered with a 5xx (including ones whose answer the
 * client never read, e.g. aborted uploads) and for error-level entries. Call in after().
 */
export function assertServerLogClean(output: string): void {
  const problems: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { level?: number; status?: number; msg?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    if ((typeof entry.status === 'number' && entry.status >= 500) || (typeof entry.level === 'number' && entry.level >= 50)) {
      problems.push(line.length > 700 ? `${line.slice(0, 700)}…` : line);
    }
  }
  assert.deepEqual(problems, [], `the server logged 5xx answers or errors:\n${problems.join('\n')}`);
}

export function assertNo5xx(res: Res): void {
  assert.ok(res.status < 500, `server error (5xx) — no request may produce one:\n${describeRes(res)}`);
}

/**
 * Sends a request with the path exactly as given (fetch/URL would normalise `..` segments).
 * Resolves with the same shape as http().
 */
export function rawRequest(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Res> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, method, path, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => {
          const buf = Buffer.concat(chunks);
          const h = new Headers();
          for (const [k, v] of Object.entries(response.headers)) {
            if (v === undefined) continue;
            for (const item of Array.isArray(v) ? v : [v]) h.append(k, item);
          }
          const res: Res = { method, url: `${base}${path}`, status: response.statusCode ?? 0, headers: h, body: buf, text: buf.toString('utf8') };
          try {
            assertNo5xx(res);
            resolve(res);
          } catch (e) {
            reject(e);
          }
        });
        response.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

export function expectStatus(res: Res, status: number | number[]): void {
  const allowed = Array.isArray(status) ? status : [status];
  assert.ok(allowed.includes(res.status), `expected status ${allowed.join(' or ')}:\n${describeRes(res)}`);
}

export interface ErrorEntry {
  code: string;
  message?: unknown;
  detail?: unknown;
}

/**
 * Asserts an error response: the status, `Content-Type: application/json` and the spec's
 * envelope `{"errors":[{"code","message","detail"}]}` with one of the expected codes.
 * With `codes` omitted any well-formed code is accepted.
 */
export function expectError(res: Res, status: number | number[], codes?: string | string[]): ErrorEntry[] {
  expectStatus(res, status);
  return expectEnvelope(res, codes);
}

/**
 * The codes an error body may carry: distribution-spec v1.1.1 "Error Codes", plus TAG_INVALID,
 * which the spec names among the legacy codes clients may meet.
 */
export const SPEC_ERROR_CODES: readonly string[] = [
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS',
  'TAG_INVALID',
];

/** An error answered with a spec code whose Portfolio-specific reason is in `detail.reason`. */
export function expectReason(res: Res, status: number, code: string, reason: string): ErrorEntry {
  const entry = expectError(res, status, code)[0]!;
  const detail = entry.detail as { reason?: unknown } | null | undefined;
  assert.equal(detail?.reason, reason, `expected detail.reason ${reason}:\n${describeRes(res)}`);
  return entry;
}

export function expectEnvelope(res: Res, codes?: string | string[]): ErrorEntry[] {
  const contentType = res.headers.get('content-type') ?? '';
  assert.match(contentType, /^application\/json\s*(;|$)/i, `error response must be application/json:\n${describeRes(res)}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.text);
  } catch {
    assert.fail(`error body is not JSON:\n${describeRes(res)}`);
  }
  assert.ok(parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed), `error body must be an object:\n${describeRes(res)}`);
  const errors = (parsed as { errors?: unknown }).errors;
  assert.ok(Array.isArray(errors) && errors.length > 0, `error body must have a non-empty "errors" array:\n${describeRes(res)}`);
  for (const e of errors as unknown[]) {
    assert.ok(e !== null && typeof e === 'object', `each error must be an object:\n${describeRes(res)}`);
    const entry = e as ErrorEntry;
    assert.equal(typeof entry.code, 'string', `error code must be a string:\n${describeRes(res)}`);
    assert.match(entry.code, /^[A-Z_]+$/, `error code must be uppercase letters and underscores:\n${describeRes(res)}`);
    assert.ok(SPEC_ERROR_CODES.includes(entry.code), `error code ${entry.code} is not one of the spec's:\n${describeRes(res)}`);
    if ('message' in entry) assert.equal(typeof entry.message, 'string', `error message must be a string:\n${describeRes(res)}`);
  }
  if (codes !== undefined) {
    const allowed = Array.isArray(codes) ? codes : [codes];
    const got = (errors as ErrorEntry[]).map((e) => e.code);
    assert.ok(
      got.some((c) => allowed.includes(c)),
      `expected error code ${allowed.join(' or ')}, got ${got.join(', ')}:\n${describeRes(res)}`,
    );
  }
  return errors as ErrorEntry[];
}

export function header(res: Res, name: string): string {
  const value = res.headers.get(name);
  assert.ok(value !== null, `missing header ${name}:\n${describeRes(res)}`);
  return value;
}

export function json<T = Record<string, unknown>>(res: Res): T {
  try {
    return JSON.parse(res.text) as T;
  } catch {
    assert.fail(`body is not JSON:\n${describeRes(res)}`);
  }
}

/** Asserts the body of a HEAD response is empty. */
export function expectNoBody(res: Res): void {
  assert.equal(res.body.length, 0, `HEAD response must have no body:\n${describeRes(res)}`);
}

/** Resolves a Location header (relative or absolute) against the registry. */
export function location(res: Res, base: string): URL {
  return new URL(header(res, 'location'), base);
}

/** `url` with extra query parameters appended (keeps the parameters already there). */
export function withQuery(url: URL | string, params: Record<string, string>): URL {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.append(k, v);
  return u;
}

let counter = 0;
/** A repository name unique to this process: `<prefix>-<n>-<random>`. */
export function repoName(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}-${randomBytes(3).toString('hex')}`;
}

/**
 * Parses a `Link: <url>; rel="next"` header. Returns null when absent and fails on a
 * malformed header.
 */
export function nextLink(res: Res, base: string): URL | null {
  const value = res.headers.get('link');
  if (value === null) return null;
  const m = /^\s*<([^>]+)>\s*;\s*rel="?next"?\s*$/.exec(value);
  assert.ok(m, `Link header must be <url>; rel="next", got ${value}`);
  return new URL(m[1]!, base);
}

/** Byte-order (code unit) comparison, as the registry must sort tags and repositories. */
export function byteSort(values: string[]): string[] {
  return [...values].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** The same JSON document re-serialised with unusual whitespace, to prove verbatim storage. */
export function reformat<T extends { manifest: Buffer; digest: string }>(m: T): T {
  const pretty = `  ${JSON.stringify(JSON.parse(m.manifest.toString('utf8')), null, 3)}\n\n`;
  const manifest = Buffer.from(pretty);
  return { ...m, manifest, digest: sha256(manifest) };
}

/** PUTs a manifest document. */
export function putManifest(base: string, repo: string, reference: string, manifest: Buffer, contentType: string): Promise<Res> {
  return http(`${base}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': contentType }, body: manifest });
}

/** Polls `check` until it returns true or the timeout elapses; returns whether it succeeded. */
export async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const OCTET = 'application/octet-stream';

/**
 * One registry for a test file: started before its tests (its URL handed to `onStart`), stopped
 * after them, and its log then checked for 5xx answers the client never read (aborted
 * requests) and logged errors.
 */
export function useRegistry(options: StartOptions, onStart: (url: string) => void): void {
  let reg: RunningRegistry | undefined;
  before(async () => {
    reg = await startRegistry(options);
    onStart(reg.url);
  });
  after(async () => {
    await reg?.stop();
    assertServerLogClean(reg?.output() ?? '');
  });
}
