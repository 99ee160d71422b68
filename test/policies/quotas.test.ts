/**
 * Quotas through HTTP and the CLI: each blob counted once per scope, the commit refuses what
 * does not fit (403 DENIED with a readable message), uploads too large for what is left are
 * refused at their start, deletes free quota at once, and concurrent pushes never overshoot.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blob, type Blob } from '../helpers/oci.js';
import { ENGINE, runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { assertServerLogClean, expectStatus, http, type Res } from '../http/util.js';

const KiB = 1024;
const MiB = 1024 * KiB;

interface QuotaUsage {
  scope: string;
  used: number;
  limit: number;
}

function deniedForQuota(res: Res, message: string): void {
  expectStatus(res, 403);
  const body = JSON.parse(res.text) as { errors: { code: string; message: string }[] };
  assert.equal(body.errors[0]!.code, 'DENIED');
  assert.equal(body.errors[0]!.message, message);
}

const pushBlob = (base: string, repo: string, b: Blob) =>
  http(`${base}/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: b.bytes });

/** Starts a session and sends the whole blob as one chunk, without committing it. */
async function stage(base: string, repo: string, b: Blob): Promise<string> {
  const started = await http(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expectStatus(started, 202);
  const location = new URL(started.headers.get('location')!, base).toString();
  const patched = await http(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: b.bytes });
  expectStatus(patched, 202);
  return location;
}

const commit = (location: string, b: Blob) => http(`${location}${location.includes('?') ? '&' : '?'}digest=${b.digest}`, { method: 'PUT' });

async function quotas(base: string): Promise<QuotaUsage[]> {
  const res = await http(`${base}/_portfolio/quotas`);
  expectStatus(res, 200);
  return (JSON.parse(res.text) as { quotas: QuotaUsage[] }).quotas;
}

describe('quotas', { timeout: 120_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  let base: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-quota-'));
    const config = join(dir, 'portfolio.yaml');
    await writeFile(config, 'policies:\n  quotas:\n    - scope: "team-a/**"\n      limit: 10KiB\n');
    registry = await startRegistry({ args: ['--config', config] });
    base = registry.url;
  });
  after(async () => {
    assertServerLogClean(registry.output());
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts a blob once per scope, refuses what does not fit, and frees quota on delete', async () => {
    const one = blob(Buffer.alloc(4 * KiB, 1));
    const two = blob(Buffer.alloc(4 * KiB, 2));
    const three = blob(Buffer.alloc(4 * KiB, 3));
    expectStatus(await pushBlob(base, 'team-a/one', one), 201);
    // The same layer in another repository of the namespace counts once.
    expectStatus(await pushBlob(base, 'team-a/two', one), 201);
    expectStatus(await http(`${base}/v2/team-a/three/blobs/uploads/?mount=${one.digest}&from=team-a/one`, { method: 'POST' }), 201);
    expectStatus(await pushBlob(base, 'team-a/one', two), 201);
    assert.deepEqual(await quotas(base), [{ scope: 'team-a/**', used: 8 * KiB, limit: 10 * KiB }]);
    // Refused when it commits: it does not fit in what is left.
    deniedForQuota(await pushBlob(base, 'team-a/two', three), 'quota exceeded for team-a/**: 8 KiB of 10 KiB used, this push needs 4 KiB');
    // Outside the scope nothing counts.
    expectStatus(await pushBlob(base, 'team-b/x', three), 201);

    // Deleting the last link of a blob in the scope frees its bytes at once.
    expectStatus(await http(`${base}/v2/team-a/one/blobs/${two.digest}`, { method: 'DELETE' }), 202);
    assert.equal((await quotas(base))[0]!.used, 4 * KiB);
    expectStatus(await http(`${base}/v2/team-a/one/blobs/${one.digest}`, { method: 'DELETE' }), 202);
    assert.equal((await quotas(base))[0]!.used, 4 * KiB, 'still linked in team-a/two and team-a/three');
  });

  it('refuses a large upload at its start, before its bytes are sent', async () => {
    // The declared length alone exceeds the quota: the answer comes while the client still holds
    // the whole body back. A server that waited for the body would never answer.
    const url = new URL(`${base}/v2/team-a/large/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`);
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': String(MiB) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.setTimeout(20_000, () => req.destroy(new Error('no answer before the body was sent')));
      req.flushHeaders();
    });
    assert.equal(answer.status, 403, answer.text);
    const error = (JSON.parse(answer.text) as { errors: { code: string; message: string }[] }).errors[0]!;
    assert.equal(error.code, 'DENIED');
    assert.equal(error.message, `quota exceeded for team-a/**: ${(await quotas(base))[0]!.used / KiB} KiB of 10 KiB used, this push needs 1 MiB`);
  });

  it('checks again when the upload commits: of two staged uploads that fit alone, only one commits', async () => {
    const usedBefore = (await quotas(base))[0]!.used;
    const room = 10 * KiB - usedBefore;
    const a = blob(Buffer.alloc(room, 4));
    const b = blob(Buffer.alloc(room, 5));
    const first = await stage(base, 'team-a/four', a);
    const second = await stage(base, 'team-a/five', b);
    expectStatus(await commit(first, a), 201);
    deniedForQuota(await commit(second, b), `quota exceeded for team-a/**: 10 KiB of 10 KiB used, this push needs ${room / KiB} KiB`);
    const usage = await http(`${base}/_portfolio/usage`);
    assert.deepEqual((JSON.parse(usage.text) as { quotas: QuotaUsage[] }).quotas, [{ scope: 'team-a/**', used: 10 * KiB, limit: 10 * KiB }]);
    const du = await runCli(['du', '--json', ...registry.engineArgs]);
    assert.equal(du.code, 0, du.stderr);
    assert.deepEqual((JSON.parse(du.stdout) as { quotas: QuotaUsage[] }).quotas, [{ scope: 'team-a/**', used: 10 * KiB, limit: 10 * KiB }]);
  });
});

describe('quota races', { timeout: 180_000 }, () => {
  let dir: string;
  let replicas: RunningRegistry[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-quota-race-'));
    const config = join(dir, 'portfolio.yaml');
    await writeFile(config, 'policies:\n  quotas:\n    - scope: "race/**"\n      limit: 100KiB\n');
    const first = await startRegistry({ args: ['--config', config] });
    replicas = [first];
    // Two replicas share PostgreSQL; SQLite has one writer process.
    if (ENGINE !== 'sqlite-fs') replicas.push(await startRegistry({ args: ['--config', config], engineArgs: first.engineArgs, dataDir: first.dataDir }));
  });
  after(async () => {
    for (const r of replicas) assertServerLogClean(r.output());
    for (const r of [...replicas].reverse()) await r.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('16 clients push distinct 10 KiB blobs into a scope that fits ten: exactly ten are accepted', async () => {
    const blobs = Array.from({ length: 16 }, (_, i) => blob(Buffer.alloc(10 * KiB, 100 + i)));
    // Each staged first, so the race is at the commit, not at the early check.
    const staged = await Promise.all(blobs.map((b, i) => stage(replicas[i % replicas.length]!.url, `race/c${i}`, b)));
    const results = await Promise.all(staged.map((location, i) => commit(location, blobs[i]!)));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [...Array(10).fill(201), ...Array(6).fill(403)], statuses.join(','));
    for (const r of replicas) assert.deepEqual(await quotas(r.url), [{ scope: 'race/**', used: 100 * KiB, limit: 100 * KiB }]);
  });

  it('two concurrent pushes that fit alone but not together: exactly one wins, round after round', async () => {
    const policy = await http(`${replicas[0]!.url}/_portfolio/policies`, {
      method: 'PUT',
      body: JSON.stringify({ kind: 'quota', scope: 'duel/*', limit: '6KiB' }),
    });
    expectStatus(policy, 200);
    for (let round = 0; round < 5; round++) {
      const a = blob(Buffer.alloc(4 * KiB, round * 2));
      const b = blob(Buffer.alloc(4 * KiB, round * 2 + 1));
      const [left, right] = [replicas[0]!, replicas[replicas.length - 1]!];
      const staged = await Promise.all([stage(left.url, `duel/r${round}a`, a), stage(right.url, `duel/r${round}b`, b)]);
      const results = await Promise.all([commit(staged[0], a), commit(staged[1], b)]);
      assert.deepEqual(results.map((r) => r.status).sort(), [201, 403], `round ${round}`);
      const won = results[0]!.status === 201 ? { repo: `duel/r${round}a`, b: a, at: left } : { repo: `duel/r${round}b`, b, at: right };
      expectStatus(await http(`${won.at.url}/v2/${won.repo}/blobs/${won.b.digest}`, { method: 'DELETE' }), 202);
    }
  });
});
