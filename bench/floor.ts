/**
 * Portfolio against the floor registry (bench/floor-registry.ts: node:http, hashing, file writes,
 * nothing else) under the main bench's workloads: a 256 MiB monolithic upload, its download, 64
 * connections of manifest GETs, small-image pushes. Each server runs alone, fresh each round, the
 * order alternating. Beside each rate: the server's CPU per operation; at the end, its idle and
 * peak RSS. What the floor spends is what Node.js itself costs here: the part of Portfolio's
 * figures no change to Portfolio can remove.
 *
 * With --scale-out, Portfolio runs on PostgreSQL + S3 and the floor keeps its larger blobs in
 * S3 (one PutObject per upload, GetObject relayed on download), both on the S3 server and
 * PostgreSQL of the main bench's --scale-out.
 *
 *   npm run bench:floor [-- --rounds N] [--quick] [--scale-out]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CpuMeter, cpuIdlePolicy } from './cpu.js';
import { Rng, SeededBlob } from './data.js';
import { download, manifestLoad, median, settingsFor, smallImages, smallPushes, uploadMonolithic, type Settings } from './figures.js';
import { Client } from './http.js';
import { defaultLoadTool } from './load.js';
import { makeImage, pushImage } from './oci.js';
import { RawClient } from './raw-client.js';
import { ScaleOut, type Stores } from './scale-out.js';
import { killAll, startFloorRegistry, startPortfolio, syncDisks, type Registry } from './servers.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '1' },
    quick: { type: 'boolean', default: false },
    'scale-out': { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds: expected a positive integer');
const CLI = join(resolve(import.meta.dirname, '../..'), 'bin/portfolio.js');
const log = (msg: string) => process.stderr.write(`[bench:floor] ${msg}\n`);

interface Round {
  idleRss: number;
  /** VmHWM once the upload and download figures are done. */
  transferRss: number;
  peakRss: number;
  upload: number;
  uploadCpu: number;
  download: number;
  downloadCpu: number;
  get: number;
  getCpu: number;
  push: number;
  pushCpu: number;
}

type Kind = 'floor' | 'portfolio';

/** A figure of /proc/<pid>/status the server has (it runs as a child of this process). */
function known(value: number | undefined, what: string): number {
  if (value === undefined) throw new Error(`no ${what} for the server`);
  return value;
}

/** Starts one server: on local files, or on the run's S3 bucket (and, for Portfolio, a fresh database). */
async function start(kind: Kind, dataDir: string, scaleOut: ScaleOut | undefined): Promise<{ server: Registry; stores?: Stores }> {
  if (kind === 'floor') {
    const stores = scaleOut?.distribution('floor');
    const e = scaleOut?.endpoint;
    const env: Record<string, string> = e
      ? { FLOOR_S3_BUCKET: stores!.bucket, FLOOR_S3_PREFIX: stores!.prefix, AWS_ENDPOINT_URL_S3: e.endpoint, AWS_REGION: e.region, AWS_ACCESS_KEY_ID: e.accessKey, AWS_SECRET_ACCESS_KEY: e.secretKey }
      : {};
    return { server: await startFloorRegistry(dataDir, env), stores };
  }
  const stores = await scaleOut?.portfolio('portfolio');
  try {
    return { server: await startPortfolio({ cli: CLI, dataDir, extraArgs: stores?.args ?? [], extraEnv: stores?.env ?? {} }), stores };
  } catch (err) {
    await stores?.dispose();
    throw err;
  }
}

async function measure(kind: Kind, s: Settings, dir: string, seed: number, scaleOut: ScaleOut | undefined): Promise<Round> {
  const dataDir = join(dir, `${kind}-${randomBytes(3).toString('hex')}`);
  const { server, stores } = await start(kind, dataDir, scaleOut);
  const pid = server.pid!;
  const client = new Client(server.url, s.imageConcurrency);
  const raw = new RawClient(server.url, s.imageConcurrency);
  const cpu = new CpuMeter([pid]);
  const prefix = `floor-${seed.toString(16)}`;
  try {
    const idleRss = known(await server.rssMiB(), 'RSS');
    const blob = new SeededBlob(s.blobSize, seed);
    const mb = s.blobSize / 1e6;
    const upload = await uploadMonolithic(client, `${prefix}/big`, blob, cpu);
    const uploadCpu = (cpu.seconds! * 1000) / mb;
    await syncDisks();
    const down = await download(client, `${prefix}/big`, blob, s.downloads, s.downloadTool, cpu);
    const downloadCpu = (cpu.seconds! * 1000) / (mb * s.downloads);
    const transferRss = known(await server.peakRssMiB(), 'peak RSS');
    await pushImage(client, `${prefix}/manifest`, 'latest', makeImage(new Rng(seed + 1)));
    const got = await manifestLoad(client, s, `${prefix}/manifest`, 'latest', 'GET', s.loadTool, cpu);
    const getCpu = (cpu.seconds! * 1e6) / got.requests;
    await smallPushes(raw, s, `${prefix}/warmup`, smallImages(s.warmupImages, seed + 2));
    const pushed = await smallPushes(raw, s, prefix, smallImages(s.images, seed + 3), cpu);
    const pushCpu = (cpu.seconds! * 1000) / s.images;
    const peakRss = known(await server.peakRssMiB(), 'peak RSS');
    return { idleRss, transferRss, peakRss, upload, uploadCpu, download: down.value, downloadCpu, get: got.rps, getCpu, push: pushed.value, pushCpu };
  } finally {
    client.close();
    raw.close();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
    await stores?.dispose();
    await syncDisks();
  }
}

/** The report's rows, for blobs of `blobMiB`. */
const rows = (blobMiB: number): { label: string; rate?: keyof Round; cpu?: keyof Round; rss?: keyof Round; cpuUnit?: string }[] => [
  { label: `monolithic ${blobMiB} MiB upload (MB/s)`, rate: 'upload', cpu: 'uploadCpu', cpuUnit: 'ms/MB' },
  { label: `${blobMiB} MiB download, curl (MB/s)`, rate: 'download', cpu: 'downloadCpu', cpuUnit: 'ms/MB' },
  { label: 'manifest GET, 64 conns (req/s)', rate: 'get', cpu: 'getCpu', cpuUnit: 'µs/req' },
  { label: 'small-image pushes (images/s)', rate: 'push', cpu: 'pushCpu', cpuUnit: 'ms/image' },
  { label: 'RSS after start, idle (MiB)', rss: 'idleRss' },
  { label: 'peak RSS after upload + download (MiB)', rss: 'transferRss' },
  { label: 'peak RSS, whole run (MiB)', rss: 'peakRss' },
];

const dir = await mkdtemp(join(tmpdir(), 'portfolio-bench-floor-'));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}
const scaleOut = values['scale-out'] ? await ScaleOut.open() : undefined;
try {
  const s = settingsFor(values.quick, defaultLoadTool(), 2, dir);
  const results: Record<Kind, Round[]> = { floor: [], portfolio: [] };
  for (let round = 0; round < rounds; round++) {
    const seed = randomBytes(4).readUInt32LE(0);
    const order: Kind[] = round % 2 === 0 ? ['floor', 'portfolio'] : ['portfolio', 'floor'];
    for (const kind of order) {
      const r = await measure(kind, s, dir, seed, scaleOut);
      results[kind].push(r);
      log(
        `${kind}, round ${round + 1}: upload ${r.upload.toFixed(0)} MB/s (${r.uploadCpu.toFixed(2)} ms/MB), download ${r.download.toFixed(0)} MB/s (${r.downloadCpu.toFixed(2)} ms/MB), ` +
          `GET ${r.get.toFixed(0)}/s (${r.getCpu.toFixed(0)} µs), pushes ${r.push.toFixed(0)}/s (${r.pushCpu.toFixed(2)} ms); RSS idle ${r.idleRss.toFixed(0)}, peak ${r.peakRss.toFixed(0)} MiB`,
      );
    }
  }
  const med = (kind: Kind, key: keyof Round) => median(results[kind].map((r) => r[key]));
  const stores = scaleOut ? 'PostgreSQL + S3; the floor: S3' : 'SQLite + files; the floor: files';
  const cpuIdle = cpuIdlePolicy();
  console.log(`Portfolio against the floor registry (node:http and hashing; bench/floor-registry.ts), ${stores}; medians of ${rounds} rounds; MB = 10^6 bytes`);
  if (cpuIdle) console.log(`machine: ${cpuIdle}`);
  console.log(`${'figure'.padEnd(40)} ${'floor'.padStart(9)} ${'its CPU'.padStart(14)} ${'Portfolio'.padStart(10)} ${'its CPU'.padStart(14)} ${'ratio'.padStart(9)}`);
  for (const row of rows(s.blobSize / 1048576)) {
    if (row.rss) {
      const [f, p] = [med('floor', row.rss), med('portfolio', row.rss)];
      console.log(`${row.label.padEnd(40)} ${f.toFixed(0).padStart(9)} ${''.padStart(14)} ${p.toFixed(0).padStart(10)} ${''.padStart(14)} ${`${(p / f).toFixed(2)}x`.padStart(9)}`);
      continue;
    }
    const digits = row.cpuUnit === 'µs/req' ? 0 : 2;
    const cell = (kind: Kind) => `${med(kind, row.cpu!).toFixed(digits)} ${row.cpuUnit}`;
    const ratio = med('portfolio', row.cpu!) / med('floor', row.cpu!);
    console.log(
      `${row.label.padEnd(40)} ${med('floor', row.rate!).toFixed(0).padStart(9)} ${cell('floor').padStart(14)} ${med('portfolio', row.rate!).toFixed(0).padStart(10)} ${cell('portfolio').padStart(14)} ${`${ratio.toFixed(2)}x`.padStart(9)}`,
    );
  }
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'floor', rounds, cpuIdle: cpuIdle ?? null, floor: results.floor, portfolio: results.portfolio })}`);
} finally {
  killAll();
  await scaleOut?.close();
  await rm(dir, { recursive: true, force: true });
}
