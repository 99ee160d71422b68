/**
 * What `serve --workers N` buys: manifest GET requests/s and small-image pushes/s with
 * --workers 1 and --workers 2 (or the counts given), on SQLite and on PostgreSQL, alternating the
 * worker counts over rounds, each round on a fresh server and store. Beside each rate, the
 * server's CPU per request or image: every process of the server (the primary and its workers)
 * summed, from /proc, so a figure says whether the cost per request grows with the workers.
 *
 *   npm run bench:workers [-- --rounds N] [--workers 1,2] [--engines sqlite,pg] [--quick]
 *                          [--pg-url postgres://postgres@127.0.0.1:5432/postgres]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds } from './cpu.js';
import { createDatabase, dropDatabase, PG_URL } from './databases.js';
import { median, settingsFor, smallImages, smallPushes } from './figures.js';
import { Client } from './http.js';
import { defaultLoadTool, runLoad } from './load.js';
import { ACCEPT_MANIFESTS, pushImage } from './oci.js';
import { RawClient } from './raw-client.js';
import { killAll, startPortfolio, syncDisks, type Registry } from './servers.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    workers: { type: 'string' },
    engines: { type: 'string' },
    quick: { type: 'boolean' },
    'pg-url': { type: 'string' },
  },
});
const rounds = Number(values.rounds ?? 3);
const counts = (values.workers ?? '1,2').split(',').map(Number);
const engines = (values.engines ?? 'sqlite,pg').split(',') as ('sqlite' | 'pg')[];
const pgUrl = values['pg-url'] ?? PG_URL;
const cli = resolve(import.meta.dirname, '../../bin/portfolio.js');
const log = (msg: string) => process.stderr.write(`[bench:workers] ${msg}\n`);

/** The process and its descendants (a primary and its workers). */
async function tree(pid: number): Promise<number[]> {
  let children: number[] = [];
  try {
    children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return [pid, ...(await Promise.all(children.map(tree))).flat()];
}

/** CPU seconds (user + system) used by the server's processes, from /proc. */
async function serverCpu(pid: number): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const p of await tree(pid)) {
    const seconds = await cpuSeconds(p);
    if (seconds !== undefined) out.set(p, seconds); // else exited meanwhile
  }
  return out;
}

/** CPU used between two readings; a process in only one of them counts what it used in that one's lifetime. */
function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, cpu] of after) sum += cpu - (before.get(pid) ?? 0);
  return sum;
}

/** Until the scrape counts every worker (the primary answers `ready` only once each listens). */
async function allListening(server: Registry, workers: number): Promise<void> {
  if (workers <= 1) return;
  for (let i = 0; i < 300; i++) {
    const text = await fetch(`${server.url}/metrics`).then((r) => r.text()).catch(() => '');
    if (new RegExp(`^portfolio_workers ${workers}$`, 'm').test(text)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${workers} workers never all listened`);
}

interface Figures {
  getRps: number;
  getCpuUs: number;
  pushes: number;
  pushCpuMs: number;
  /** SQLite statements that waited for another worker's write lock, per pushed image. */
  busyWaitsPerPush: number;
}

async function busyWaits(server: Registry): Promise<number> {
  const text = await fetch(`${server.url}/metrics`).then((r) => r.text());
  return Number(/^portfolio_database_busy_waits_total (\S+)$/m.exec(text)?.[1] ?? 0);
}

async function measure(engine: 'sqlite' | 'pg', workers: number, dir: string): Promise<Figures> {
  const s = settingsFor(values.quick ?? false, defaultLoadTool(), 1, dir);
  // Each worker warms up (JIT, caches) on its share of the warm-up load only: give it as long as it takes one process.
  s.warmupS = 3;
  const dataDir = join(dir, `${engine}-${workers}-${randomBytes(3).toString('hex')}`);
  const databaseUrl = engine === 'pg' ? await createDatabase(pgUrl) : undefined;
  const server = await startPortfolio({
    cli,
    dataDir,
    extraArgs: ['--workers', String(workers), ...(databaseUrl ? ['--database-url', databaseUrl] : [])],
    extraEnv: {},
  });
  const raw = new RawClient(server.url, s.imageConcurrency);
  try {
    await allListening(server, workers);
    const seed = randomBytes(4).readUInt32LE(0);
    const prefix = `bench-${seed.toString(16)}`;
    // Pushes: warm-up, then the timed ones. Every worker gets as many warm-up pushes as a single
    // process does: its push path is optimized only after ~1,000 of its own.
    await smallPushes(raw, s, `${prefix}/warmup`, smallImages(s.warmupImages * workers, seed));
    const waits0 = await busyWaits(server);
    let cpu0 = await serverCpu(server.pid!);
    const pushed = await smallPushes(raw, s, prefix, smallImages(s.images, seed + 1));
    const pushCpuMs = (cpuBetween(cpu0, await serverCpu(server.pid!)) * 1000) / s.images;
    const busyWaitsPerPush = ((await busyWaits(server)) - waits0) / s.images;
    // Manifest GET: one image, many connections.
    const client = new Client(server.url);
    const [image] = smallImages(1, seed + 2);
    await pushImage(client, `${prefix}/get`, 'latest', image!);
    const load = { url: `${server.url}/v2/${prefix}/get/manifests/latest`, method: 'GET' as const, headers: { Accept: ACCEPT_MANIFESTS }, connections: s.connections, threads: 1, scratchDir: dir, tool: s.loadTool };
    await runLoad({ ...load, durationS: s.warmupS });
    cpu0 = await serverCpu(server.pid!);
    const got = await runLoad({ ...load, durationS: s.loadDurationS });
    const getCpuUs = (cpuBetween(cpu0, await serverCpu(server.pid!)) * 1e6) / got.requests;
    if (got.errors > 0) log(`warning: ${got.errors} manifest GET errors`);
    return { getRps: got.rps, getCpuUs, pushes: pushed.value, pushCpuMs, busyWaitsPerPush };
  } finally {
    raw.close();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
    if (databaseUrl) await dropDatabase(databaseUrl, pgUrl).catch(() => {});
    await syncDisks();
  }
}

const dir = await mkdtemp(join(tmpdir(), 'portfolio-bench-workers-'));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}
const results = new Map<string, Figures[]>();
try {
  for (const engine of engines) {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? counts : [...counts].reverse();
      for (const workers of order) {
        const f = await measure(engine, workers, dir);
        const key = `${engine} ${workers}`;
        results.set(key, [...(results.get(key) ?? []), f]);
        log(
          `${engine}, --workers ${workers}, round ${round + 1}: manifest GET ${f.getRps.toFixed(0)}/s (${f.getCpuUs.toFixed(0)} µs CPU each), ` +
            `small-image pushes ${f.pushes.toFixed(0)}/s (${f.pushCpuMs.toFixed(2)} ms CPU each, ${f.busyWaitsPerPush.toFixed(2)} write-lock waits each); load average ${loadavg()[0]!.toFixed(1)}`,
        );
      }
    }
  }
  const cores = (await import('node:os')).availableParallelism();
  console.log(`serve --workers: medians of ${rounds} rounds on ${cores} cores; CPU = every server process (primary and workers), per request or image`);
  console.log('engine   workers  manifest GET/s  CPU µs/GET  pushes/s  CPU ms/push  lock waits/push');
  const json: Record<string, Figures> = {};
  for (const [key, runs] of results) {
    const [engine, workers] = key.split(' ');
    const m: Figures = {
      getRps: median(runs.map((r) => r.getRps)),
      getCpuUs: median(runs.map((r) => r.getCpuUs)),
      pushes: median(runs.map((r) => r.pushes)),
      pushCpuMs: median(runs.map((r) => r.pushCpuMs)),
      busyWaitsPerPush: median(runs.map((r) => r.busyWaitsPerPush)),
    };
    json[key.replace(' ', '_workers_')] = m;
    console.log(
      `${engine!.padEnd(8)} ${workers!.padStart(7)}  ${m.getRps.toFixed(0).padStart(14)}  ${m.getCpuUs.toFixed(0).padStart(10)}  ${m.pushes.toFixed(0).padStart(8)}  ${m.pushCpuMs.toFixed(2).padStart(11)}  ${m.busyWaitsPerPush.toFixed(2).padStart(15)}`,
    );
  }
  console.log(`BENCH_JSON ${JSON.stringify(json)}`);
} finally {
  killAll();
  await rm(dir, { recursive: true, force: true });
}
