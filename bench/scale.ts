/**
 * Costs as the registry grows: the same request and maintenance figures on stores of several
 * sizes, each filled by `portfolio dev generate` (rows in bulk, fsck-clean), on SQLite and
 * PostgreSQL (bytes on the filesystem). Request figures are medians over sequential requests
 * from one client (loopback) and are shown as a ratio to the empty store; maintenance commands
 * run as their own process under /usr/bin/time (wall time, peak RSS, CPU).
 *
 *   npm run bench:scale [-- --sizes empty,10k,100k] [--engines sqlite,pg] [--quick] [--out FILE]
 *
 * Sizes: empty; 1k = 1,000 repositories / 10,000 blobs / 10,000 tags (one repository with
 * 1,000); 10k = 10,000 / 100,000 / 100,000 (one with 10,000); 100k = 100,000 / 1,000,000 /
 * 1,000,000 (two with 100,000). --quick runs empty,1k,10k with shorter loads and 10,000 garbage
 * blobs instead of 100,000.
 */
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import Sqlite from 'better-sqlite3';
import pg from 'pg';
import { createDatabase, dropDatabase } from './databases.js';
import { sha256, Rng } from './data.js';
import { Client, expect, header } from './http.js';
import { defaultLoadTool, runLoad } from './load.js';
import { ACCEPT_MANIFESTS, makeImage, pushBlob, pushImage, putManifest, type Image } from './oci.js';
import { killAll, startPortfolio, syncDisks } from './servers.js';

interface Size {
  name: string;
  repositories: number;
  blobs: number;
  tags: number;
  big: number;
  perBig: number;
}
const SIZES: Record<string, Size> = {
  empty: { name: 'empty', repositories: 0, blobs: 0, tags: 0, big: 0, perBig: 0 },
  '1k': { name: '1k', repositories: 1_000, blobs: 10_000, tags: 10_000, big: 1, perBig: 1_000 },
  '10k': { name: '10k', repositories: 10_000, blobs: 100_000, tags: 100_000, big: 1, perBig: 10_000 },
  '100k': { name: '100k', repositories: 100_000, blobs: 1_000_000, tags: 1_000_000, big: 2, perBig: 100_000 },
};

const { values } = parseArgs({
  options: { sizes: { type: 'string' }, engines: { type: 'string' }, quick: { type: 'boolean' }, out: { type: 'string' }, garbage: { type: 'string' } },
});
const quick = Boolean(values.quick);
const sizes = (values.sizes ?? (quick ? 'empty,1k,10k' : 'empty,10k,100k')).split(',').map((n) => {
  const s = SIZES[n];
  if (!s) throw new Error(`unknown size ${n} (${Object.keys(SIZES).join(', ')})`);
  return s;
});
const engines = (values.engines ?? 'sqlite,pg').split(',') as ('sqlite' | 'pg')[];
const garbage = Number(values.garbage ?? (quick ? 10_000 : 100_000));
const samples = quick ? 30 : 100;
const loadSeconds = quick ? 3 : 5;
const cli = resolve(import.meta.dirname, '../../bin/portfolio.js');
const run = promisify(execFile);

/** One figure: a value and the unit it is in; `ratio` compares it with the empty store. */
type Figures = Record<string, { value: number; unit: string; note?: string }>;
const results: { engine: string; size: string; figures: Figures }[] = [];

const now = () => performance.now();
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
async function cpuSeconds(pid: number | undefined): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Runs a portfolio command to completion under /usr/bin/time: wall seconds, peak RSS (MiB), CPU seconds, stdout. */
async function timed(args: string[], onRunning?: () => Promise<void>): Promise<{ s: number; rssMiB: number; cpuS: number; stdout: string }> {
  const timeFile = join(tmpdir(), `portfolio-scale-time-${randomUUID()}`);
  const child = spawn('/usr/bin/time', ['-f', '%e %M %U %S', '-o', timeFile, process.execPath, cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number>((r) => child.once('exit', (c) => r(c ?? -1)));
  let watching = true;
  const watcher = (async () => {
    while (watching && onRunning) {
      await onRunning();
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const code = await exited;
  watching = false;
  await watcher;
  if (code !== 0) throw new Error(`portfolio ${args[0]} exited ${code}: ${stderr}`);
  const [wall, rssKiB, user, sys] = (await readFile(timeFile, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
  await rm(timeFile, { force: true });
  return { s: wall!, rssMiB: rssKiB! / 1024, cpuS: user! + sys!, stdout };
}

/**
 * Median milliseconds of `task` over `n` runs after a few warm-up runs, and the server's CPU
 * per run (µs): on a loaded machine the latency moves with the load, the CPU far less.
 */
async function latency(pid: number | undefined, n: number, task: (i: number) => Promise<void>): Promise<{ ms: number; cpuUs: number }> {
  for (let i = 0; i < Math.min(5, n); i++) await task(n + i);
  const times: number[] = [];
  const cpu0 = await cpuSeconds(pid);
  for (let i = 0; i < n; i++) {
    const t0 = now();
    await task(i);
    times.push(now() - t0);
  }
  return { ms: median(times), cpuUs: (((await cpuSeconds(pid)) - cpu0) / n) * 1e6 };
}

/** Metadata bytes per table group: tags, and everything else (blobs, links, manifests, references, repositories). */
async function databaseBytes(engine: 'sqlite' | 'pg', dir: string, url: string | undefined): Promise<{ tags: number; rest: number }> {
  if (engine === 'sqlite') {
    const db = new Sqlite(join(dir, 'metadata.db'), { readonly: true });
    try {
      const rows = db
        .prepare(`select m.tbl_name as t, sum(s.pgsize) as bytes from dbstat s join sqlite_master m on m.name = s.name group by m.tbl_name`)
        .all() as { t: string; bytes: number }[];
      const tags = rows.filter((r) => r.t === 'tags').reduce((a, r) => a + r.bytes, 0);
      return { tags, rest: rows.reduce((a, r) => a + r.bytes, 0) - tags };
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ t: string; bytes: string }>(
      `select relname as t, pg_total_relation_size(oid) as bytes from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace`,
    );
    const tags = r.rows.filter((x) => x.t === 'tags').reduce((a, x) => a + Number(x.bytes), 0);
    return { tags, rest: r.rows.reduce((a, x) => a + Number(x.bytes), 0) - tags };
  } finally {
    await client.end();
  }
}

/** An artifact manifest whose subject is `image` (for the referrers figure). */
function referrer(image: Image, n: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.sbom',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size: image.manifest.length },
      annotations: { n: String(n) },
    }),
  );
}

function record(f: Figures, name: string, r: { ms: number; cpuUs: number }): void {
  f[name] = { value: r.ms, unit: 'ms' };
  f[`${name}, server CPU`] = { value: r.cpuUs, unit: 'µs' };
}

async function measure(engine: 'sqlite' | 'pg', size: Size): Promise<Figures> {
  const dir = await mkdtemp(join(tmpdir(), `portfolio-scale-${engine}-${size.name}-`));
  const url = engine === 'pg' ? await createDatabase() : undefined;
  const engineArgs = ['--data-dir', dir, ...(url ? ['--database-url', url] : [])];
  const f: Figures = {};
  const log = (what: string) => console.error(`[${engine} ${size.name}] ${what}`);
  try {
    // Fill. Rows dated two days back: past any grace period, as content of a store in use.
    await run(process.execPath, [cli, 'migrate', ...engineArgs]);
    if (size.repositories > 0) {
      const gen = await timed([
        'dev', 'generate', ...engineArgs, '--json', '--age', '48h',
        '--repositories', String(size.repositories), '--blobs', String(size.blobs), '--tags', String(size.tags),
        '--big-repositories', String(size.big), '--tags-in-big-repo', String(size.perBig),
      ]);
      f['generate'] = { value: gen.s, unit: 's', note: `peak ${gen.rssMiB.toFixed(0)} MiB` };
      f['generate CPU'] = { value: gen.cpuS, unit: 's' };
      log(`generated in ${gen.s} s, peak RSS ${gen.rssMiB.toFixed(0)} MiB`);
      const bytes = await databaseBytes(engine, dir, url);
      f['db bytes per image'] = { value: bytes.rest / size.blobs, unit: 'B', note: 'blob + links + manifest + references, all indexes' };
      f['db bytes per tag'] = { value: bytes.tags / size.tags, unit: 'B' };
    }
    await syncDisks();

    // Start-up: from spawn to the first 200 on /v2/ (polled every 100 ms).
    const t0 = now();
    const server = await startPortfolio({ cli, dataDir: dir, extraArgs: [...engineArgs.slice(2), '--gc-interval', '0'], extraEnv: {} });
    f['start-up'] = { value: now() - t0, unit: 'ms' };
    const client = new Client(server.url, 16);
    try {
      const rng = new Rng(7);
      const images = Array.from({ length: samples + 5 }, () => makeImage(rng));
      // Small-image push: 2 layers of 4 KiB and a 1 KiB config, each push to a new tag.
      record(f, 'push small image', await latency(server.pid, samples, (i) => pushImage(client, 'probe/app', `p${i}`, images[i]!)));
      // Pull: manifest by tag, then config and layers.
      const pulled = images.slice(0, samples);
      record(f, 'pull small image', await latency(server.pid, samples, async (i) => {
        expect(await client.request(`/v2/probe/app/manifests/p${i % pulled.length}`, { headers: { Accept: ACCEPT_MANIFESTS } }), 200, 'GET manifest');
        const img = pulled[i % pulled.length]!;
        for (const b of [img.config, ...img.layers]) expect(await client.request(`/v2/probe/app/blobs/${b.digest}`, { discard: true }), 200, 'GET blob');
      }));
      // Manifest GET rate at 8 connections, and the server's CPU per request.
      const cpu0 = await cpuSeconds(server.pid);
      const load = await runLoad({
        url: client.url('/v2/probe/app/manifests/p0').href,
        method: 'GET',
        headers: { Accept: ACCEPT_MANIFESTS },
        connections: 8,
        durationS: loadSeconds,
        threads: 1,
        scratchDir: dir,
        tool: defaultLoadTool(),
      });
      const cpu = (await cpuSeconds(server.pid)) - cpu0;
      f['manifest GET'] = { value: load.rps, unit: 'req/s', note: `${load.errors} errors` };
      f['manifest GET server CPU'] = { value: (cpu / load.requests) * 1e6, unit: 'µs/req' };
      // Catalog: the first page, the page its Link names, and a page 90% of the way in.
      let link: string | undefined;
      record(f, '_catalog first page', await latency(server.pid, samples, async () => {
        const r = expect(await client.request('/v2/_catalog?n=100'), 200, 'catalog');
        link = header(r, 'link');
      }));
      if (size.repositories > 0) {
        const next = /<([^>]+)>/.exec(link ?? '')?.[1];
        if (!next || !next.includes('last=')) throw new Error(`catalog: no Link with last= (${link})`);
        expect(await client.request(next), 200, 'catalog via Link');
      }
      record(f, '_catalog deep page', await latency(server.pid, samples, async () => void expect(await client.request('/v2/_catalog?n=100&last=gen-90/'), 200, 'catalog deep')));
      // Tags: the largest repository (the probe's when the store is empty).
      const [bigRepo, deep] = size.big > 0 ? ['gen-00/app-0', 'v9'] : ['probe/app', 'p5'];
      record(f, 'tags list first page', await latency(server.pid, samples, async () => void expect(await client.request(`/v2/${bigRepo}/tags/list?n=100`), 200, 'tags')));
      record(f, 'tags list deep page', await latency(server.pid, samples, async () => void expect(await client.request(`/v2/${bigRepo}/tags/list?n=100&last=${deep}`), 200, 'tags deep')));
      // Referrers of an image with 3 referrers.
      const subject = images[0]!;
      await pushBlob(client, 'probe/app', { digest: sha256('{}'), size: 2, data: Buffer.from('{}'), mediaType: 'application/vnd.oci.empty.v1+json' });
      for (let n = 0; n < 3; n++) {
        const body = referrer(subject, n);
        await putManifest(client, 'probe/app', sha256(body), body);
      }
      record(f, 'referrers list', await latency(server.pid, samples, async () => {
        const r = expect(await client.request(`/v2/probe/app/referrers/${subject.manifestDigest}`), 200, 'referrers');
        if ((JSON.parse(r.body.toString()) as { manifests: unknown[] }).manifests.length !== 3) throw new Error('referrers: expected 3');
      }));
      f['server peak RSS'] = { value: (await server.peakRssMiB()) ?? NaN, unit: 'MiB' };
    } finally {
      await server.stop();
    }
    log('requests measured');

    // Maintenance, each as its own process. On PostgreSQL, the oldest open transaction of any
    // other session is sampled during collection: it must stay short (no pass-long transaction).
    let longestTx = 0;
    const watchTx = url
      ? async () => {
          const c = new pg.Client({ connectionString: url });
          await c.connect();
          try {
            const r = await c.query<{ s: number | null }>(
              `select max(extract(epoch from clock_timestamp() - xact_start))::float8 as s from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null`,
            );
            longestTx = Math.max(longestTx, r.rows[0]?.s ?? 0);
          } finally {
            await c.end();
          }
        }
      : undefined;
    const gcIdle = await timed(['gc', ...engineArgs, '--grace', '0', '--json'], watchTx);
    const idle = JSON.parse(gcIdle.stdout) as { blobsDeleted: number };
    if (idle.blobsDeleted !== 0) throw new Error(`gc with nothing to do removed ${idle.blobsDeleted} blobs`);
    f['gc, nothing to do'] = { value: gcIdle.s, unit: 's', note: `peak ${gcIdle.rssMiB.toFixed(0)} MiB, cpu ${gcIdle.cpuS.toFixed(1)} s` };
    f['gc, nothing to do, CPU'] = { value: gcIdle.cpuS, unit: 's' };
    f['gc, nothing to do, peak RSS'] = { value: gcIdle.rssMiB, unit: 'MiB' };
    await timed(['dev', 'generate', ...engineArgs, '--json', '--age', '48h', '--prefix', 'junk', '--repositories', '100', '--blobs', '100', '--tags', '0', '--garbage', String(garbage)]);
    const gcWork = await timed(['gc', ...engineArgs, '--grace', '0', '--json'], watchTx);
    const work = JSON.parse(gcWork.stdout) as { blobsDeleted: number };
    if (work.blobsDeleted !== garbage) throw new Error(`gc removed ${work.blobsDeleted} blobs, expected ${garbage}`);
    f[`gc, removing ${garbage} blobs`] = { value: gcWork.s, unit: 's', note: `cpu ${gcWork.cpuS.toFixed(1)} s` };
    f[`gc, removing ${garbage} blobs, CPU`] = { value: gcWork.cpuS, unit: 's' };
    f[`gc, removing ${garbage} blobs, peak RSS`] = { value: gcWork.rssMiB, unit: 'MiB' };
    if (url) f['gc, longest transaction seen'] = { value: longestTx * 1000, unit: 'ms', note: 'pg_stat_activity sampled every 200 ms' };
    const fsck = await timed(['fsck', ...engineArgs, '--grace', '0', '--json']);
    const problems = (JSON.parse(fsck.stdout) as { problems: unknown[] }).problems.length;
    if (problems) throw new Error(`fsck found ${problems} problems: ${fsck.stdout.slice(0, 2000)}`);
    f['fsck'] = { value: fsck.s, unit: 's', note: `cpu ${fsck.cpuS.toFixed(1)} s` };
    f['fsck CPU'] = { value: fsck.cpuS, unit: 's' };
    f['fsck peak RSS'] = { value: fsck.rssMiB, unit: 'MiB' };
    const du = await timed(['du', ...engineArgs, '--json']);
    f['du'] = { value: du.s, unit: 's', note: `cpu ${du.cpuS.toFixed(1)} s` };
    f['du CPU'] = { value: du.cpuS, unit: 's' };
    f['du peak RSS'] = { value: du.rssMiB, unit: 'MiB' };
    log('maintenance measured');
    return f;
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (url) await dropDatabase(url);
  }
}

const fmt = (v: number) => (Number.isNaN(v) ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
function table(engine: string): string {
  const rows = results.filter((r) => r.engine === engine);
  const base = rows.find((r) => r.size === 'empty')?.figures;
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.figures)))];
  const lines = [`| ${engine} | ${rows.map((r) => r.size).join(' | ')} |`, `|---|${rows.map(() => '---:').join('|')}|`];
  for (const name of names) {
    const unit = rows.find((r) => r.figures[name])?.figures[name]!.unit ?? '';
    const cells = rows.map((r) => {
      const x = r.figures[name];
      if (!x) return '–';
      const b = base?.[name]?.value;
      const ratio = b && r.size !== 'empty' && x.unit !== 'B' ? ` (${(x.value / b).toFixed(2)}×)` : '';
      return `${fmt(x.value)}${ratio}`;
    });
    lines.push(`| ${name} (${unit}) | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});
try {
  for (const engine of engines) {
    for (const size of sizes) {
      const figures = await measure(engine, size);
      results.push({ engine, size: size.name, figures });
      if (values.out) await writeFile(values.out, JSON.stringify(results, null, 1));
    }
    console.log(`\n${table(engine)}\n`);
  }
  console.log(`load tool ${defaultLoadTool()}, ${samples} samples per latency (median), manifest GET for ${loadSeconds} s at 8 connections; ratios against the empty store`);
} finally {
  killAll();
}
