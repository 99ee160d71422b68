/**
 * Starts a real Portfolio server process on a free loopback port for a test, on the engine
 * configuration named by PORTFOLIO_TEST_ENGINE (sqlite-fs, the default; pg-fs; pg-s3).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { randomUUID } from 'node:crypto';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const CLI = join(ROOT, 'bin/portfolio.js');

export type Engine = 'sqlite-fs' | 'pg-fs' | 'pg-s3';
export const ENGINE: Engine = (process.env.PORTFOLIO_TEST_ENGINE as Engine | undefined) ?? 'sqlite-fs';
export const PG_URL = process.env.PORTFOLIO_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const S3_BUCKET = process.env.PORTFOLIO_TEST_S3_BUCKET ?? 'portfolio-test';
/**
 * This run's mark on the databases and S3 prefixes its tests create, so that the runner
 * (scripts/run-tests.mjs, which sets it) removes them afterwards (helpers/run-stores.ts).
 */
export const RUN = process.env.PORTFOLIO_TEST_RUN ?? 'manual';
/** Database names of run RUN start with this. */
export const databasePrefix = (run: string) => `portfolio_test_${run}_`;
/** S3 prefixes of run RUN start with this. */
export const s3Prefix = (run: string) => `run-${run}/`;

export interface RunningRegistry {
  url: string;
  dataDir: string;
  /** Engine flags, to start another process (a replica or a CLI command) on the same stores. */
  engineArgs: string[];
  process: ChildProcess;
  /** Everything the server printed. */
  output(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Reuse the stores of an earlier server (same engineArgs), e.g. after a restart or for a replica. */
  engineArgs?: string[];
  dataDir?: string;
}

/** Engine flags for a fresh, empty set of stores. */
export async function freshEngine(dataDir: string): Promise<string[]> {
  const args = ['--data-dir', dataDir];
  if (ENGINE === 'pg-fs' || ENGINE === 'pg-s3') args.push('--database-url', await createDatabase());
  if (ENGINE === 'pg-s3') args.push('--storage', freshS3Storage());
  return args;
}

/** A new, empty S3 location for one test's stores. */
export function freshS3Storage(): string {
  return `s3://${S3_BUCKET}/${s3Prefix(RUN)}${randomUUID()}`;
}

/** A new, empty PostgreSQL database on the test server; its URL. */
export async function createDatabase(): Promise<string> {
  const { default: pg } = await import('pg');
  const name = `${databasePrefix(RUN)}${randomUUID().replaceAll('-', '')}`;
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function startRegistry(options: StartOptions = {}): Promise<RunningRegistry> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'portfolio-test-')));
  const engineArgs = options.engineArgs ?? (await freshEngine(dataDir));
  const child = spawn(process.execPath, [CLI, 'serve', '--addr', '127.0.0.1:0', ...engineArgs, ...(options.args ?? [])], {
    env: { ...process.env, ...s3Env(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = await new Promise<string>((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const onExit = (code: number | null) => reject(new Error(`registry exited with ${code} before listening:\n${output}`));
    child.once('exit', onExit);
    lines.on('line', (line) => {
      output += line + '\n';
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'listening' && entry.url) {
          child.off('exit', onExit);
          resolvePromise(entry.url);
        }
      } catch {
        /* not a log line */
      }
    });
  });
  let stopped = false;
  return {
    url,
    dataDir,
    engineArgs,
    process: child,
    output: () => output,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (!options.dataDir && !options.engineArgs) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The S3 environment a test server needs: the test S3 server's, on pg-s3; none otherwise. */
export function s3Env(): Record<string, string> {
  return ENGINE === 'pg-s3' ? s3Service() : {};
}

/** The test S3 server and its credentials, as the SDK's environment. */
export function s3Service(): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'testkey',
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'testsecret',
    AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
    AWS_ENDPOINT_URL_S3: process.env.AWS_ENDPOINT_URL_S3 ?? 'http://127.0.0.1:9380',
  };
}

/** Runs the portfolio CLI to completion. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...s3Env(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number>((r) => child.once('exit', (c) => r(c ?? -1)));
  return { code, stdout, stderr };
}
