/**
 * Starts and stops the registries under benchmark: Portfolio (bin/portfolio.js serve) and CNCF
 * distribution 2.8.2 (Debian's docker-registry), each on a free loopback port with its data in a
 * temporary directory; or wraps an already-running registry given by URL.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const DISTRIBUTION_BIN = '/usr/bin/docker-registry';

export interface Registry {
  name: string;
  url: string;
  /** The server process when the bench started it. */
  pid?: number;
  /** Peak resident memory of the server process (VmHWM) in MiB, when known. */
  peakRssMiB(): Promise<number | undefined>;
  /** Resident memory of the server process now (VmRSS) in MiB, when known. */
  rssMiB(): Promise<number | undefined>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();

/** Registers a helper process (wrk) to be killed with the servers on errors and signals. */
export function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

/** Kills every server the bench started (used on errors and signals). */
export function killAll(): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  running.clear();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Keeps the last `limit` characters a process printed, for error messages. */
function tail(child: ChildProcess, limit = 16_384): () => string {
  let out = '';
  const add = (d: Buffer) => {
    out += d.toString();
    if (out.length > limit * 2) out = out.slice(-limit);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => out.slice(-limit);
}

async function waitReady(url: string, child: ChildProcess | undefined, output: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before answering:\n${output()}`);
    }
    try {
      const res = await fetch(new URL('/v2/', url), { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `GET /v2/ answered ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${url} not ready after ${timeoutMs} ms (${last}):\n${output()}`);
}

async function memory(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

function managed(name: string, child: ChildProcess, url: string): Registry {
  running.add(child);
  return {
    name,
    url,
    pid: child.pid,
    peakRssMiB: () => memory(child.pid, 'VmHWM'),
    rssMiB: () => memory(child.pid, 'VmRSS'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      running.delete(child);
    },
  };
}

export interface PortfolioOptions {
  cli: string;
  dataDir: string;
  extraArgs: string[];
  extraEnv: Record<string, string>;
}

export async function startPortfolio(opts: PortfolioOptions): Promise<Registry> {
  await mkdir(opts.dataDir, { recursive: true });
  const port = await freePort();
  const args = [opts.cli, 'serve', '--addr', `127.0.0.1:${port}`, '--data-dir', opts.dataDir, '--log-level', 'warn', ...opts.extraArgs];
  const child = spawn(process.execPath, args, { env: { ...process.env, ...opts.extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  return ready('portfolio', child, port);
}

/** Wraps a started server and waits until it answers; stops it if it never does. */
async function ready(name: string, child: ChildProcess, port: number): Promise<Registry> {
  const output = tail(child);
  const url = `http://127.0.0.1:${port}`;
  const reg = managed(name, child, url);
  try {
    await waitReady(url, child, output);
  } catch (err) {
    await reg.stop();
    throw err;
  }
  return reg;
}

/** distribution's S3 driver settings (storage.s3 in its config). */
export interface DistributionS3 {
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  rootDirectory: string;
  /** Answer blob GETs with a redirect to a presigned S3 URL (distribution's default with S3). */
  redirect: boolean;
}

export interface DistributionOptions {
  /** In-memory blob descriptor cache (Debian's default config has it). */
  cache: boolean;
  /** S3 storage instead of the filesystem under `dir`. */
  s3?: DistributionS3;
}

export async function startDistribution(dir: string, opts: DistributionOptions): Promise<Registry> {
  const root = join(dir, 'storage');
  await mkdir(root, { recursive: true });
  const port = await freePort();
  const s3 = opts.s3;
  const driver = s3
    ? [
        '  s3:',
        `    accesskey: ${s3.accessKey}`,
        `    secretkey: ${s3.secretKey}`,
        `    region: ${s3.region}`,
        `    regionendpoint: ${s3.endpoint}`,
        `    bucket: ${s3.bucket}`,
        `    rootdirectory: /${s3.rootDirectory}`,
        '    forcepathstyle: true',
        `    secure: ${s3.endpoint.startsWith('https:')}`,
        '    v4auth: true',
        // With S3, distribution redirects blob GETs to a presigned URL unless told not to.
        '  redirect:',
        `    disable: ${!s3.redirect}`,
      ]
    : ['  filesystem:', `    rootdirectory: ${root}`];
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    ...driver,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    ...(opts.cache ? ['  cache:', '    blobdescriptor: inmemory'] : []),
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n');
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, config);
  // The config holds the S3 settings. The aws-sdk-go v1 of distribution 2.8 panics at start when
  // AWS_CA_BUNDLE is set ("HTTPClient's transport unsupported type"), so no AWS_* variable is passed.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
  const child = spawn(DISTRIBUTION_BIN, ['serve', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return ready('distribution', child, port);
}

/** The floor registry (bench/floor-registry.ts) on a free port, its files under `dir`. */
export async function startFloorRegistry(dir: string, env: Record<string, string> = {}): Promise<Registry> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const script = join(import.meta.dirname, 'floor-registry.js');
  const child = spawn(process.execPath, [script, String(port), dir], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return ready('floor', child, port);
}

export async function externalRegistry(url: string): Promise<Registry> {
  await waitReady(url, undefined, () => '', 10_000);
  const unknown = async () => undefined;
  return { name: 'portfolio', url: url.replace(/\/+$/, ''), peakRssMiB: unknown, rssMiB: unknown, async stop() {} };
}

export function distributionInstalled(): boolean {
  return existsSync(DISTRIBUTION_BIN);
}

/** Flushes dirty pages so one registry's writes do not slow the next one's run. */
export async function syncDisks(): Promise<void> {
  try {
    await promisify(execFile)('sync');
  } catch {
    /* best effort */
  }
}
