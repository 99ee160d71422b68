/**
 * What a cross-replica resume costs: a 256 MiB blob is uploaded in 8 MiB PATCHes to replica A
 * and its closing PUT goes either to A (the running digest is in A's memory) or to B, another
 * process on the same stores, which must re-read the bytes to verify the digest.
 *
 *   npm run bench:resume [-- "--engine-args=--database-url … --storage s3://…"] [--size-mib N] [--rounds N]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MiB, SeededBlob } from './data.js';
import { Client, expect, header, withQuery } from './http.js';
import { startPortfolio, type Registry } from './servers.js';

const { values } = parseArgs({ options: { 'engine-args': { type: 'string' }, 'size-mib': { type: 'string' }, rounds: { type: 'string' } } });
const size = Number(values['size-mib'] ?? 256) * MiB;
const rounds = Number(values.rounds ?? 3);
const extraArgs = (values['engine-args'] ?? process.env.PORTFOLIO_BENCH_ARGS ?? '').split(/\s+/).filter(Boolean);
const cli = resolve(import.meta.dirname, '../../bin/portfolio.js');

async function chunkedThenPut(a: Client, b: Client, blob: SeededBlob, repo: string): Promise<number> {
  const post = expect(await a.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' }), 202, 'POST');
  let location = a.url(header(post, 'location')!);
  for (let start = 0; start < blob.size; start += 8 * MiB) {
    const end = Math.min(blob.size, start + 8 * MiB);
    const res = await a.request(location, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': end - start, 'Content-Range': `${start}-${end - 1}` },
      body: blob.range(start, end),
    });
    expect(res, 202, 'PATCH');
    location = a.url(header(res, 'location')!);
  }
  const t0 = performance.now();
  expect(await b.request(withQuery(b.url(location.pathname), 'digest', blob.digest), { method: 'PUT' }), 201, 'PUT');
  return performance.now() - t0;
}

const dir = await mkdtemp(join(tmpdir(), 'portfolio-resume-'));
const servers: Registry[] = [];
try {
  for (let i = 0; i < 2; i++) servers.push(await startPortfolio({ cli, dataDir: dir, extraArgs, extraEnv: {} }));
  const [a, b] = servers.map((s) => new Client(s.url)) as [Client, Client];
  const same: number[] = [];
  const cross: number[] = [];
  for (let r = 0; r < rounds; r++) {
    same.push(await chunkedThenPut(a, a, new SeededBlob(size, 1000 + 2 * r), `resume/same`));
    cross.push(await chunkedThenPut(a, b, new SeededBlob(size, 1001 + 2 * r), `resume/cross`));
  }
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  console.log(`closing PUT of a ${size / MiB} MiB chunked upload (median of ${rounds}), engine: ${extraArgs.join(' ') || 'embedded default'}`);
  console.log(`  same replica:  ${med(same).toFixed(0)} ms`);
  console.log(`  other replica: ${med(cross).toFixed(0)} ms (re-reads the upload to verify its digest: ${((size / 1e6) / (med(cross) / 1000)).toFixed(0)} MB/s)`);
} finally {
  for (const s of servers) await s.stop();
  await rm(dir, { recursive: true, force: true });
}
