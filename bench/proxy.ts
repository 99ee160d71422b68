/**
 * Pull-through cache figures: a 256 MiB image (four 64 MiB layers) pulled straight from an
 * upstream Portfolio, then through a second Portfolio caching that upstream — the first pull
 * (every byte fetched from the upstream while it is served and stored), and the second (from
 * the cache). A pull is what docker does: the manifest, then the blobs, 3 at a time.
 *
 *   npm run bench:proxy [-- --quick] ["--engine-args=…"] ["--cache-engine-args=…"]
 *
 * Engine args go to both servers; cache engine args, when given, to the cache alone (e.g. the cache
 * on PostgreSQL + S3 in front of a default upstream: two servers must not share one database).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { cpuSeconds } from './cpu.js';
import { Client, expect } from './http.js';
import { MiB, Rng, SeededBlob, sha256 } from './data.js';
import { ACCEPT_MANIFESTS, OCI_MANIFEST, pool, putManifest, startUpload } from './oci.js';
import { killAll, startPortfolio, type Registry } from './servers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'bin/portfolio.js');
const REPO = 'bench/big';

interface Layer {
  blob: SeededBlob;
  digest: string;
}

async function push(client: Client, layers: Layer[]): Promise<void> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
  const blobs: { digest: string; size: number; body: Buffer | Iterable<Buffer> }[] = [
    ...layers.map((l) => ({ digest: l.digest, size: l.blob.size, body: l.blob.range() })),
    { digest: sha256(config), size: config.length, body: config },
  ];
  for (const b of blobs) {
    const location = await startUpload(client, REPO);
    location.searchParams.set('digest', b.digest);
    expect(await client.request(location, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': b.size }, body: b.body }), 201, 'PUT blob');
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.blob.size })),
    }),
  );
  await putManifest(client, REPO, 'v1', manifest);
}

/** One pull as docker does it; returns the seconds it took and the bytes received. */
async function pull(client: Client, repo: string): Promise<{ seconds: number; bytes: number }> {
  const started = process.hrtime.bigint();
  const res = expect(await client.request(`/v2/${repo}/manifests/v1`, { headers: { Accept: ACCEPT_MANIFESTS } }), 200, 'GET manifest');
  const manifest = JSON.parse(res.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  const digests = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  let bytes = 0;
  await pool(digests.length, 3, async (i) => {
    const blob = expect(await client.request(`/v2/${repo}/blobs/${digests[i]}`, { discard: true, followRedirects: true, timeoutMs: 120_000 }), 200, 'GET blob');
    bytes += blob.bytes;
  });
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, bytes };
}

/** CPU seconds of a server: the cost that load on the machine does not skew. */
async function serverCpu(pid: number | undefined): Promise<number> {
  return (pid === undefined ? undefined : await cpuSeconds(pid)) ?? NaN;
}

/** Runs `work`, adding the CPU seconds each server used meanwhile to the result. */
async function measured<T>(servers: Registry[], work: () => Promise<T>): Promise<T & { cpu: number[] }> {
  const before = await Promise.all(servers.map((s) => serverCpu(s.pid)));
  const result = await work();
  const after = await Promise.all(servers.map((s) => serverCpu(s.pid)));
  return { ...result, cpu: after.map((a, i) => a - before[i]!) };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, 'engine-args': { type: 'string' }, 'cache-engine-args': { type: 'string' } } });
  const layerSize = values.quick ? 8 * MiB : 64 * MiB;
  // Plain whitespace-separated flags (no quoting needed for engine URLs).
  const engineArgs = (values['engine-args'] ?? process.env.PORTFOLIO_BENCH_ARGS ?? '').split(/\s+/).filter(Boolean);
  const cacheEngineArgs = values['cache-engine-args'] === undefined ? engineArgs : values['cache-engine-args'].split(/\s+/).filter(Boolean);
  const dir = await mkdtemp(join(os.tmpdir(), 'portfolio-bench-proxy-'));
  const servers: Registry[] = [];
  try {
    const rng = new Rng(Date.now() >>> 0);
    const layers = Array.from({ length: 4 }, () => {
      const blob = new SeededBlob(layerSize, rng.next());
      return { blob, digest: blob.digest };
    });
    const upstream = await startPortfolio({ cli: CLI, dataDir: join(dir, 'upstream'), extraArgs: engineArgs, extraEnv: {} });
    servers.push(upstream);
    const cache = await startPortfolio({ cli: CLI, dataDir: join(dir, 'cache'), extraArgs: [...cacheEngineArgs, '--proxy', `up=${upstream.url}`], extraEnv: {} });
    servers.push(cache);
    const direct = new Client(upstream.url);
    const through = new Client(cache.url);
    await push(direct, layers);
    await pull(direct, REPO); // warm-up: the upstream's files are in the page cache for every figure alike
    const both = [upstream, cache];
    const straight = await measured(both, () => pull(direct, REPO));
    const cache0 = await serverCpu(cache.pid);
    const first = await measured(both, () => pull(through, `up/${REPO}`));
    // Storing may go on after the client has its bytes: the whole fill's CPU is counted after a pause.
    await delay(3000);
    const fillCpu = (await serverCpu(cache.pid)) - cache0;
    const second = await measured(both, () => pull(through, `up/${REPO}`));
    const mb = (r: { seconds: number; bytes: number }) => r.bytes / 1e6 / r.seconds;
    const rows = [
      ['straight from the upstream', straight],
      ['through the cache, first pull', first],
      ['through the cache, second pull', second],
    ] as const;
    const total = layers.reduce((n, l) => n + l.blob.size, 0);
    console.log(`pull of a ${Math.round(total / MiB)} MiB image (4 layers), 3 blobs at a time`);
    const cpu = (seconds: number | undefined) => `${((seconds ?? NaN) * 1000).toFixed(0).padStart(5)} ms`;
    for (const [name, r] of rows) {
      console.log(`  ${name.padEnd(32)} ${r.seconds.toFixed(2).padStart(7)} s ${mb(r).toFixed(0).padStart(6)} MB/s   CPU: upstream ${cpu(r.cpu[0])}, cache ${cpu(r.cpu[1])}`);
    }
    console.log(`  cache CPU for the whole first pull, storing included: ${cpu(fillCpu)}`);
    const ratio = mb(first) / mb(straight);
    console.log(`  first pull / straight: ${ratio.toFixed(2)}× (target ≥ 0.9×: ${ratio >= 0.9 ? 'met' : 'NOT met'}); second / straight: ${(mb(second) / mb(straight)).toFixed(2)}×`);
    console.log(`BENCH_JSON ${JSON.stringify({ imageBytes: total, straight, first, second, firstRatio: ratio, fillCpu })}`);
  } finally {
    for (const s of servers.reverse()) await s.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  killAll();
  process.exit(1);
});
