/**
 * The pull-through cache against real upstreams on loopback: upstream A is a second Portfolio
 * process with token auth, upstream B is CNCF distribution with htpasswd Basic auth. Each sits
 * behind a counting forwarder (test/proxy/forwarder.ts) that also plays a dead, hung or lying
 * upstream. Images are pushed to the upstreams and pulled through the cache with skopeo, and
 * every manifest and blob is compared byte for byte.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { OCI_MANIFEST } from '../helpers/oci.js';
import { ok, skopeoEnv } from '../auth/skopeo-util.js';
import { writeHtpasswd } from '../auth/util.js';
import { Forwarder } from './forwarder.js';
import { startDistribution, writeImageLayout, writeIndexLayout, type Distribution, type Layout } from './upstreams.js';

const MiB = 1024 * 1024;
const ACCEPT = [OCI_MANIFEST, 'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

describe('pull-through cache', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let upstreamA: RunningRegistry;
  let upstreamB: Distribution;
  let forwardA: Forwarder;
  let forwardB: Forwarder;
  let cache: RunningRegistry;
  let host: string;
  let first: Layout;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-proxy-'));
    env = await skopeoEnv(dir);
    await writeHtpasswd(join(dir, 'htpasswd-a'), { alice: 'alice-pw' });
    await writeHtpasswd(join(dir, 'htpasswd-b'), { bob: 'bob-pw' });
    upstreamA = await startRegistry({ args: ['--auth', 'token', '--htpasswd', join(dir, 'htpasswd-a')] });
    upstreamB = await startDistribution(join(dir, 'distribution'), join(dir, 'htpasswd-b'));
    forwardA = await new Forwarder(upstreamA.url).start();
    forwardB = await new Forwarder(upstreamB.url).start();
    await writeFile(join(dir, 'a-password'), 'alice-pw\n');
    await writeFile(
      join(dir, 'portfolio.yaml'),
      [
        'proxy:',
        `  - {prefix: a, url: "${forwardA.url}", credentials: {username: alice, password: {env: UPSTREAM_A_PASSWORD}}, tagTTL: 1h, timeout: 2s}`,
        `  - {prefix: a0, url: "${forwardA.url}", credentials: {username: alice, password: {file: ${join(dir, 'a-password')}}}, tagTTL: 0s, timeout: 2s}`,
        `  - {prefix: b, url: "${forwardB.url}/", credentials: {username: bob, password: bob-pw}, timeout: 2s, repositories: ["team/**"]}`,
        `  - {prefix: wrong-a, url: "${forwardA.url}", credentials: {username: alice, password: not-hers}, timeout: 2s}`,
        `  - {prefix: wrong-b, url: "${forwardB.url}", timeout: 2s}`,
      ].join('\n'),
    );
    cache = await startRegistry({ args: ['--config', join(dir, 'portfolio.yaml')], env: { UPSTREAM_A_PASSWORD: 'alice-pw' } });
    host = new URL(cache.url).host;
    first = await writeImageLayout(join(dir, 'first'), 'v1');
    await ok(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:alice-pw', `oci:${first.dir}:v1`, `docker://${new URL(upstreamA.url).host}/team/app:v1`], upstreamA);
    await ok(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'bob:bob-pw', `oci:${first.dir}:v1`, `docker://${new URL(upstreamB.url).host}/team/app:v1`], cache);
  });

  after(async () => {
    await cache?.stop();
    await forwardA?.stop();
    await forwardB?.stop();
    await upstreamA?.stop();
    await upstreamB?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Pulls through the cache with skopeo into a dir: layout and compares everything with `layout`. */
  async function pullAndCompare(ref: string, layout: Layout): Promise<void> {
    const out = await mkdtemp(join(dir, 'pull-'));
    await ok(env, ['copy', '--src-tls-verify=false', `docker://${host}/${ref}`, `dir:${out}`], cache);
    assert.deepEqual(await readFile(join(out, 'manifest.json')), layout.manifest, `${ref}: manifest bytes`);
    for (const [digest, bytes] of layout.blobs) {
      if (digest === layout.digest) continue;
      assert.deepEqual(await readFile(join(out, digest.slice(7))), bytes, `${ref}: blob ${digest}`);
    }
  }

  async function manifestOf(path: string): Promise<{ status: number; digest: string | null; body: Buffer }> {
    const res = await fetch(`${cache.url}/v2/${path}`, { headers: { accept: ACCEPT } });
    return { status: res.status, digest: res.headers.get('docker-content-digest'), body: Buffer.from(await res.arrayBuffer()) };
  }

  async function errorCode(res: Response): Promise<string | undefined> {
    const body = (await res.json()) as { errors?: { code: string }[] };
    return body.errors?.[0]?.code;
  }

  /** Streams a blob through the cache and returns the digest of what arrived (throws on a cut-off transfer). */
  async function blobDigest(path: string): Promise<{ status: number; digest: string }> {
    const res = await fetch(`${cache.url}/v2/${path}`);
    const hash = createHash('sha256');
    for await (const chunk of res.body!) hash.update(chunk as Uint8Array);
    return { status: res.status, digest: `sha256:${hash.digest('hex')}` };
  }

  it('pulls from a token-auth Portfolio upstream with skopeo, twice, byte for byte', async () => {
    await pullAndCompare('a/team/app:v1', first);
    const fetched = forwardA.count('GET', '/blobs/');
    await pullAndCompare('a/team/app:v1', first);
    assert.equal(forwardA.count('GET', '/blobs/'), fetched, 'the second pull fetches no blob upstream');
  });

  it('pulls from CNCF distribution with htpasswd Basic auth', async () => {
    await pullAndCompare('b/team/app:v1', first);
    await pullAndCompare(`b/team/app@${first.digest}`, first);
  });

  it('pulls a two-platform index with skopeo --all, and stores it once its children arrived', async () => {
    const multi = await writeIndexLayout(join(dir, 'multi'), 'v1');
    await ok(env, ['copy', '--all', '--dest-tls-verify=false', '--dest-creds', 'bob:bob-pw', `oci:${multi.dir}:v1`, `docker://${new URL(upstreamB.url).host}/team/multi:v1`], cache);
    const out = await mkdtemp(join(dir, 'pull-'));
    await ok(env, ['copy', '--all', '--src-tls-verify=false', `docker://${host}/b/team/multi:v1`, `dir:${out}`], cache);
    assert.deepEqual(await readFile(join(out, 'manifest.json')), multi.manifest);
    for (const child of multi.children) {
      assert.deepEqual(await readFile(join(out, `${child.digest.slice(7)}.manifest.json`)), child.manifest);
      for (const [digest, bytes] of child.blobs) if (digest !== child.digest) assert.deepEqual(await readFile(join(out, digest.slice(7))), bytes);
    }
    // The index is stored (its tag is in the local tags list) once both children and their blobs are.
    let tags: string[] = [];
    for (let i = 0; i < 1200 && !tags.includes('v1'); i++) {
      const res = await fetch(`${cache.url}/v2/b/team/multi/tags/list`);
      tags = res.status === 200 ? ((await res.json()) as { tags: string[] }).tags : [];
      if (!tags.includes('v1')) await new Promise((r) => setTimeout(r, 25));
    }
    assert.deepEqual(tags, ['v1']);
  });

  it('answers a range request for a blob still being filled', async () => {
    const image = await writeImageLayout(join(dir, 'ranged'), 'v1', 1, 4 * MiB);
    await ok(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'bob:bob-pw', `oci:${image.dir}:v1`, `docker://${new URL(upstreamB.url).host}/team/ranged:v1`], cache);
    const [layer] = [...image.blobs.keys()].filter((d) => image.blobs.get(d)!.length > MiB);
    const bytes = image.blobs.get(layer!)!;
    const [whole, ranged] = await Promise.all([
      blobDigest(`b/team/ranged/blobs/${layer}`),
      fetch(`${cache.url}/v2/b/team/ranged/blobs/${layer}`, { headers: { range: 'bytes=1000-1999' } }).then(async (r) => ({ status: r.status, body: Buffer.from(await r.arrayBuffer()) })),
    ]);
    assert.deepEqual(whole, { status: 200, digest: layer });
    assert.equal(ranged.status, 206);
    assert.deepEqual(ranged.body, bytes.subarray(1000, 2000));
    assert.equal(forwardB.count('GET', `/blobs/${layer}`), 1);
  });

  it('serves containerd mirror requests (?ns=HOST) from the upstream of that host', async () => {
    const got = await manifestOf(`team/app/manifests/v1?ns=${new URL(forwardB.url).host}`);
    assert.equal(got.status, 200);
    assert.equal(got.digest, first.digest);
    assert.deepEqual(got.body, first.manifest);
    const viaPrefix = await manifestOf(`team/app/manifests/v1?ns=a`);
    assert.equal(viaPrefix.digest, first.digest);
  });

  it('refuses pushes and deletes in cached repositories with 405 UNSUPPORTED', async () => {
    const post = await fetch(`${cache.url}/v2/a/team/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(await errorCode(post), 'UNSUPPORTED');
    const put = await fetch(`${cache.url}/v2/a/team/app/manifests/v9`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: first.manifest });
    assert.equal(put.status, 405);
    assert.equal(await errorCode(put), 'UNSUPPORTED');
    const del = await fetch(`${cache.url}/v2/a/team/app/manifests/${first.digest}`, { method: 'DELETE' });
    assert.equal(del.status, 405);
    assert.equal(await errorCode(del), 'UNSUPPORTED');
    // A repository outside every prefix is an ordinary one.
    const own = await fetch(`${cache.url}/v2/mine/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(own.status, 202);
  });

  it('answers what the upstream does not have, or may not be fetched, with 404 and no upstream challenge', async () => {
    const tag = await fetch(`${cache.url}/v2/a/team/nothing/manifests/v1`);
    assert.equal(tag.status, 404);
    assert.equal(tag.headers.get('www-authenticate'), null);
    assert.equal(await errorCode(tag), 'MANIFEST_UNKNOWN');
    const blob = await fetch(`${cache.url}/v2/a/team/app/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(blob.status, 404);
    assert.equal(await errorCode(blob), 'BLOB_UNKNOWN');
    // Refused credentials (token flow, Basic) and no credentials at all: the upstream's 401 is a 404 here.
    for (const path of ['wrong-a/team/app/manifests/v1', `wrong-b/team/app/manifests/${first.digest}`]) {
      const refused = await fetch(`${cache.url}/v2/${path}`);
      assert.equal(refused.status, 404, path);
      assert.equal(refused.headers.get('www-authenticate'), null);
      assert.equal(await errorCode(refused), 'MANIFEST_UNKNOWN');
    }
    // b only lets team/** through: nothing is asked upstream for other names.
    const before = forwardB.requests.length;
    const outside = await fetch(`${cache.url}/v2/b/other/app/manifests/v1`);
    assert.equal(outside.status, 404);
    assert.equal(forwardB.requests.length, before);
  });

  it('serves the old digest of a moved tag until its TTL ends, then the new one', async () => {
    await pullAndCompare('a0/team/app:v1', first);
    const moved = await writeImageLayout(join(dir, 'moved'), 'v1');
    await ok(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:alice-pw', `oci:${moved.dir}:v1`, `docker://${new URL(upstreamA.url).host}/team/app:v1`], upstreamA);
    // a trusts a tag for an hour: no upstream request, the old digest.
    const heads = forwardA.requests.length;
    assert.equal((await manifestOf('a/team/app/manifests/v1')).digest, first.digest);
    assert.equal(forwardA.requests.length, heads, 'a fresh tag is served without asking upstream');
    // a0's TTL is zero: one HEAD finds the new digest, which is fetched and served.
    await pullAndCompare('a0/team/app:v1', moved);
  });

  it('makes 20 concurrent pulls of one uncached 64 MiB blob cause one upstream GET', async () => {
    const big = await writeImageLayout(join(dir, 'big'), 'big', 1, 64 * MiB);
    await ok(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:alice-pw', `oci:${big.dir}:big`, `docker://${new URL(upstreamA.url).host}/team/big:v1`], upstreamA);
    const layer = [...big.blobs.keys()].find((d) => big.blobs.get(d)!.length > MiB)!;
    const results = await Promise.all(Array.from({ length: 20 }, () => blobDigest(`a/team/big/blobs/${layer}`)));
    for (const r of results) assert.deepEqual(r, { status: 200, digest: layer });
    assert.equal(forwardA.count('GET', `/blobs/${layer}`), 1);
  });

  it('goes on filling when the client hangs up, and stores nothing an upstream lied about', async () => {
    const image = await writeImageLayout(join(dir, 'cut'), 'v1', 2, 8 * MiB);
    await ok(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:alice-pw', `oci:${image.dir}:v1`, `docker://${new URL(upstreamA.url).host}/team/cut:v1`], upstreamA);
    const [cut, lied] = [...image.blobs.keys()].filter((d) => image.blobs.get(d)!.length > MiB);
    // Hang up after the first bytes: the fill still completes, so the next pull needs no upstream GET.
    const controller = new AbortController();
    const res = await fetch(`${cache.url}/v2/a/team/cut/blobs/${cut}`, { signal: controller.signal });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await reader.closed.catch(() => undefined);
    assert.deepEqual(await blobDigest(`a/team/cut/blobs/${cut}`), { status: 200, digest: cut });
    assert.equal(forwardA.count('GET', `/blobs/${cut}`), 1);

    forwardA.lieAbout.add(lied!);
    const wrong = await blobDigest(`a/team/cut/blobs/${lied}`).catch(() => null);
    assert.ok(wrong === null || wrong.digest !== lied || wrong.status !== 200, 'a client never receives a whole body with the wrong digest');
    forwardA.lieAbout.delete(lied!);
    assert.deepEqual(await blobDigest(`a/team/cut/blobs/${lied}`), { status: 200, digest: lied });
    assert.equal(forwardA.count('GET', `/blobs/${lied}`), 2, 'nothing was stored: the next request fetched again');
  });

  /** The cache's spool files: under its file store, or in the system's temporary directory with an S3 store. */
  async function spoolFiles(): Promise<string[]> {
    const found: string[] = [];
    for (const d of [join(cache.dataDir, 'objects', 'spool'), join(tmpdir(), 'portfolio-spool')]) {
      const names = await readdir(d).catch(() => [] as string[]);
      found.push(...names.filter((n) => n.startsWith(`fill-${cache.process.pid}-`)));
    }
    return found;
  }

  /** Polls `check` until it holds; fails after 30 s. */
  async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
    for (const deadline = Date.now() + 30_000; !(await check()); ) {
      if (Date.now() > deadline) assert.fail(`never: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  // A reader along that never got bytes before the release would wait forever: the timeout fails it.
  it('lets a client join a fill midway and read along; the spool goes after success and after a lie', { timeout: 120_000 }, async () => {
    const image = await writeImageLayout(join(dir, 'along'), 'v1', 2, 16 * MiB);
    await ok(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:alice-pw', `oci:${image.dir}:v1`, `docker://${new URL(upstreamA.url).host}/team/along:v1`], upstreamA);
    const [layer, lied] = [...image.blobs.keys()].filter((d) => image.blobs.get(d)!.length > MiB);
    const bytes = image.blobs.get(layer!)!;

    const hold = forwardA.hold(layer!, 4 * MiB);
    const starter = blobDigest(`a/team/along/blobs/${layer}`);
    await hold.reached;
    await eventually('the fill spools to a file', async () => (await spoolFiles()).length === 1);
    // Joins while the upstream is held: what it reads first can only come from the spool.
    const res = await fetch(`${cache.url}/v2/a/team/along/blobs/${layer}`);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const chunks: Buffer[] = [];
    let early = 0;
    while (early < MiB) {
      const { value, done } = await reader.read();
      assert.ok(!done && value, 'bytes arrive before the upstream sends the rest');
      chunks.push(Buffer.from(value));
      early += value.length;
    }
    hold.release();
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(Buffer.from(r.value));
    assert.ok(Buffer.concat(chunks).equals(bytes), 'the reader along gets the very bytes of the blob');
    assert.deepEqual(await starter, { status: 200, digest: layer });
    assert.equal(forwardA.count('GET', `/blobs/${layer}`), 1);
    await eventually('the spool is removed after the blob is stored', async () => (await spoolFiles()).length === 0);
    assert.deepEqual(await blobDigest(`a/team/along/blobs/${layer}`), { status: 200, digest: layer });
    assert.equal(forwardA.count('GET', `/blobs/${layer}`), 1, 'served from the store');

    forwardA.lieAbout.add(lied!);
    try {
      const held = forwardA.hold(lied!, 4 * MiB);
      const wrong = blobDigest(`a/team/along/blobs/${lied}`).catch(() => null);
      await held.reached;
      await eventually('the fill spools to a file', async () => (await spoolFiles()).length === 1);
      held.release();
      const got = await wrong;
      assert.ok(got === null || got.digest !== lied || got.status !== 200, 'a client never receives a whole body with the wrong digest');
      await eventually('the spool is removed after the fill failed', async () => (await spoolFiles()).length === 0);
    } finally {
      forwardA.lieAbout.delete(lied!);
    }
    assert.deepEqual(await blobDigest(`a/team/along/blobs/${lied}`), { status: 200, digest: lied });
    assert.equal(forwardA.count('GET', `/blobs/${lied}`), 2, 'nothing was stored: the next request fetched again');
  });

  it('serves cached tags and digests while the upstream is down, and fails uncached ones with 503', async () => {
    forwardA.set('down');
    try {
      await pullAndCompare('a/team/app:v1', first);
      await pullAndCompare(`a/team/app@${first.digest}`, first);
      // a0 revalidates every time: the upstream is down, so the cached tag is served stale.
      assert.equal((await manifestOf('a0/team/app/manifests/v1')).status, 200);
      const missing = await fetch(`${cache.url}/v2/a/team/other/manifests/v1`);
      assert.equal(missing.status, 503);
      assert.equal(await errorCode(missing), 'MANIFEST_UNKNOWN');
      const blob = await fetch(`${cache.url}/v2/a/team/other/blobs/sha256:${'1'.repeat(64)}`);
      assert.equal(blob.status, 503);
      assert.equal(await errorCode(blob), 'BLOB_UNKNOWN');
      // An upstream that accepts connections and never answers is given up on after the timeout.
      forwardA.set('hang');
      const hung = await fetch(`${cache.url}/v2/a/team/other/manifests/v2`);
      assert.equal(hung.status, 503);
      assert.equal(await errorCode(hung), 'MANIFEST_UNKNOWN');
    } finally {
      forwardA.set('pass');
    }
    const metrics = await (await fetch(`${cache.url}/metrics`)).text();
    assert.match(metrics, /portfolio_proxy_stale_serves_total\{upstream="a0"\} [1-9]/);
    assert.match(metrics, /portfolio_proxy_hits_total\{upstream="a",kind="blob"\} [1-9]/);
    assert.match(metrics, /portfolio_proxy_upstream_errors_total\{upstream="a"\} [1-9]/);
  });
});

