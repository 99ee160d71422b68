/**
 * Probes: `/healthz` (the process answers) and `/readyz` (database, object store and schema
 * answer; 503 naming what failed otherwise, and 503 from the moment SIGTERM starts draining
 * while in-flight requests finish).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ENGINE, PG_URL, startRegistry, type RunningRegistry } from '../helpers/registry.js';

interface Readiness {
  status: string;
  failed: string[];
  checks: Record<string, string>;
}

async function readyz(base: string): Promise<{ status: number; body: Readiness }> {
  const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.headers.get('content-type'), 'application/json');
  return { status: res.status, body: (await res.json()) as Readiness };
}

describe('a healthy server', { timeout: 30_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry?.stop());

  it('is up and ready, every check named ok', async () => {
    const health = await fetch(`${registry.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await readyz(registry.url);
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.deepEqual(ready.body, { status: 'ready', failed: [], checks: { database: 'ok', objects: 'ok', schema: 'ok' } });
    assert.equal((await fetch(`${registry.url}/readyz`, { method: 'HEAD' })).status, 200);
    assert.equal((await fetch(`${registry.url}/readyz`, { method: 'POST' })).status, 405);
  });
});

describe('a server whose PostgreSQL database is gone', { timeout: 30_000, skip: ENGINE === 'sqlite-fs' && 'needs PostgreSQL' }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry?.stop());

  it('stays up but is not ready, and names the database', async () => {
    assert.equal((await readyz(registry.url)).status, 200);
    // Drop the server's database under it: its connections are terminated and none can be made.
    const url = registry.engineArgs[registry.engineArgs.indexOf('--database-url') + 1]!;
    const name = new URL(url).pathname.slice(1);
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    const ready = await readyz(registry.url);
    assert.equal(ready.status, 503, JSON.stringify(ready.body));
    assert.equal(ready.body.status, 'unavailable');
    assert.ok(ready.body.failed.includes('database'), JSON.stringify(ready.body));
    assert.equal(ready.body.checks.objects, 'ok');
    assert.match(ready.body.checks.database!, /\S/);
    assert.equal((await fetch(`${registry.url}/healthz`)).status, 200, 'the process itself is still up');
    const scrape = await fetch(`${registry.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(scrape.status, 200, 'metrics still answer: the storage gauges keep their last values');
    assert.match(await scrape.text(), /portfolio_http_requests_total\{route="health",method="GET",status="503"\} 1/);
  });
});

describe('draining', { timeout: 60_000 }, () => {
  let registry: RunningRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry?.stop());

  it('answers 503 from SIGTERM on, finishes the request in flight, then exits', async () => {
    const repo = 'drain/app';
    const start = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202);
    const location = new URL(start.headers.get('location')!, registry.url);
    const bytes = randomBytes(64 * 1024);

    // A slow chunk upload: half its body now, the rest after the signal.
    const upload = request(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) } });
    const answered = new Promise<number>((resolve, reject) => {
      upload.once('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      upload.once('error', reject);
    });
    upload.write(bytes.subarray(0, bytes.length / 2));
    await new Promise((r) => setTimeout(r, 200));

    const exited = new Promise<number | null>((r) => registry.process.once('exit', (code) => r(code)));
    registry.process.kill('SIGTERM');
    await waitFor(() => registry.output().includes('"draining"'));
    assert.match(registry.output(), /"inFlight":1,.*"draining"/, 'the upload was in flight when draining began');

    const ready = await readyz(registry.url);
    assert.equal(ready.status, 503, JSON.stringify(ready.body));
    assert.deepEqual(ready.body.failed, ['draining']);
    assert.equal((await fetch(`${registry.url}/healthz`)).status, 200, 'still up while draining');

    upload.end(bytes.subarray(bytes.length / 2));
    assert.equal(await answered, 202, 'the request in flight completed');
    assert.equal(await exited, 0);
    assert.match(registry.output(), /"stopped"/);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
