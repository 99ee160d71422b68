/**
 * Portfolio's benchmark: pushes and pulls through a registry over HTTP and prints figures for
 * Portfolio and, in the same run and measured the same way, CNCF distribution 2.8.2 (Debian's
 * `docker-registry`), with the ratio Portfolio/distribution and the project's target per figure.
 *
 *   npm run bench [-- options]
 *
 * Options (see --help): --quick, --scale-out, --blob-redirect, --only portfolio|distribution, --target URL,
 * --engine-args "..." (or PORTFOLIO_BENCH_ARGS), --engine-env "K=V ..." (or PORTFOLIO_BENCH_ENV),
 * --figures upload,download,manifest,push,tags, --rounds N, --load-tool wrk|autocannon|node,
 * --load-threads N, --download-tool curl|node, --distribution-cache, --json-out FILE.
 * bench/README.md says how each figure is measured.
 */
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Client } from './http.js';
import { RawClient } from './raw-client.js';
import { Rng, SeededBlob } from './data.js';
import { defaultLoadTool, WRK_BIN, type LoadTool } from './load.js';
import { makeImage, pushImage } from './oci.js';
import {
  FIGURES,
  download,
  manifestLoad,
  median,
  settingsFor,
  smallImages,
  smallPushes,
  tagFigures,
  uploadChunked,
  uploadMonolithic,
  type FigureDef,
  type FigureKey,
  type Measurement,
  type Results,
  type Settings,
} from './figures.js';
import { distributionInstalled, externalRegistry, killAll, startDistribution, startPortfolio, syncDisks, DISTRIBUTION_BIN, type Registry } from './servers.js';
import { CpuMeter, cpuIdlePolicy, probes } from './cpu.js';
import { cephPids, ScaleOut, type DatabaseMeter, type Stores } from './scale-out.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'bin/portfolio.js');
const GROUPS = ['upload', 'download', 'manifest', 'push', 'tags'] as const;
type Group = (typeof GROUPS)[number];

const HELP = `Usage: npm run bench -- [options]

Benchmarks Portfolio and CNCF distribution 2.8.2 (${DISTRIBUTION_BIN}) side by side over HTTP.

  --quick                 32 MiB blobs, shorter load runs, fewer images and tags (smoke run)
  --scale-out             Portfolio on PostgreSQL + S3 against distribution with its S3 driver,
                          both on the S3 server of AWS_ENDPOINT_URL_S3 (default: scripts/s3-server.sh's
                          at http://127.0.0.1:9380; a new bucket per run, a new prefix and database
                          per server start) and PostgreSQL at PORTFOLIO_BENCH_PG_URL (default
                          postgres://postgres@127.0.0.1:5432/postgres)
  --blob-redirect         with --scale-out: both answer blob GETs with a redirect to a presigned
                          S3 URL (Portfolio --blob-redirect, distribution's default) instead of
                          serving the bytes themselves
  --only NAME             benchmark only 'portfolio' or only 'distribution'
  --target URL            benchmark an already-running registry instead of starting Portfolio
  --engine-args "ARGS"    extra flags appended to 'portfolio serve' (env PORTFOLIO_BENCH_ARGS),
                          e.g. "--database-url postgres://... --storage s3://bucket/prefix"
  --engine-env "K=V ..."  extra environment for the Portfolio server (env PORTFOLIO_BENCH_ENV)
  --figures LIST          comma-separated subset of: ${GROUPS.join(',')} (default: all)
  --load-tool NAME        tool for manifest GET: 'wrk' (default when ${WRK_BIN} exists),
                          'autocannon', or 'node' (the bench's own generator, always used for HEAD)
  --distribution-cache    give distribution its in-memory blob descriptor cache (as Debian's
                          default config does); off by default, as in the reference figures
  --load-threads N        wrk threads for manifest GET (default 2)
  --download-tool NAME    'curl' (default when /usr/bin/curl exists) or 'node' (node:http)
  --push-client NAME      client for small-image pushes and tagging: 'raw' (default, the bench's
                          lean keep-alive client) or 'node' (node:http with a keep-alive agent)
  --rounds N              run each registry N times, alternating the order, and report the
                          median per figure (a fresh server and data each round; default 1)
  --json-out FILE         also write the JSON result to FILE
  --help                  this text
`;

/** Splits a command-line string the way a shell would (quotes and backslashes; no expansion). */
export function shellSplit(input: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < input.length) cur += input[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (c === '\\' && i + 1 < input.length) {
      cur += input[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
    }
  }
  if (quote) throw new Error(`unterminated quote in: ${input}`);
  if (has || cur) out.push(cur);
  return out;
}

function parseEnv(input: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const word of shellSplit(input)) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new Error(`--engine-env: expected K=V, got '${word}'`);
    env[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return env;
}

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

interface Workload {
  /** Repository namespace of this run (unique, so --target runs never see an earlier run's data). */
  prefix: string;
  mono: SeededBlob;
  chunked: SeededBlob;
  images: ReturnType<typeof smallImages>;
  warmupImages: ReturnType<typeof smallImages>;
  manifestImage: ReturnType<typeof makeImage>;
  tagImage: ReturnType<typeof makeImage>;
}

/** Fresh content for each round (the same for both registries within a round), so no registry
 * finds blobs or tags of an earlier round or run. */
function makeWorkload(s: Settings, groups: Set<Group>): Workload {
  const t0 = performance.now();
  const seed = randomBytes(4).readUInt32LE(0);
  const mono = new SeededBlob(s.blobSize, seed);
  const chunked = new SeededBlob(s.blobSize, seed + 1);
  const rng = new Rng(seed + 2);
  const w: Workload = {
    prefix: `bench-${seed.toString(16).padStart(8, '0')}`,
    mono,
    chunked,
    images: smallImages(s.images, seed + 3),
    warmupImages: smallImages(s.warmupImages, seed + 4),
    manifestImage: makeImage(rng),
    tagImage: makeImage(rng),
  };
  if (groups.has('upload') || groups.has('download')) {
    void mono.digest;
    if (groups.has('upload')) void chunked.digest;
  }
  log(`generated workload ${w.prefix} and digests in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return w;
}

/** Per figure, the median over rounds; notes list every round's value. */
function combineRounds(runs: Results[]): Results {
  if (runs.length === 1) return runs[0]!;
  const out: Results = {};
  for (const def of FIGURES) {
    const ms = runs.map((r) => r[def.key]);
    if (ms.every((m) => m === undefined)) continue;
    const values = ms.flatMap((m) => (m?.value === undefined ? [] : [m.value]));
    const errors = ms.flatMap((m, i) => (m?.error ? [`round ${i + 1}: ${m.error}`] : []));
    const m: Measurement = {};
    const cpus = ms.flatMap((x) => (x?.cpu === undefined ? [] : [x.cpu]));
    if (cpus.length) m.cpu = median(cpus);
    if (values.length) {
      m.value = median(values);
      m.note = `median of ${values.length} rounds: ${values.map((v) => v.toFixed(def.digits)).join(' / ')}`;
      if (def.cpu && cpus.length) m.note += `; server CPU ${cpus.map((v) => v.toFixed(def.cpu!.digits)).join(' / ')} ${def.cpu.unit}`;
      for (const [name, re] of [
        ['PostgreSQL', /PostgreSQL CPU ([\d.]+)/],
        ['S3 server', /S3 server \(radosgw \+ osd\) CPU ([\d.]+)/],
      ] as const) {
        const xs = ms.flatMap((x) => re.exec(x?.note ?? '')?.[1] ?? []);
        if (def.cpu && xs.length) m.note += `; ${name} CPU ${xs.join(' / ')} ${def.cpu.unit}`;
      }
    } else {
      m.note = ms.find((x) => x?.note)?.note;
    }
    if (errors.length) m.error = errors.join('; ');
    out[def.key] = m;
  }
  return out;
}

async function measure(results: Results, key: FigureKey, what: string, fn: () => Promise<Measurement | number>): Promise<void> {
  const t0 = performance.now();
  try {
    const m = await fn();
    results[key] = typeof m === 'number' ? { value: m } : m;
    const v = results[key]?.value;
    log(`  ${what}: ${v === undefined ? '-' : v.toFixed(2)}${results[key]?.note ? ` (${results[key]?.note})` : ''} [${((performance.now() - t0) / 1000).toFixed(1)} s]`);
  } catch (err) {
    results[key] = { error: (err as Error).message.split('\n')[0] };
    log(`  ${what}: FAILED: ${(err as Error).message}`);
  }
}

/** CPU per operation of a figure's timed part: the server's, and the S3 server's when known. */
class FigureCpu {
  readonly server: CpuMeter;
  readonly s3: CpuMeter | undefined;
  constructor(
    serverPid: number | undefined,
    s3Pids: number[],
    readonly db?: DatabaseMeter,
  ) {
    this.server = new CpuMeter(serverPid === undefined ? [] : [serverPid]);
    this.s3 = s3Pids.length ? new CpuMeter(s3Pids) : undefined;
  }
  get probe() {
    return probes(...[this.server, this.s3, this.db].filter((p) => p !== undefined));
  }
  /** Sets the measurement's CPU per operation (in the figure's unit) for `ops` operations. */
  record(results: Results, key: FigureKey, ops: number, hasServer: boolean): void {
    const m = results[key];
    const def = FIGURES.find((d) => d.key === key)!;
    if (!m || m.value === undefined || !def.cpu || !(ops > 0)) return;
    if (hasServer && this.server.seconds !== undefined) m.cpu = (this.server.seconds / ops) * def.cpu.scale;
    const extra = (name: string, seconds: number | undefined) => {
      if (seconds === undefined) return;
      m.note = [m.note, `${name} CPU ${((seconds / ops) * def.cpu!.scale).toFixed(def.cpu!.digits)} ${def.cpu!.unit}`].filter(Boolean).join(', ');
    };
    extra('PostgreSQL', this.db?.seconds);
    extra('S3 server (radosgw + osd)', this.s3?.seconds);
  }
}

async function runFigures(reg: Registry, s: Settings, w: Workload, groups: Set<Group>, s3Pids: number[], db?: () => DatabaseMeter): Promise<Results> {
  const results: Results = {};
  const hasServer = reg.pid !== undefined;
  /** Measures one figure with a fresh CPU probe, then sets its CPU per operation. */
  const timed = async (key: FigureKey, what: string, ops: () => number, fn: (cpu: FigureCpu) => Promise<Measurement | number>) => {
    const cpu = new FigureCpu(reg.pid, s3Pids, db?.());
    await measure(results, key, what, () => fn(cpu));
    cpu.record(results, key, ops(), hasServer);
    const c = results[key]?.cpu;
    const def = FIGURES.find((d) => d.key === key)!;
    if (c !== undefined && def.cpu) log(`    server CPU ${c.toFixed(def.cpu.digits)} ${def.cpu.unit}`);
  };
  const blobMB = w.mono.size / 1e6;
  const sockets = Math.max(s.imageConcurrency, s.tagConcurrency);
  const client = new Client(reg.url, sockets);
  const requestClient = s.pushClient === 'raw' && reg.url.startsWith('http:') ? new RawClient(reg.url, sockets) : client;
  try {
    const idle = await reg.rssMiB();
    if (idle !== undefined) results.idle_rss = { value: idle };
    if (groups.has('upload') || groups.has('download')) {
      await timed('upload_monolithic', 'monolithic upload MB/s', () => blobMB, (cpu) => uploadMonolithic(client, `${w.prefix}/big`, w.mono, cpu.probe));
    }
    if (groups.has('upload')) {
      await timed('upload_chunked', 'chunked upload MB/s', () => blobMB, (cpu) => uploadChunked(client, `${w.prefix}/big`, w.chunked, s.patchSize, cpu.probe));
    }
    // Let the uploads' dirty pages reach the disk, so writeback does not disturb what follows.
    if (groups.has('upload') || groups.has('download')) await syncDisks();
    if (groups.has('download')) {
      await timed('download', 'download MB/s', () => blobMB * s.downloads, async (cpu) => {
        const r = await download(client, `${w.prefix}/big`, w.mono, s.downloads, s.downloadTool, cpu.probe);
        return { value: r.value, note: `${s.downloadTool}, runs ${r.runs.map((x) => x.toFixed(0)).join('/')}` };
      });
    }
    if (groups.has('manifest')) {
      let pushed = true;
      try {
        await pushImage(client, `${w.prefix}/manifest`, 'latest', w.manifestImage);
      } catch (err) {
        pushed = false;
        results.manifest_get = results.manifest_head = { error: `push for manifest figures: ${(err as Error).message}` };
        log(`  manifest figures: FAILED: ${(err as Error).message}`);
      }
      if (pushed) {
        for (const [key, method, tool] of [
          ['manifest_get', 'GET', s.loadTool],
          ['manifest_head', 'HEAD', 'node'],
          ['manifest_get_node', 'GET', 'node'],
        ] as const) {
          let requests = 0;
          await timed(key, `manifest ${method} req/s (${tool})`, () => requests, async (cpu) => {
            const r = await manifestLoad(client, s, `${w.prefix}/manifest`, 'latest', method, tool, cpu.probe);
            requests = r.requests;
            const lat = r.p50Ms !== undefined ? `p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms?.toFixed(1)} ms` : '';
            return { value: r.rps, note: [r.tool, lat, r.errors ? `${r.errors} ERRORS` : ''].filter(Boolean).join(', ') };
          });
          if (results[key]?.note?.includes('ERRORS')) results[key]!.error = `${results[key]!.note}`;
        }
      }
    }
    if (groups.has('push')) {
      await timed('small_push', 'small-image pushes/s', () => w.images.length, async (cpu) => {
        await smallPushes(requestClient, s, `${w.prefix}/warmup`, w.warmupImages);
        const r = await smallPushes(requestClient, s, w.prefix, w.images, cpu.probe);
        return { value: r.value, note: `${s.pushClient} client, its CPU ${(r.clientCpu * 100).toFixed(0)}% of one core` };
      });
    }
    if (groups.has('tags')) {
      let tf: Awaited<ReturnType<typeof tagFigures>> | undefined;
      await timed('tagging', 'tagging manifest PUTs/s', () => s.tags, async (cpu) => {
        tf = await tagFigures(requestClient, s, `${w.prefix}/tags`, w.tagImage, cpu.probe);
        return tf.tagging;
      });
      if (tf) {
        results.tags_list = { value: tf.list };
        const unsupported = { note: 'ignores ?n= (no tag pagination)' };
        results.tags_list_page = tf.page === undefined ? unsupported : { value: tf.page };
        results.tags_list_walk = tf.walk === undefined ? unsupported : { value: tf.walk };
        log(`  tag list ms: full ${tf.list.toFixed(2)}, n=100 page ${tf.page?.toFixed(2) ?? 'n/a'}, walk ${tf.walk?.toFixed(1) ?? 'n/a'}`);
      } else if (results.tagging?.error) {
        results.tags_list = results.tags_list_page = results.tags_list_walk = { error: results.tagging.error };
      }
    }
    const rss = await reg.peakRssMiB();
    if (rss !== undefined) results.peak_rss = { value: rss };
  } finally {
    client.close();
    requestClient.close();
  }
  return results;
}

// ---------------------------------------------------------------- report

function fmt(v: number | undefined, digits: number): string {
  if (v === undefined) return '';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

interface Row {
  def: FigureDef;
  label: string;
  portfolio?: Measurement;
  distribution?: Measurement;
  ratio?: number;
  ratioVsReference: boolean;
  target?: number;
  reference?: [number, number];
  met?: boolean;
}

function buildRows(s: Settings, p: Results | undefined, d: Results | undefined): Row[] {
  const rows: Row[] = [];
  for (const def of FIGURES) {
    const pm = p?.[def.key];
    const dm = d?.[def.key];
    if (!pm && !dm) continue;
    // The reference figures are distribution on local files: no yardstick for the S3 configuration.
    const target = s.scaleOut ? def.scaleOutTarget : def.target;
    const reference = s.scaleOut ? undefined : def.reference;
    let ratio: number | undefined;
    let ratioVsReference = false;
    if (pm?.value !== undefined && dm?.value !== undefined && dm.value > 0) {
      ratio = pm.value / dm.value;
    } else if (pm?.value !== undefined && !d && reference && !s.quick) {
      ratio = pm.value / ((reference[0] + reference[1]) / 2);
      ratioVsReference = true;
    }
    const met = target !== undefined && ratio !== undefined && !pm?.error ? ratio >= target : undefined;
    rows.push({ def, label: def.label(s), portfolio: pm, distribution: dm, ratio, ratioVsReference, target, reference, met });
  }
  return rows;
}

function cell(m: Measurement | undefined, digits: number): string {
  if (!m) return '-';
  if (m.value === undefined) return m.error ? 'error' : 'n/a';
  return fmt(m.value, digits) + (m.error ? ' (!)' : '');
}

function cpuCell(m: Measurement | undefined, def: FigureDef): string {
  return m?.cpu === undefined || !def.cpu ? '' : `${fmt(m.cpu, def.cpu.digits)} ${def.cpu.unit}`;
}

function printTable(rows: Row[], header: string[]): void {
  const table = [
    header,
    ...rows.map((r) => [
      r.label,
      cell(r.portfolio, r.def.digits),
      cpuCell(r.portfolio, r.def),
      cell(r.distribution, r.def.digits),
      cpuCell(r.distribution, r.def),
      r.ratio === undefined ? '-' : `${r.ratio.toFixed(2)}x${r.ratioVsReference ? '*' : ''}`,
      r.reference ? (r.reference[0] === r.reference[1] ? `~${fmt(r.reference[0], 0)}` : `${fmt(r.reference[0], 0)}–${fmt(r.reference[1], 0)}`) : '',
      r.target === undefined ? '' : `>= ${r.target}x`,
      r.met === undefined ? '' : r.met ? 'yes' : 'NO',
    ]),
  ];
  const widths = header.map((_, i) => Math.max(...table.map((row) => [...(row[i] ?? '')].length)));
  const line = (row: string[]) =>
    row
      .map((c, i) => {
        const pad = ' '.repeat(widths[i]! - [...c].length);
        return i === 0 ? c + pad : pad + c;
      })
      .join('  ');
  console.log(line(table[0]!));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of table.slice(1)) console.log(line(row));
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  // Join '--engine-args VALUE' into '--engine-args=VALUE': parseArgs refuses a separate value
  // that starts with a dash, and engine flags always do.
  const argv: string[] = [];
  const raw = process.argv.slice(2);
  for (let i = 0; i < raw.length; i++) {
    const a = raw[i]!;
    if ((a === '--engine-args' || a === '--engine-env') && i + 1 < raw.length) argv.push(`${a}=${raw[++i]}`);
    else argv.push(a);
  }
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      'scale-out': { type: 'boolean', default: false },
      'blob-redirect': { type: 'boolean', default: false },
      only: { type: 'string' },
      target: { type: 'string' },
      'engine-args': { type: 'string' },
      'engine-env': { type: 'string' },
      figures: { type: 'string' },
      'load-tool': { type: 'string' },
      'distribution-cache': { type: 'boolean', default: false },
      'json-out': { type: 'string' },
      'load-threads': { type: 'string', default: '2' },
      'download-tool': { type: 'string' },
      'push-client': { type: 'string' },
      rounds: { type: 'string', default: '1' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const only = values.only;
  if (only !== undefined && only !== 'portfolio' && only !== 'distribution') throw new Error(`--only: expected portfolio or distribution, got '${only}'`);
  const loadTool = (values['load-tool'] ?? defaultLoadTool()) as LoadTool;
  if (!['wrk', 'autocannon', 'node'].includes(loadTool)) throw new Error(`--load-tool: expected wrk, autocannon or node`);
  if (loadTool === 'wrk' && !existsSync(WRK_BIN)) throw new Error(`${WRK_BIN} not found: apt-get install wrk, or use --load-tool autocannon`);
  const groups = new Set<Group>(
    values.figures
      ? values.figures.split(',').map((g) => {
          const t = g.trim() as Group;
          if (!GROUPS.includes(t)) throw new Error(`--figures: unknown group '${g}' (know: ${GROUPS.join(',')})`);
          return t;
        })
      : GROUPS,
  );
  const engineArgs = shellSplit(values['engine-args'] ?? process.env.PORTFOLIO_BENCH_ARGS ?? '');
  const engineEnv = parseEnv(values['engine-env'] ?? process.env.PORTFOLIO_BENCH_ENV ?? '');

  let runPortfolio = only !== 'distribution';
  let runDistribution = only !== 'portfolio';
  const notes: string[] = [];
  if (runDistribution && !distributionInstalled()) {
    runDistribution = false;
    const msg = `distribution not found at ${DISTRIBUTION_BIN}: install it with 'apt-get install docker-registry' to compare; benchmarking Portfolio alone (ratios marked * are against the reference figures)`;
    notes.push(msg);
    log(msg);
    if (only === 'distribution') throw new Error(msg);
  }
  if (runPortfolio && !values.target && !existsSync(CLI)) {
    const msg = `Portfolio not found at ${CLI} (build it first)`;
    if (only === 'portfolio' || !runDistribution) throw new Error(msg);
    runPortfolio = false;
    notes.push(`${msg}; benchmarking distribution alone`);
    log(`${msg}; benchmarking distribution alone`);
  }

  const tmp = await mkdtemp('/tmp/portfolio-bench-');
  const cleanupSync = () => {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: stopping servers and removing ${tmp}${scaleOut ? `; S3 bucket ${scaleOut.bucket} and the portfolio_bench_* databases of this run are left behind` : ''}`);
    cleanupSync();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let scaleOut: ScaleOut | undefined;
  let s3Pids: number[] = [];

  try {
    const rounds = Number(values.rounds);
    if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds: expected a positive integer');
    const loadThreads = Number(values['load-threads']);
    if (!Number.isInteger(loadThreads) || loadThreads < 1) throw new Error('--load-threads: expected a positive integer');
    const s = settingsFor(values.quick ?? false, loadTool, loadThreads, tmp);
    s.scaleOut = values['scale-out'];
    const redirect = values['blob-redirect'] ?? false;
    if (redirect && !s.scaleOut) throw new Error('--blob-redirect: only with --scale-out');
    if (s.scaleOut) {
      scaleOut = await ScaleOut.open();
      s3Pids = await cephPids();
      log(`scale-out: bucket ${scaleOut.bucket} at ${scaleOut.endpoint.endpoint}${s3Pids.length ? `, S3 server pids ${s3Pids.join(' ')}` : ''}`);
    }
    if (values['download-tool']) {
      if (values['download-tool'] !== 'curl' && values['download-tool'] !== 'node') throw new Error('--download-tool: expected curl or node');
      s.downloadTool = values['download-tool'];
    }
    if (values['push-client']) {
      if (values['push-client'] !== 'raw' && values['push-client'] !== 'node') throw new Error('--push-client: expected raw or node');
      s.pushClient = values['push-client'];
    }
    const loadAvg = os.loadavg().map((x) => Number(x.toFixed(2)));
    log(`settings: blobs ${s.blobSize / 1048576} MiB, load ${s.loadDurationS} s at ${s.connections} conns (${s.loadTool}), ${s.images} images, ${s.tags} tags; scratch ${tmp}`);
    const t0 = performance.now();
    const portfolioRuns: Results[] = [];
    const distributionRuns: Results[] = [];
    const portfolioArgs = [...(redirect ? ['--blob-redirect', '10m'] : []), ...engineArgs];
    const portfolioDesc = values.target
      ? `already-running registry at ${values.target}`
      : `node bin/portfolio.js serve --data-dir <tmp>${s.scaleOut ? ' --database-url <fresh database> --storage s3://<bucket>/<fresh prefix>' : ''}${portfolioArgs.length ? ' ' + portfolioArgs.join(' ') : ''}`;
    const distributionDesc = `${DISTRIBUTION_BIN}, ${s.scaleOut ? `S3 driver (bucket/<fresh rootdirectory>, ${redirect ? 'blob GETs redirected to S3' : 'redirect disabled'})` : 'filesystem storage'}${values['distribution-cache'] ? ', inmemory blob descriptor cache' : ''}`;
    /** Measures a started registry, then stops it and removes its data, whatever happened. */
    const runAndDispose = async (name: string, reg: Registry, dataDir: string, w: Workload, stores?: Stores): Promise<Results> => {
      try {
        log(`${name} at ${reg.url}`);
        const database = stores?.database;
        return await runFigures(reg, s, w, groups, s3Pids, scaleOut && database ? () => scaleOut!.meter(database) : undefined);
      } finally {
        await reg.stop();
        await rm(dataDir, { recursive: true, force: true });
        await stores?.dispose();
        await syncDisks();
      }
    };
    const measurePortfolio = async (w: Workload): Promise<void> => {
      let reg: Registry;
      if (values.target) {
        log(`Portfolio: ${portfolioDesc}`);
        reg = await externalRegistry(values.target);
      } else {
        const stores = scaleOut ? await scaleOut.portfolio('portfolio') : undefined;
        log(`starting Portfolio: ${portfolioDesc}${stores ? ` (${stores.describe})` : ''}`);
        try {
          reg = await startPortfolio({
            cli: CLI,
            dataDir: join(tmp, 'portfolio'),
            extraArgs: [...(stores?.args ?? []), ...portfolioArgs],
            extraEnv: { ...stores?.env, ...engineEnv },
          });
        } catch (err) {
          await stores?.dispose();
          throw err;
        }
        portfolioRuns.push(await runAndDispose('Portfolio', reg, join(tmp, 'portfolio'), w, stores));
        return;
      }
      portfolioRuns.push(await runAndDispose('Portfolio', reg, join(tmp, 'portfolio'), w));
    };
    const measureDistribution = async (w: Workload): Promise<void> => {
      const stores = scaleOut?.distribution('distribution');
      log(`starting distribution (${distributionDesc})${stores ? ` (${stores.describe})` : ''}`);
      const e = scaleOut?.endpoint;
      const s3 = e && stores ? { ...e, bucket: stores.bucket, rootDirectory: stores.prefix, redirect } : undefined;
      let reg: Registry;
      try {
        reg = await startDistribution(join(tmp, 'distribution'), { cache: values['distribution-cache'] ?? false, s3 });
      } catch (err) {
        await stores?.dispose();
        throw err;
      }
      distributionRuns.push(await runAndDispose('distribution', reg, join(tmp, 'distribution'), w, stores));
    };
    for (let round = 1; round <= rounds; round++) {
      if (rounds > 1) log(`round ${round} of ${rounds}`);
      const w = makeWorkload(s, groups);
      // Alternate the order, so neither registry always runs on the warmer (or busier) machine.
      const order = round % 2 === 1 ? [measurePortfolio, measureDistribution] : [measureDistribution, measurePortfolio];
      for (const run of order) {
        if (run === measurePortfolio && !runPortfolio) continue;
        if (run === measureDistribution && !runDistribution) continue;
        await run(w);
      }
    }
    const portfolio = runPortfolio ? combineRounds(portfolioRuns) : undefined;
    const distribution = runDistribution ? combineRounds(distributionRuns) : undefined;

    const rows = buildRows(s, portfolio, distribution);
    const cpuIdle = cpuIdlePolicy();
    console.log('');
    console.log(`Portfolio vs CNCF distribution 2.8.2${s.scaleOut ? ', scale-out: PostgreSQL + S3 against the S3 driver' : ''} — ${s.quick ? 'QUICK run (smaller blobs, shorter runs: not comparable to the reference figures)' : 'full run'}; MB = 10^6 bytes`);
    console.log(`Portfolio: ${runPortfolio ? portfolioDesc : 'not run'}`);
    console.log(`distribution: ${runDistribution ? distributionDesc : 'not run'}`);
    if (scaleOut) console.log(`S3: ${scaleOut.endpoint.endpoint}, bucket ${scaleOut.bucket} (removed after the run)`);
    console.log(`machine: ${os.cpus().length} CPUs${cpuIdle ? `, ${cpuIdle}` : ''}, load average at start ${loadAvg.join(' ')} (other work on the machine skews the figures)`);
    console.log('');
    printTable(rows, ['figure', 'Portfolio', 'its CPU', 'distribution', 'its CPU', 'ratio', 'distribution ref', 'target', 'met']);
    console.log('');
    const errs = rows.flatMap((r) => [
      ...(r.portfolio?.error ? [`Portfolio, ${r.label}: ${r.portfolio.error}`] : []),
      ...(r.distribution?.error ? [`distribution, ${r.label}: ${r.distribution.error}`] : []),
    ]);
    for (const r of rows) {
      for (const [who, m] of [
        ['Portfolio', r.portfolio],
        ['distribution', r.distribution],
      ] as const) {
        if (m?.note && !m.error) console.log(`detail: ${who}, ${r.label}: ${m.note}`);
      }
    }
    for (const e of errs) console.log(`error: ${e}`);
    for (const n of notes) console.log(`note: ${n}`);
    if (rows.some((r) => r.distribution?.note?.includes('?n='))) console.log('n/a: distribution 2.8 ignores ?n= on tags/list (tag pagination arrived in distribution 3.0)');
    if (rows.some((r) => r.def.group === 'manifest')) console.log(`[a] measured with ${s.loadTool}; [b] measured with the bench's raw-socket load generator (wrk and autocannon cannot parse bodiless HEAD responses), GET repeated with it for comparison`);
    if (rows.some((r) => r.ratioVsReference)) console.log('* ratio against the midpoint of the reference figure (distribution not measured in this run)');
    console.log(`its CPU: the server process's CPU (user + system, /proc) per operation in the timed part${s3Pids.length ? "; the S3 server's (radosgw + ceph-osd, shared with any other work using it) and, for Portfolio, its PostgreSQL database's backends are in the details" : ''}`);
    if (!s.scaleOut) console.log('distribution ref: distribution 2.8.2 measured earlier on this machine (shared/notes/dependencies.md); ratio = Portfolio / distribution (for ms and MiB rows lower is better)');
    const targets = rows.filter((r) => r.target !== undefined);
    console.log(`targets met: ${targets.filter((r) => r.met).length}/${targets.length}`);

    const json = {
      bench: 'portfolio',
      date: new Date().toISOString(),
      quick: s.quick,
      rounds,
      cpus: os.cpus().length,
      loadAverageAtStart: loadAvg,
      cpuIdle: cpuIdle ?? null,
      settings: { ...s, scratchDir: undefined },
      portfolioConfig: runPortfolio ? portfolioDesc : null,
      distributionConfig: runDistribution ? { cache: values['distribution-cache'] ?? false, storage: s.scaleOut ? 's3' : 'filesystem', redirect } : null,
      figures: Object.fromEntries(
        rows.map((r) => [
          r.def.key,
          {
            label: r.label,
            unit: r.def.unit,
            portfolio: r.portfolio?.value ?? null,
            distribution: r.distribution?.value ?? null,
            cpuUnit: r.def.cpu?.unit,
            portfolioCpu: r.portfolio?.cpu,
            distributionCpu: r.distribution?.cpu,
            ratio: r.ratio === undefined ? null : Number(r.ratio.toFixed(3)),
            ratioVsReference: r.ratioVsReference || undefined,
            reference: r.reference ?? null,
            target: r.target ?? null,
            met: r.met ?? null,
            portfolioNote: r.portfolio?.note,
            distributionNote: r.distribution?.note,
            portfolioError: r.portfolio?.error,
            distributionError: r.distribution?.error,
          },
        ]),
      ),
      totalSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
    };
    const line = JSON.stringify(json, (_k, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toFixed(3)) : v));
    console.log(`BENCH_JSON ${line}`);
    if (values['json-out']) await writeFile(values['json-out'], line + '\n');
    return errs.length ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    killAll();
    await rm(tmp, { recursive: true, force: true });
    await scaleOut?.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    killAll();
    console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  },
);
