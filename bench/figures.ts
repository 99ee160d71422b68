/**
 * The benchmark's figures, each measured the same way on every registry.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { Client, expect, header, withQuery, type HttpClient } from './http.js';
import { MiB, Rng, SeededBlob } from './data.js';
import { runLoad, type LoadResult, type LoadTool } from './load.js';
import { ACCEPT_MANIFESTS, makeImage, pool, pushImage, putManifest, startUpload, type Image } from './oci.js';

export interface Settings {
  quick: boolean;
  blobSize: number;
  patchSize: number;
  downloads: number;
  connections: number;
  loadThreads: number;
  loadDurationS: number;
  warmupS: number;
  loadTool: LoadTool;
  downloadTool: 'curl' | 'node';
  /** Client for the request-bound figures (pushes, tagging): the lean raw-socket one, or node:http. */
  pushClient: 'raw' | 'node';
  images: number;
  /**
   * Untimed pushes first, so that neither server is measured while it warms up (JIT, caches). A
   * Node server's CPU per image keeps falling over its first ~1,000 pushes as V8 optimizes the
   * push path (its compiler threads count in the process's CPU); after that it stays flat.
   */
  warmupImages: number;
  imageConcurrency: number;
  tags: number;
  tagConcurrency: number;
  listRuns: number;
  scratchDir: string;
  /** Portfolio on PostgreSQL + S3 against distribution on S3: other targets, no reference figures. */
  scaleOut?: boolean;
}

export function settingsFor(quick: boolean, loadTool: LoadTool, loadThreads: number, scratchDir: string): Settings {
  return {
    quick,
    blobSize: (quick ? 32 : 256) * MiB,
    patchSize: 8 * MiB,
    downloads: 3,
    connections: 64,
    loadThreads,
    loadDurationS: quick ? 2 : 5,
    warmupS: 1,
    loadTool,
    downloadTool: existsSync(CURL_BIN) ? 'curl' : 'node',
    pushClient: 'raw',
    images: quick ? 96 : 400,
    warmupImages: quick ? 32 : 1000,
    imageConcurrency: 16,
    tags: quick ? 1000 : 5000,
    tagConcurrency: 16,
    listRuns: 10,
    scratchDir,
  };
}

export type FigureKey =
  | 'upload_monolithic'
  | 'upload_chunked'
  | 'download'
  | 'manifest_get'
  | 'manifest_head'
  | 'manifest_get_node'
  | 'small_push'
  | 'tagging'
  | 'tags_list'
  | 'tags_list_page'
  | 'tags_list_walk'
  | 'peak_rss'
  | 'idle_rss';

export interface FigureDef {
  key: FigureKey;
  label: (s: Settings) => string;
  unit: string;
  higherIsBetter: boolean;
  /** Portfolio/distribution ratio to reach (>= when higher is better). */
  target?: number;
  /** The same for Portfolio on PostgreSQL + S3 against distribution on S3 (--scale-out). */
  scaleOutTarget?: number;
  /** distribution 2.8.2's figures measured on this machine (shared/notes/dependencies.md). */
  reference?: [number, number];
  /** The figure group that measures it (for --figures). */
  group: 'upload' | 'download' | 'manifest' | 'push' | 'tags' | 'info';
  digits: number;
  /** How the server's CPU per operation is shown: unit, and CPU seconds per operation times scale. */
  cpu?: { unit: string; scale: number; digits: number };
}

const mb = (s: Settings) => `${s.blobSize / MiB} MiB`;
const perMB = { unit: 'ms/MB', scale: 1e3, digits: 2 };
const perRequest = { unit: 'µs/req', scale: 1e6, digits: 0 };
const perImage = { unit: 'ms/image', scale: 1e3, digits: 1 };

export const FIGURES: FigureDef[] = [
  { key: 'upload_monolithic', label: (s) => `monolithic ${mb(s)} upload (MB/s)`, unit: 'MB/s', higherIsBetter: true, target: 1.3, scaleOutTarget: 1.0, reference: [117, 131], group: 'upload', digits: 1, cpu: perMB },
  { key: 'upload_chunked', label: (s) => `chunked ${mb(s)} upload, ${s.patchSize / MiB} MiB PATCHes (MB/s)`, unit: 'MB/s', higherIsBetter: true, target: 1.3, scaleOutTarget: 1.0, reference: [105, 109], group: 'upload', digits: 1, cpu: perMB },
  { key: 'download', label: (s) => `${mb(s)} blob download, median of ${s.downloads} (MB/s)`, unit: 'MB/s', higherIsBetter: true, target: 1.0, scaleOutTarget: 1.0, reference: [900, 1100], group: 'download', digits: 1, cpu: perMB },
  { key: 'manifest_get', label: (s) => `manifest GET at ${s.connections} conns (req/s) [a]`, unit: 'req/s', higherIsBetter: true, target: 5, scaleOutTarget: 3, reference: [940, 960], group: 'manifest', digits: 0, cpu: perRequest },
  { key: 'manifest_head', label: (s) => `manifest HEAD at ${s.connections} conns (req/s) [b]`, unit: 'req/s', higherIsBetter: true, target: 5, reference: [790, 865], group: 'manifest', digits: 0, cpu: perRequest },
  { key: 'manifest_get_node', label: (s) => `manifest GET at ${s.connections} conns, HEAD's tool (req/s) [b]`, unit: 'req/s', higherIsBetter: true, group: 'manifest', digits: 0, cpu: perRequest },
  { key: 'small_push', label: (s) => `small-image pushes, ${s.images} by ${s.imageConcurrency} clients (images/s)`, unit: 'images/s', higherIsBetter: true, target: 5, scaleOutTarget: 3, reference: [33, 33], group: 'push', digits: 1, cpu: perImage },
  { key: 'tagging', label: (s) => `tagging: manifest PUTs by ${s.tagConcurrency} clients (req/s)`, unit: 'req/s', higherIsBetter: true, group: 'tags', digits: 0, cpu: perRequest },
  { key: 'tags_list', label: (s) => `${s.tags}-tag list, median of ${s.listRuns} (ms, lower better)`, unit: 'ms', higherIsBetter: false, reference: [11, 14], group: 'tags', digits: 2 },
  { key: 'tags_list_page', label: () => `tag list ?n=100 first page (ms, lower better)`, unit: 'ms', higherIsBetter: false, group: 'tags', digits: 2 },
  { key: 'tags_list_walk', label: (s) => `tag list ?n=100 all ${Math.ceil(s.tags / 100)} pages (ms, lower better)`, unit: 'ms', higherIsBetter: false, group: 'tags', digits: 1 },
  { key: 'peak_rss', label: () => `server peak RSS (MiB, lower better)`, unit: 'MiB', higherIsBetter: false, group: 'info', digits: 0 },
  { key: 'idle_rss', label: () => `server RSS after start, idle (MiB, lower better)`, unit: 'MiB', higherIsBetter: false, group: 'info', digits: 0 },
];

export interface Measurement {
  value?: number;
  /** The server's CPU (user + system, from /proc) per operation of the timed part, in the figure's cpu unit. */
  cpu?: number;
  error?: string;
  note?: string;
}

/**
 * Brackets a figure's timed part (after its warm-up), so the server's CPU time in it can be set
 * against the operations: unlike a rate, CPU per operation barely moves with other load.
 */
export interface CpuProbe {
  begin(): Promise<void>;
  end(): Promise<void>;
}

const noProbe: CpuProbe = { begin: async () => {}, end: async () => {} };

export type Results = Partial<Record<FigureKey, Measurement>>;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const now = () => performance.now();
const MB = 1e6;

function checkDigest(res: { headers: Record<string, string | string[] | undefined> }, digest: string, what: string): void {
  const got = res.headers['docker-content-digest'];
  const value = Array.isArray(got) ? got[0] : got;
  if (value && value !== digest) throw new Error(`${what}: Docker-Content-Digest ${value}, expected ${digest}`);
}

export async function uploadMonolithic(client: Client, repo: string, blob: SeededBlob, probe = noProbe): Promise<number> {
  const digest = blob.digest; // computed beforehand, outside the timing
  await probe.begin();
  const t0 = now();
  const location = await startUpload(client, repo);
  const res = await client.request(withQuery(location, 'digest', digest), {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.size },
    body: blob.range(),
  });
  const elapsed = (now() - t0) / 1000;
  await probe.end();
  expect(res, 201, 'monolithic PUT');
  checkDigest(res, digest, 'monolithic PUT');
  return blob.size / MB / elapsed;
}

export async function uploadChunked(client: Client, repo: string, blob: SeededBlob, patchSize: number, probe = noProbe): Promise<number> {
  const digest = blob.digest;
  await probe.begin();
  const t0 = now();
  let location = await startUpload(client, repo);
  for (let start = 0; start < blob.size; start += patchSize) {
    const end = Math.min(blob.size, start + patchSize);
    const res = await client.request(location, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': end - start, 'Content-Range': `${start}-${end - 1}` },
      body: blob.range(start, end),
    });
    expect(res, 202, `PATCH ${start}-${end - 1}`);
    const next = header(res, 'location');
    if (!next) throw new Error('PATCH: no Location');
    location = client.url(next);
  }
  const res = await client.request(withQuery(location, 'digest', digest), { method: 'PUT' });
  const elapsed = (now() - t0) / 1000;
  await probe.end();
  expect(res, 201, 'chunked final PUT');
  checkDigest(res, digest, 'chunked final PUT');
  return blob.size / MB / elapsed;
}

export const CURL_BIN = '/usr/bin/curl';

/**
 * Downloads the blob `runs` times, reading and discarding it, after one untimed warm-up (the
 * connection, the server's code paths, the page cache). With curl by default: at 1–2 GB/s a node
 * client costs more CPU than curl (measured here: node:http 450–600 MB/s where curl reached
 * 1.3–1.5 GB/s from the same server), and on 2 cores that CPU is taken from the server.
 */
export async function download(client: Client, repo: string, blob: SeededBlob, runs: number, tool: 'curl' | 'node', probe = noProbe): Promise<{ value: number; runs: number[] }> {
  const url = client.url(`/v2/${repo}/blobs/${blob.digest}`);
  const once = async (): Promise<number> => {
    if (tool === 'curl') {
      const { stdout } = await promisify(execFile)(CURL_BIN, ['-sS', '-L', '-o', '/dev/null', '-H', 'Expect:', '-w', '%{http_code} %{size_download} %{time_total}', url.href], { timeout: 120_000 });
      const [code, size, total] = stdout.trim().split(' ').map(Number);
      if (code !== 200) throw new Error(`blob GET (curl): HTTP ${code}`);
      if (size !== blob.size) throw new Error(`blob GET (curl): ${size} bytes, expected ${blob.size}`);
      return blob.size / MB / total!;
    }
    const t0 = now();
    const res = await client.request(url, { discard: true, followRedirects: true });
    const elapsed = (now() - t0) / 1000;
    expect(res, 200, 'blob GET');
    if (res.bytes !== blob.size) throw new Error(`blob GET: ${res.bytes} bytes, expected ${blob.size}`);
    return blob.size / MB / elapsed;
  };
  await once();
  const rates: number[] = [];
  await probe.begin();
  for (let i = 0; i < runs; i++) rates.push(await once());
  await probe.end();
  return { value: median(rates), runs: rates };
}

export async function manifestLoad(client: Client, s: Settings, repo: string, tag: string, method: 'GET' | 'HEAD', tool: LoadTool, probe = noProbe): Promise<LoadResult> {
  const opts = {
    url: client.url(`/v2/${repo}/manifests/${tag}`).href,
    method,
    headers: { Accept: ACCEPT_MANIFESTS },
    connections: s.connections,
    threads: s.loadThreads,
    scratchDir: s.scratchDir,
    tool,
  };
  await runLoad({ ...opts, durationS: s.warmupS });
  await probe.begin();
  const result = await runLoad({ ...opts, durationS: s.loadDurationS });
  await probe.end();
  if (result.requests === 0) throw new Error(`${method} manifest: no requests completed`);
  return result;
}

export function smallImages(count: number, seed: number): Image[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => makeImage(rng));
}

/** Pushes the images; also reports the bench client's own CPU use, to show it is not the limit. */
export async function smallPushes(client: HttpClient, s: Settings, prefix: string, images: Image[], probe = noProbe): Promise<{ value: number; clientCpu: number }> {
  await probe.begin();
  const t0 = now();
  const cpu0 = process.cpuUsage();
  await pool(images.length, s.imageConcurrency, async (i, worker) => {
    await pushImage(client, `${prefix}/small-${worker}`, `img-${i}`, images[i]!);
  });
  const elapsed = (now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await probe.end();
  return { value: images.length / elapsed, clientCpu: (cpu.user + cpu.system) / 1e6 / elapsed };
}

export interface TagFigures {
  tagging: number;
  list: number;
  /** Undefined when the registry ignores ?n= (distribution 2.8 does: tag pagination came in 3.0). */
  page?: number;
  walk?: number;
}

export async function tagFigures(client: HttpClient, s: Settings, repo: string, image: Image, probe = noProbe): Promise<TagFigures> {
  await pushImage(client, repo, 'base', image);
  await probe.begin();
  const t0 = now();
  await pool(s.tags, s.tagConcurrency, async (i) => {
    await putManifest(client, repo, `tag-${String(i).padStart(5, '0')}`, image.manifest);
  });
  const tagging = s.tags / ((now() - t0) / 1000);
  await probe.end();
  const expected = s.tags + 1; // plus 'base'

  const list = async (path: string): Promise<string[]> => {
    const res = expect(await client.request(path), 200, `GET ${path}`);
    const body = JSON.parse(res.body.toString()) as { tags?: string[] | null };
    return body.tags ?? [];
  };
  const timed = async (fn: () => Promise<void>, runs: number): Promise<number> => {
    await fn(); // warm-up
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = now();
      await fn();
      times.push(now() - t);
    }
    return median(times);
  };

  const full = await timed(async () => {
    const tags = await list(`/v2/${repo}/tags/list`);
    if (tags.length !== expected) throw new Error(`tags/list: ${tags.length} tags, expected ${expected}`);
  }, s.listRuns);
  const first = await list(`/v2/${repo}/tags/list?n=100`);
  if (first.length > 100) return { tagging, list: full }; // pagination not supported
  const page = await timed(async () => {
    const tags = await list(`/v2/${repo}/tags/list?n=100`);
    if (tags.length !== 100) throw new Error(`tags/list?n=100: ${tags.length} tags`);
  }, s.listRuns);
  const walk = await timed(async () => {
    let path: string | undefined = `/v2/${repo}/tags/list?n=100`;
    let count = 0;
    let pages = 0;
    while (path) {
      const res = expect(await client.request(path), 200, `GET ${path}`);
      const body = JSON.parse(res.body.toString()) as { tags?: string[] | null };
      count += (body.tags ?? []).length;
      if (++pages > expected) throw new Error('tag pagination does not end');
      const link = header(res, 'link');
      const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
      path = m ? m[1] : undefined;
    }
    if (count !== expected) throw new Error(`paginated tags/list: ${count} tags, expected ${expected}`);
  }, 3);
  return { tagging, list: full, page, walk };
}
