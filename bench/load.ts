/**
 * Fixed-concurrency request-rate measurement: wrk when installed (Debian package `wrk`), else the
 * autocannon npm package used programmatically; and for HEAD, which neither can measure, the
 * bench's own raw-socket load generator (loadgen.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadgen } from './loadgen.js';
import { track } from './servers.js';

export const WRK_BIN = '/usr/bin/wrk';

export type LoadTool = 'wrk' | 'autocannon' | 'node';

export interface LoadOptions {
  url: string;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  connections: number;
  durationS: number;
  threads: number;
  /** Where wrk's Lua script may be written. */
  scratchDir: string;
  tool: LoadTool;
}

export interface LoadResult {
  rps: number;
  requests: number;
  /** Responses outside 2xx/3xx plus socket errors; any of them makes the figure suspect. */
  errors: number;
  p50Ms?: number;
  p99Ms?: number;
  tool: string;
}

export function defaultLoadTool(): 'wrk' | 'autocannon' {
  return existsSync(WRK_BIN) ? 'wrk' : 'autocannon';
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  switch (opts.tool) {
    case 'wrk':
      return runWrk(opts);
    case 'autocannon':
      return runAutocannon(opts);
    case 'node': {
      const r = await loadgen(opts);
      return { ...r, tool: 'node loadgen' };
    }
  }
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  switch (unit) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      return n;
  }
}

async function runWrk(opts: LoadOptions): Promise<LoadResult> {
  const script = join(opts.scratchDir, `wrk-${opts.method.toLowerCase()}.lua`);
  await writeFile(script, `wrk.method = "${opts.method}"\n`);
  const args = ['-t', String(opts.threads), '-c', String(opts.connections), '-d', `${opts.durationS}s`, '--latency', '--timeout', '10s', '-s', script];
  for (const [k, v] of Object.entries(opts.headers)) args.push('-H', `${k}: ${v}`);
  args.push(opts.url);
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = execFile(WRK_BIN, args, { timeout: (opts.durationS + 30) * 1000 }, (err, out, errOut) => {
      if (err) reject(new Error(`wrk failed: ${err.message}\n${errOut}`));
      else resolve(out);
    });
    track(child);
  });
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
  const total = /(\d+) requests in/.exec(stdout);
  if (!rps || !total) throw new Error(`cannot parse wrk output:\n${stdout}`);
  let errors = 0;
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout);
  if (non2xx) errors += Number(non2xx[1]);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  if (sock) errors += sock.slice(1).reduce((a, b) => a + Number(b), 0);
  const p50 = /\s50%\s+([\d.]+)(us|ms|s|m)\b/.exec(stdout);
  const p99 = /\s99%\s+([\d.]+)(us|ms|s|m)\b/.exec(stdout);
  return {
    rps: Number(rps[1]),
    requests: Number(total[1]),
    errors,
    p50Ms: p50 ? toMs(p50[1]!, p50[2]!) : undefined,
    p99Ms: p99 ? toMs(p99[1]!, p99[2]!) : undefined,
    tool: 'wrk',
  };
}

interface AutocannonResult {
  duration: number;
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

async function runAutocannon(opts: LoadOptions): Promise<LoadResult> {
  const mod = (await import('autocannon' as string)) as { default: (o: Record<string, unknown>) => Promise<AutocannonResult> };
  const result = await mod.default({
    url: opts.url,
    method: opts.method,
    headers: opts.headers,
    connections: opts.connections,
    duration: opts.durationS,
    pipelining: 1,
  });
  const ok = result['2xx'];
  return {
    rps: ok / result.duration,
    requests: result.requests.total,
    errors: result.non2xx + result.errors + result.timeouts,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    tool: 'autocannon',
  };
}
