/**
 * `serve --workers 2`: two processes on one listener and one store. Pushes and pulls from many
 * connections agree; a chunked upload whose PATCHes arrive on separate connections (so, with
 * round-robin, on different workers) completes with the right bytes; background collection runs
 * in one worker only; a worker killed with SIGKILL mid-push loses nothing acknowledged, and the
 * primary starts another in its place.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeHtpasswd } from '../auth/util.js';
import { blob, image, pushImage, sha256 } from '../helpers/oci.js';
import { ENGINE, freshEngine, runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { Ledger, pushAnchors, runWorkload, verifyLedger } from '../helpers/workload.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LogLine {
  msg?: string;
  worker?: number;
  pid?: number;
  method?: string;
  path?: string;
  status?: number;
}

function logLines(server: RunningRegistry): LogLine[] {
  return server
    .output()
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as LogLine];
      } catch {
        return [];
      }
    });
}

/** Workers that have logged `listening`, by worker id. */
function listening(server: RunningRegistry): Map<number, number> {
  return new Map(logLines(server).flatMap((l) => (l.msg === 'listening' && l.worker !== undefined && l.pid !== undefined ? [[l.worker, l.pid] as const] : [])));
}

async function until(what: string, check: () => boolean | Promise<boolean>, server: RunningRegistry): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await check()) return;
    await sleep(100);
  }
  assert.fail(`${what} did not happen:\n${server.output().slice(-4000)}`);
}

async function startWorkers(args: string[] = []): Promise<RunningRegistry> {
  const server = await startRegistry({ args: ['--workers', '2', ...args] });
  await until('both workers listening', () => listening(server).size === 2, server);
  return server;
}

/** One request on a connection of its own (no keep-alive), so round-robin may hand it to either worker. */
function once(url: string, method: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, connection: 'close' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function metric(text: string, line: string): number {
  const found = text.split('\n').find((l) => l.startsWith(line + ' '));
  return found ? Number(found.slice(line.length + 1)) : NaN;
}

test(`serve --workers 2 (${ENGINE}): pushes and pulls over many connections agree`, { timeout: 180_000 }, async () => {
  const server = await startWorkers();
  try {
    const images = Array.from({ length: 24 }, () => image({ layers: [blob(), blob(randomBytes(100 * 1024))] }));
    // Many clients at once, each on its own connections.
    await Promise.all(
      images.map(async (img, i) => {
        const res = await pushImage(server.url, `workers/app${i % 4}`, img, `v${i}`);
        assert.equal(res.status, 201, await res.text());
      }),
    );
    const pulls = await Promise.all(
      images.flatMap((img, i) => [
        once(`${server.url}/v2/workers/app${i % 4}/manifests/v${i}`, 'GET', { accept: img.mediaType }),
        once(`${server.url}/v2/workers/app${i % 4}/blobs/${img.layers[1]!.digest}`, 'GET', {}),
      ]),
    );
    images.forEach((img, i) => {
      const manifest = pulls[2 * i]!;
      const layer = pulls[2 * i + 1]!;
      assert.equal(manifest.status, 200);
      assert.equal(manifest.headers['docker-content-digest'], img.digest);
      assert.deepEqual(manifest.body, img.manifest);
      assert.equal(layer.status, 200);
      assert.equal(sha256(layer.body), img.layers[1]!.digest);
    });
    const tags = await once(`${server.url}/v2/workers/app0/tags/list`, 'GET', {});
    assert.deepEqual((JSON.parse(tags.body.toString()) as { tags: string[] }).tags.sort(), images.flatMap((_, i) => (i % 4 === 0 ? [`v${i}`] : [])).sort());
    // Both workers answered some of it.
    const served = new Set(logLines(server).flatMap((l) => (l.msg === 'request' && l.worker !== undefined ? [l.worker] : [])));
    assert.equal(served.size, 2, 'one worker served every request');
    // Any worker's scrape counts every worker's requests.
    const first = await once(`${server.url}/metrics`, 'GET', {});
    const second = await once(`${server.url}/metrics`, 'GET', {});
    const count = (text: string) => metric(text, 'portfolio_http_requests_total{route="manifests",method="GET",status="200"}');
    assert.equal(count(first.body.toString()), images.length);
    assert.equal(count(second.body.toString()), images.length);
    assert.equal(metric(first.body.toString(), 'portfolio_workers'), 2);
  } finally {
    await server.stop();
  }
});

test(`serve --workers 2 (${ENGINE}): a chunked upload whose PATCHes land on different workers completes`, { timeout: 180_000 }, async () => {
  const server = await startWorkers();
  try {
    let crossed = 0;
    // Round-robin alternates connections between the workers; a few uploads make a crossing certain.
    for (let n = 0; n < 8 && crossed < 2; n++) {
      // Past the inline limit (64 KiB), so the bytes go to the object store and the hash state is in memory.
      const chunks = [randomBytes(80 * 1024), randomBytes(80 * 1024), randomBytes(80 * 1024), randomBytes(1000)];
      const whole = Buffer.concat(chunks);
      const digest = sha256(whole);
      const started = await once(`${server.url}/v2/workers/chunked/blobs/uploads/`, 'POST', { 'content-length': '0' });
      assert.equal(started.status, 202);
      let location = new URL(String(started.headers.location), server.url).toString();
      let offset = 0;
      for (const chunk of chunks) {
        const res = await once(location, 'PATCH', { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}`, 'content-length': String(chunk.length) }, chunk);
        assert.equal(res.status, 202, res.body.toString());
        offset += chunk.length;
        location = new URL(String(res.headers.location), server.url).toString();
      }
      const put = new URL(location);
      put.searchParams.set('digest', digest);
      const done = await once(put.toString(), 'PUT', { 'content-length': '0' });
      assert.equal(done.status, 201, done.body.toString());
      const got = await once(`${server.url}/v2/workers/chunked/blobs/${digest}`, 'GET', {});
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(whole), 'the stored blob differs from what was sent');
      const id = new URL(String(started.headers.location), server.url).pathname.split('/').pop()!;
      const patchWorkers = new Set(logLines(server).flatMap((l) => (l.method === 'PATCH' && l.path?.endsWith(id) ? [l.worker] : [])));
      if (patchWorkers.size > 1) crossed++;
    }
    assert.ok(crossed > 0, 'no upload had its PATCHes served by different workers');
  } finally {
    await server.stop();
  }
});

test(`serve --workers 2 (${ENGINE}): background collection runs in one worker`, { timeout: 180_000 }, async () => {
  const server = await startWorkers(['--gc-interval', '200ms', '--log-level', 'debug']);
  try {
    const passes = () => logLines(server).filter((l) => l.msg === 'collection pass');
    await until('six collection passes', () => passes().length >= 6, server);
    const workers = new Set(passes().map((l) => l.worker));
    assert.equal(workers.size, 1, `passes ran in workers ${[...workers].join(', ')}`);
    const scrape = (await once(`${server.url}/metrics`, 'GET', {})).body.toString();
    // Nobody else tried: no pass found the lease held.
    assert.equal(metric(scrape, 'portfolio_gc_passes_total{result="skipped"}'), 0);
    assert.ok(metric(scrape, 'portfolio_gc_passes_total{result="ok"}') >= 6);

    // The worker with the duties dies: another takes them over.
    const holder = [...workers][0]!;
    const pid = listening(server).get(holder)!;
    const before = passes().length;
    process.kill(pid, 'SIGKILL');
    await until('collection passes in another worker', () => passes().slice(before).some((l) => l.worker !== holder), server);
    const after = new Set(passes().slice(before + 1).map((l) => l.worker));
    assert.ok(!after.has(holder), 'the dead worker still collects');
  } finally {
    await server.stop();
  }
});

test(`serve --workers 2 (${ENGINE}): a worker killed mid-push loses nothing acknowledged, and is replaced`, { timeout: 300_000 }, async () => {
  const server = await startWorkers(['--gc-interval', '100ms', '--gc-grace', '1s']);
  const ledger = new Ledger();
  const workload = { urls: [server.url], clients: 6, operations: 10_000, prefix: 'workers', ledger, workersDie: true };
  try {
    await pushAnchors(workload);
    for (let round = 0; round < 3; round++) {
      let stopped = false;
      const work = runWorkload({ ...workload, stopped: () => stopped });
      await sleep(400 + round * 300);
      const workers = listening(server);
      const alive = [...workers].filter(([, pid]) => isAlive(pid));
      const [victim, pid] = alive[round % alive.length]!;
      process.kill(pid, 'SIGKILL');
      await sleep(500);
      stopped = true;
      await work;
      await until(`a worker in place of worker ${victim}`, () => [...listening(server).values()].filter(isAlive).length === 2, server);
      const checked = await verifyLedger(server.url, ledger);
      assert.ok(checked.tags > 0);
    }
    assert.deepEqual(ledger.lost, []);
    assert.deepEqual(ledger.serverErrors, []);
    assert.ok((ledger.counts['manifest accepted'] ?? 0) > 3, `the workload did too little: ${JSON.stringify(ledger.counts)}`);
    // Service goes on after the restarts.
    const img = image();
    assert.equal((await pushImage(server.url, 'workers/after', img, 'latest')).status, 201);
    assert.equal((await once(`${server.url}/v2/workers/after/manifests/latest`, 'GET', { accept: img.mediaType })).status, 200);
    const scrape = (await once(`${server.url}/metrics`, 'GET', {})).body.toString();
    assert.equal(metric(scrape, 'portfolio_worker_restarts_total'), 3);
  } finally {
    await server.stop();
  }
});

test(`serve --workers 2 (${ENGINE}): a web-interface login holds on every worker, and so does its logout`, { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portfolio-workers-ui-'));
  await writeHtpasswd(join(dir, 'htpasswd'), { root: 'rootpw' });
  const server = await startWorkers(['--htpasswd', join(dir, 'htpasswd')]);
  const api = `${server.url}/_portfolio/api/v1/session`;
  const user = async (cookie: string) => (JSON.parse((await once(api, 'GET', { cookie })).body.toString()) as { user: string | null }).user;
  try {
    const login = await once(api, 'POST', { 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ username: 'root', password: 'rootpw' })));
    assert.equal(login.status, 200, login.body.toString());
    const cookie = ([] as string[]).concat(login.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).join('; ');
    const csrf = (JSON.parse(login.body.toString()) as { csrf: string }).csrf;
    // Each on a connection of its own: round-robin sends them to both workers.
    for (let i = 0; i < 6; i++) assert.equal(await user(cookie), 'root', `request ${i} did not know the session`);
    const sessionWorkers = new Set(logLines(server).flatMap((l) => (l.method === 'GET' && l.path === '/_portfolio/api/v1/session' ? [l.worker] : [])));
    assert.equal(sessionWorkers.size, 2, 'one worker answered every request');
    const out = await once(api, 'DELETE', { cookie, 'x-portfolio-csrf': csrf });
    assert.equal(out.status, 204);
    for (let i = 0; i < 6; i++) assert.equal(await user(cookie), null, `request ${i} still knew the ended session`);
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test(`serve --workers 2 (${ENGINE}): workers that cannot start stop the primary with status 1, not a restart loop`, { timeout: 120_000 }, async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const dir = await mkdtemp(join(tmpdir(), 'portfolio-workers-port-'));
  try {
    const port = (taken.address() as AddressInfo).port;
    const run = await runCli(['serve', '--workers', '2', '--addr', `127.0.0.1:${port}`, ...(await freshEngine(dir))]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stderr, /EADDRINUSE/);
    assert.match(run.stderr, /a worker exited during start-up/);
  } finally {
    taken.close();
    await rm(dir, { recursive: true, force: true });
  }
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
