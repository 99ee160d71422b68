/** Helpers of the auth suites: htpasswd files, credentials and small request wrappers. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { hash } from '@node-rs/bcrypt';

/** True when Apache's `htpasswd` is installed (apt-get install apache2-utils). */
export function hasApacheHtpasswd(): boolean {
  try {
    execFileSync('htpasswd', ['-nbB', '-C', '4', 'probe', 'probe'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** One `user:$2y$…` line: from `htpasswd -B` when installed, else @node-rs/bcrypt with version 2y. */
export async function htpasswdLine(user: string, password: string, cost = 5): Promise<string> {
  if (hasApacheHtpasswd()) return execFileSync('htpasswd', ['-nbB', '-C', String(cost), user, password], { encoding: 'utf8' }).trim();
  return `${user}:${(await hash(password, cost)).replace(/^\$2b\$/, '$2y$')}`;
}

export async function writeHtpasswd(path: string, users: Record<string, string>): Promise<void> {
  const lines = await Promise.all(Object.entries(users).map(([u, p]) => htpasswdLine(u, p)));
  for (const line of lines) assert.match(line, /^[^:]+:\$2y\$/, 'htpasswd entries must be $2y$ bcrypt');
  await writeFile(path, `${lines.join('\n')}\n`);
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** fetch() that reads the body, parses JSON when it can, and fails on any 5xx. */
export async function call(url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(20_000), ...init });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  assert.ok(res.status < 500, `${init.method ?? 'GET'} ${url} -> ${res.status}: ${text.slice(0, 500)}`);
  return { status: res.status, headers: res.headers, text, json };
}

/** Asserts a status and, for errors, the code of the spec's error envelope. */
export function expectError(reply: Reply, status: number, code: string, what: string): void {
  assert.equal(reply.status, status, `${what}: status (body ${reply.text.slice(0, 300)})`);
  assert.equal(reply.json?.errors?.[0]?.code, code, `${what}: error code (body ${reply.text.slice(0, 300)})`);
}

/** Parses `Bearer realm="…",service="…",scope="…"` into its parameters. */
export function parseChallenge(header: string | null): { scheme: string; params: Record<string, string> } {
  assert.ok(header, 'a WWW-Authenticate header');
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space);
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/([a-z_]+)="([^"]*)"/g)) params[m[1]!] = m[2]!;
  return { scheme, params };
}

/** Pushes an image's blobs (single POST each) and its manifest with the given headers; returns the manifest PUT's reply. */
export async function pushImageWith(
  base: string,
  repo: string,
  img: { config: { bytes: Buffer; digest: string }; layers: { bytes: Buffer; digest: string }[]; manifest: Buffer; mediaType: string; digest: string },
  reference: string,
  headers: Record<string, string>,
): Promise<Reply> {
  for (const b of [img.config, ...img.layers]) {
    const r = await call(`${base}/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: b.bytes,
    });
    if (r.status !== 201) return r;
  }
  return call(`${base}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { ...headers, 'content-type': img.mediaType }, body: img.manifest });
}

/** Follows `Link: <…>; rel="next"` from `first`, returning every page's list. */
export async function catalogPages(base: string, first: string, headers: Record<string, string>): Promise<string[][]> {
  const pages: string[][] = [];
  let next: string | undefined = first;
  while (next) {
    const r = await call(`${base}${next}`, { headers });
    assert.equal(r.status, 200, `GET ${next}: ${r.text}`);
    pages.push(r.json.repositories);
    const link = r.headers.get('link');
    next = link ? /^<([^>]+)>; rel="next"$/.exec(link)?.[1] : undefined;
    assert.ok(!link || next, `malformed Link ${link}`);
    assert.ok(pages.length < 100, 'paging does not end');
  }
  return pages;
}
