/**
 * Server time of the web interface's list calls with many rows: N repositories (default
 * 100,000), and one repository with T tags (default 10,000). Rows are written straight into a
 * fresh database (a push per repository would take the run's time, and the API reads only rows);
 * then an in-process server answers sequential requests, and the time from request to the last
 * byte is recorded per call (loopback, one client: what the server spends).
 *
 *   npm run bench:ui [-- --repositories N --tags T] [-- "--engine-args=--database-url postgres://…"]
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { pino } from 'pino';
import { openEngine } from '../src/cli/engine.js';
import { Sessions } from '../src/http/api/sessions.js';
import { createRegistryServer } from '../src/http/server.js';

const { values } = parseArgs({ options: { repositories: { type: 'string' }, tags: { type: 'string' }, 'engine-args': { type: 'string' }, requests: { type: 'string' } } });
const repositories = Number(values.repositories ?? 100_000);
const tagCount = Number(values.tags ?? 10_000);
const requests = Number(values.requests ?? 200);
const args = (values['engine-args'] ?? '').split(/\s+/).filter(Boolean);
const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);

const dir = await mkdtemp(join(tmpdir(), 'portfolio-ui-bench-'));
const databaseUrl = flag('--database-url');
const engine = await openEngine({ dataDir: dir, databaseUrl, uploadTtlMs: 3_600_000, migrate: true });
const database = engine.database;
const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const MT = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {} }));

const now = Date.now();
try {
  const started = performance.now();
  const insert = async <T>(rows: T[], write: (chunk: T[]) => Promise<unknown>) => {
    for (let i = 0; i < rows.length; i += 500) await write(rows.slice(i, i + 500));
  };
  await database.tx(async (trx) => {
    const configId = Number(
      (await trx.insertInto('blobs').values({ digest: sha('config'), size: CONFIG.length, object_key: 'k/config', content: CONFIG, created_at: now }).returning('id').executeTakeFirstOrThrow()).id,
    );
    // Repository i: one layer blob of its own, one manifest (shared config), tag "latest".
    // The last repository, bench/many-tags, holds tagCount manifests, each tagged.
    const names = Array.from({ length: repositories - 1 }, (_, i) => `team-${String(i % 100).padStart(2, '0')}/app-${i}`);
    names.push('bench/many-tags');
    await insert(names, (chunk) => trx.insertInto('repositories').values(chunk.map((name) => ({ name, created_at: now }))).execute());
    const ids = new Map((await trx.selectFrom('repositories').select(['id', 'name']).execute()).map((r) => [r.name, Number(r.id)]));
    const units: { repo: number; tag: string; n: number }[] = [];
    names.forEach((name, i) => {
      if (name === 'bench/many-tags') for (let t = 0; t < tagCount; t++) units.push({ repo: ids.get(name)!, tag: `v${t}`, n: repositories + t });
      else units.push({ repo: ids.get(name)!, tag: 'latest', n: i });
    });
    await insert(units, (chunk) =>
      trx.insertInto('blobs').values(chunk.map((u) => ({ digest: sha(`layer${u.n}`), size: 1000 + (u.n % 1000), object_key: `k/${u.n}`, content: null, created_at: now }))).execute(),
    );
    const blobIds = new Map((await trx.selectFrom('blobs').select(['id', 'digest']).execute()).map((b) => [b.digest, Number(b.id)]));
    const links = new Set<string>();
    const linkRows: { repository_id: number; blob_id: number; touched_at: number }[] = [];
    for (const u of units) {
      for (const blob of [configId, blobIds.get(sha(`layer${u.n}`))!]) {
        if (links.has(`${u.repo}/${blob}`)) continue;
        links.add(`${u.repo}/${blob}`);
        linkRows.push({ repository_id: u.repo, blob_id: blob, touched_at: now });
      }
    }
    await insert(linkRows, (chunk) => trx.insertInto('repository_blobs').values(chunk).execute());
    const manifests = units.map((u) => {
      const content = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha('config'), size: CONFIG.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(`layer${u.n}`), size: 1000 + (u.n % 1000) }],
        }),
      );
      return { u, content, digest: `sha256:${createHash('sha256').update(content).digest('hex')}` };
    });
    await insert(manifests, (chunk) =>
      trx
        .insertInto('manifests')
        .values(chunk.map(({ u, content, digest }) => ({ repository_id: u.repo, digest, media_type: MT, artifact_type: 'application/vnd.oci.image.config.v1+json', subject_digest: null, annotations: null, size: content.length, content, created_at: now, pushed_at: now + u.n })))
        .execute(),
    );
    const manifestIds = new Map((await trx.selectFrom('manifests').select(['id', 'repository_id', 'digest']).execute()).map((m) => [`${m.repository_id}/${m.digest}`, Number(m.id)]));
    await insert(manifests, (chunk) =>
      trx
        .insertInto('manifest_blobs')
        .values(chunk.flatMap(({ u, digest }) => [configId, blobIds.get(sha(`layer${u.n}`))!].map((blob_id) => ({ manifest_id: manifestIds.get(`${u.repo}/${digest}`)!, repository_id: u.repo, blob_id }))))
        .execute(),
    );
    await insert(manifests, (chunk) =>
      trx.insertInto('tags').values(chunk.map(({ u, digest }) => ({ repository_id: u.repo, name: u.tag, manifest_id: manifestIds.get(`${u.repo}/${digest}`)!, updated_at: now + u.n }))).execute(),
    );
  });
  // A settled database, as autovacuum leaves it: statistics and the visibility map (index-only counts).
  if (database.dialect === 'postgres') await sql`vacuum analyze`.execute(database.db);
  console.log(`set-up: ${repositories} repositories, ${tagCount} tags in bench/many-tags, in ${((performance.now() - started) / 1000).toFixed(1)} s (${engine.describe.database})`);

  const server = createRegistryServer(engine.registry, {
    logger: pino({ level: 'silent' }),
    maintenance: engine.registry,
    api: { browse: engine.registry.browse, sessions: new Sessions(3_600_000) },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/_portfolio/api/v1`;
  const get = async (path: string) => {
    const res = await fetch(base + path);
    const body = (await res.json()) as { next?: string | null };
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
    return body;
  };
  const middle = (await get(`/repositories?limit=1&q=team-50/&match=prefix`)).next!;
  const tagMiddle = (await get(`/repositories/bench/many-tags/tags?limit=1&cursor=${Buffer.from(JSON.stringify({ name: 'v5000' })).toString('base64url')}`)).next!;
  const pushedMiddle = Buffer.from(JSON.stringify({ name: 'v5000', pushedAt: now + repositories + 5000 })).toString('base64url');
  const cases: [string, string][] = [
    ['repositories, first page (50)', '/repositories'],
    ['repositories, a page in the middle', `/repositories?cursor=${middle}`],
    ['repositories, prefix search', '/repositories?q=team-42/&match=prefix'],
    ['repositories, substring search (10 matches, whole index scanned)', '/repositories?q=app-9999'],
    ['tags of a 10,000-tag repository, by name, first page', '/repositories/bench/many-tags/tags'],
    ['tags, by name, a page in the middle', `/repositories/bench/many-tags/tags?cursor=${tagMiddle}`],
    ['tags, by push time, first page', '/repositories/bench/many-tags/tags?sort=pushed'],
    ['tags, by push time, a page in the middle', `/repositories/bench/many-tags/tags?sort=pushed&cursor=${pushedMiddle}`],
  ];
  for (const [what, path] of cases) {
    for (let i = 0; i < 10; i++) await get(path);
    const times: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < requests; i++) {
      const t0 = performance.now();
      await get(path);
      times.push(performance.now() - t0);
    }
    // This process's CPU (server and client; a PostgreSQL backend's time is not in it).
    const cpu = process.cpuUsage(cpu0);
    times.sort((a, b) => a - b);
    const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(1);
    const cpuMs = ((cpu.user + cpu.system) / 1000 / requests).toFixed(1);
    console.log(`${what}: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, process CPU ${cpuMs} ms per request (${requests} requests)`);
  }
  server.close();
} finally {
  await engine.registry.close();
  await rm(dir, { recursive: true, force: true });
}
