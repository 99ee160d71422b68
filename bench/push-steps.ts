/**
 * Where a small-image push's server CPU goes. The bench's push (pushImage in oci.ts: for each of
 * the image's three blobs a HEAD, a POST and a monolithic PUT, then the manifest PUT) is taken
 * apart: each kind of request is sent for every image before the next kind starts, by the same
 * 16 clients, and the server's CPU (/proc) is read around each kind. The kinds' costs, weighted by
 * how often a push sends them, add up to a push's; the whole push is measured too, as the main
 * bench does. A trivial node:http server answering the same HEADs shows what any request costs
 * here before the registry does anything.
 *
 *   npm run bench:push-steps [-- --rounds N] [--engines sqlite,pg] [--images N]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds } from './cpu.js';
import { createDatabase, dropDatabase } from './databases.js';
import { median, smallImages } from './figures.js';
import { expect, header, withQuery } from './http.js';
import { OCI_MANIFEST, pool, pushImage, type Blob, type Image } from './oci.js';
import { RawClient } from './raw-client.js';
import { freePort, killAll, startPortfolio, syncDisks, track } from './servers.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    engines: { type: 'string' },
    images: { type: 'string' },
  },
});
const rounds = Number(values.rounds ?? 3);
const engines = (values.engines ?? 'sqlite,pg').split(',') as ('sqlite' | 'pg')[];
const imageCount = Number(values.images ?? 1000);
const CLIENTS = 16;
const cli = resolve(import.meta.dirname, '../../bin/portfolio.js');
const log = (msg: string) => process.stderr.write(`[bench:push-steps] ${msg}\n`);

/** The request kinds of a push, and how many of each one image sends. */
const STEPS = [
  { key: 'head', label: 'HEAD blob (404)', perImage: 3 },
  { key: 'post', label: 'POST upload', perImage: 3 },
  { key: 'put', label: 'PUT blob, monolithic', perImage: 3 },
  { key: 'manifest', label: 'PUT manifest (tag)', perImage: 1 },
] as const;
type Step = (typeof STEPS)[number]['key'];
type Round = Record<Step | 'push', number>;

const blobsOf = (image: Image): Blob[] => [...image.layers, image.config];
const repoOf = (i: number) => `steps/small-${i % CLIENTS}`;

/** Server CPU in µs per request while `count` tasks run on 16 clients. */
async function cpuPer(pid: number, count: number, task: (i: number) => Promise<void>): Promise<number> {
  const before = (await cpuSeconds(pid))!;
  await pool(count, CLIENTS, task);
  return (((await cpuSeconds(pid))! - before) * 1e6) / count;
}

async function steps(client: RawClient, pid: number, images: Image[]): Promise<Record<Step, number>> {
  const blobs = images.flatMap((image, i) => blobsOf(image).map((blob) => ({ repo: repoOf(i), blob })));
  const locations: URL[] = [];
  const head = await cpuPer(pid, blobs.length, async (k) => {
    const { repo, blob } = blobs[k]!;
    expect(await client.request(`/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' }), 404, 'HEAD blob');
  });
  const post = await cpuPer(pid, blobs.length, async (k) => {
    const res = expect(await client.request(`/v2/${blobs[k]!.repo}/blobs/uploads/`, { method: 'POST' }), 202, 'POST upload');
    locations[k] = client.url(header(res, 'location')!);
  });
  const put = await cpuPer(pid, blobs.length, async (k) => {
    const { blob } = blobs[k]!;
    const res = await client.request(withQuery(locations[k]!, 'digest', blob.digest), { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: blob.data });
    expect(res, 201, 'PUT blob');
  });
  const manifest = await cpuPer(pid, images.length, async (i) => {
    const res = await client.request(`/v2/${repoOf(i)}/manifests/img-${i}`, { method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body: images[i]!.manifest });
    expect(res, 201, 'PUT manifest');
  });
  return { head, post, put, manifest };
}

async function measure(engine: 'sqlite' | 'pg', dir: string, seed: number): Promise<Round> {
  const databaseUrl = engine === 'pg' ? await createDatabase() : undefined;
  const dataDir = join(dir, `${engine}-${randomBytes(3).toString('hex')}`);
  const server = await startPortfolio({ cli, dataDir, extraArgs: databaseUrl ? ['--database-url', databaseUrl] : [], extraEnv: {} });
  const client = new RawClient(server.url, CLIENTS);
  try {
    const warm = smallImages(200, seed);
    await pool(warm.length, CLIENTS, (i) => pushImage(client, `warmup/${i % CLIENTS}`, `img-${i}`, warm[i]!));
    const parts = await steps(client, server.pid!, smallImages(imageCount, seed + 1));
    const whole = smallImages(imageCount, seed + 2);
    const push = await cpuPer(server.pid!, whole.length, (i) => pushImage(client, `whole/${i % CLIENTS}`, `img-${i}`, whole[i]!));
    return { ...parts, push };
  } finally {
    client.close();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
    if (databaseUrl) await dropDatabase(databaseUrl).catch(() => {});
    await syncDisks();
  }
}

/** What a HEAD costs a node:http server that answers 404 and does nothing else. */
async function floor(): Promise<number> {
  const port = await freePort();
  const script = `require('node:http').createServer((q, r) => { q.resume(); r.writeHead(404, { 'Content-Type': 'application/json' }); r.end(); }).listen(${port}, '127.0.0.1', () => console.log('ready'))`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  track(child);
  await new Promise((ok) => child.stdout.once('data', ok));
  const client = new RawClient(`http://127.0.0.1:${port}`, CLIENTS);
  try {
    const head = () => client.request('/v2/x/blobs/sha256:0', { method: 'HEAD' }).then(() => undefined);
    await pool(5000, CLIENTS, head);
    return await cpuPer(child.pid!, 20000, head);
  } finally {
    client.close();
    child.kill();
  }
}

const dir = await mkdtemp(join(tmpdir(), 'portfolio-bench-steps-'));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}
try {
  const results = new Map<string, Round[]>();
  for (let round = 0; round < rounds; round++) {
    for (const engine of engines) {
      const r = await measure(engine, dir, 1000 * round + 17);
      results.set(engine, [...(results.get(engine) ?? []), r]);
      log(`${engine}, round ${round + 1}: ${STEPS.map((s) => `${s.key} ${r[s.key].toFixed(0)} µs`).join(', ')}; whole push ${(r.push / 1000).toFixed(2)} ms`);
    }
  }
  const floorUs = await floor();
  console.log(`small-image push, server CPU per request (µs), medians of ${rounds} rounds; ${imageCount} images by ${CLIENTS} clients per kind`);
  console.log(`${'request'.padEnd(24)} ${'per image'.padStart(9)} ${engines.map((e) => e.padStart(9)).join(' ')}`);
  const med = (engine: string, key: Step | 'push') => median(results.get(engine)!.map((r) => r[key]));
  for (const s of STEPS) console.log(`${s.label.padEnd(24)} ${String(s.perImage).padStart(9)} ${engines.map((e) => med(e, s.key).toFixed(0).padStart(9)).join(' ')}`);
  const sum = (e: string) => STEPS.reduce((a, s) => a + s.perImage * med(e, s.key), 0);
  console.log(`${'sum per image (ms)'.padEnd(24)} ${''.padStart(9)} ${engines.map((e) => (sum(e) / 1000).toFixed(2).padStart(9)).join(' ')}`);
  console.log(`${'whole push (ms)'.padEnd(24)} ${''.padStart(9)} ${engines.map((e) => (med(e, 'push') / 1000).toFixed(2).padStart(9)).join(' ')}`);
  console.log(`trivial node:http server, HEAD 404: ${floorUs.toFixed(0)} µs per request (10 requests per image: ${((10 * floorUs) / 1000).toFixed(2)} ms)`);
} finally {
  killAll();
  await rm(dir, { recursive: true, force: true });
}
