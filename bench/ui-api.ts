/**
 * Server time of the web interface's list calls with many rows: N repositories (default
 * 100,000), and one repository with T tags (default 10,000). Rows are written in bulk by the
 * store generator (src/backends/sql/generate.ts; a push per repository would take the run's time);
 * then an in-process server answers sequential requests, and the time from request to the last
 * byte is recorded per call (loopback, one client: what the server spends).
 *
 *   npm run bench:ui [-- --repositories N --tags T] [-- "--engine-args=--database-url postgres://…"]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
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
const now = Date.now();
const many = 'team-00/app-0';
try {
  const started = performance.now();
  // Repository i: one image, tag v0 (team-NN/app-i); the first holds tagCount images, each tagged.
  await engine.registry.generate({
    repositories,
    blobs: repositories - 1 + tagCount,
    tags: repositories - 1 + tagCount,
    bigRepositories: 1,
    tagsPerBigRepository: tagCount,
    prefix: 'team',
    at: now,
  });
  console.log(`set-up: ${repositories} repositories, ${tagCount} tags in ${many}, in ${((performance.now() - started) / 1000).toFixed(1)} s (${engine.describe.database})`);

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
  const tagMiddle = (await get(`/repositories/${many}/tags?limit=1&cursor=${Buffer.from(JSON.stringify({ name: 'v5000' })).toString('base64url')}`)).next!;
  const pushedMiddle = Buffer.from(JSON.stringify({ name: 'v5000', pushedAt: now + 5000 })).toString('base64url');
  const cases: [string, string][] = [
    ['repositories, first page (50)', '/repositories'],
    ['repositories, a page in the middle', `/repositories?cursor=${middle}`],
    ['repositories, prefix search', '/repositories?q=team-42/&match=prefix'],
    ['repositories, substring search (10 matches, whole index scanned)', '/repositories?q=app-9999'],
    ['tags of a 10,000-tag repository, by name, first page', `/repositories/${many}/tags`],
    ['tags, by name, a page in the middle', `/repositories/${many}/tags?cursor=${tagMiddle}`],
    ['tags, by push time, first page', `/repositories/${many}/tags?sort=pushed`],
    ['tags, by push time, a page in the middle', `/repositories/${many}/tags?sort=pushed&cursor=${pushedMiddle}`],
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
