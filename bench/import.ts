/**
 * Import throughput: an OCI image layout of about 1 GiB (16 layers of 64 MiB) goes into a
 * running Portfolio by `portfolio import` (beside `serve`, on its stores) and, into another
 * fresh store, by `skopeo copy oci:… docker://…` over HTTP. Prints MB/s for both. Each run gets
 * fresh stores: the embedded default (SQLite + files), or with --pg-s3 a new PostgreSQL database
 * and S3 prefix (PORTFOLIO_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres;
 * the S3 server of scripts/s3-server.sh, bucket portfolio-test).
 *
 *   npm run bench:import [-- --layers N] [--layer-mib N] [--rounds N] [--pg-s3]
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs, promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { MiB, SeededBlob, sha256 } from './data.js';
import { createDatabase, dropDatabase } from './databases.js';
import { startPortfolio, syncDisks, type Registry } from './servers.js';

const run = promisify(execFile);
const { values } = parseArgs({
  options: { layers: { type: 'string' }, 'layer-mib': { type: 'string' }, rounds: { type: 'string' }, 'pg-s3': { type: 'boolean' } },
});
const layerCount = Number(values.layers ?? 16);
const layerSize = Number(values['layer-mib'] ?? 64) * MiB;
const rounds = Number(values.rounds ?? 2);
const pgS3 = Boolean(values['pg-s3']);
const S3_ENV: Record<string, string> = pgS3
  ? {
      AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'testkey',
      AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'testsecret',
      AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
      AWS_ENDPOINT_URL_S3: process.env.AWS_ENDPOINT_URL_S3 ?? 'http://127.0.0.1:9380',
    }
  : {};

/** Engine flags for a run's own, empty stores, and the database to drop after it. */
async function freshStores(): Promise<{ args: string[]; databaseUrl?: string }> {
  if (!pgS3) return { args: [] };
  const databaseUrl = await createDatabase();
  return { args: ['--database-url', databaseUrl, '--storage', `s3://portfolio-test/bench-${randomUUID()}`], databaseUrl };
}
const cli = resolve(import.meta.dirname, '../../bin/portfolio.js');

/** Writes the layout: gzip level 0 (stored) layers, so no client spends the run recompressing. */
async function writeLayout(dir: string): Promise<number> {
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  const layers: { digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < layerCount; i++) {
    const blob = new SeededBlob(layerSize, 7000 + i);
    const hash = createHash('sha256');
    let size = 0;
    const tmp = join(dir, 'blobs/sha256/tmp');
    await pipeline(
      Readable.from(blob.range()),
      createGzip({ level: 0 }),
      new Transform({ transform: (c: Buffer, _e, done) => (hash.update(c), (size += c.length), done(null, c)) }),
      createWriteStream(tmp),
    );
    const digest = `sha256:${hash.digest('hex')}`;
    await rename(tmp, join(dir, 'blobs/sha256', digest.slice(7)));
    layers.push({ digest, size });
    diffIds.push(blob.digest);
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
    }),
  );
  for (const b of [config, manifest]) await writeFile(join(dir, 'blobs/sha256', sha256(b).slice(7)), b);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'big' } }],
    }),
  );
  return layers.reduce((n, l) => n + l.size, 0) + config.length;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  await syncDisks();
  const t0 = performance.now();
  await work();
  return (performance.now() - t0) / 1000;
}

const dir = await mkdtemp(join(tmpdir(), 'portfolio-bench-import-'));
const servers: Registry[] = [];
try {
  const layout = join(dir, 'layout');
  const bytes = await writeLayout(layout);
  const results: Record<'import' | 'skopeo', number[]> = { import: [], skopeo: [] };
  for (let r = 0; r < rounds; r++) {
    for (const how of ['import', 'skopeo'] as const) {
      const dataDir = join(dir, `${how}-${r}`);
      const { args: extraArgs, databaseUrl } = await freshStores();
      const server = await startPortfolio({ cli, dataDir, extraArgs, extraEnv: S3_ENV });
      servers.push(server);
      const host = new URL(server.url).host;
      const seconds = await timed(() =>
        how === 'import'
          ? run(process.execPath, [cli, 'import', layout, 'bench/big', '--data-dir', dataDir, ...extraArgs], { env: { ...process.env, ...S3_ENV } })
          : run('skopeo', ['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout}:big`, `docker://${host}/bench/big:big`]),
      );
      results[how].push(seconds);
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
      if (databaseUrl) await dropDatabase(databaseUrl);
    }
  }
  const best = (xs: number[]) => Math.min(...xs);
  console.log(`${(bytes / MiB).toFixed(0)} MiB OCI layout (${layerCount} × ${layerSize / MiB} MiB layers), best of ${rounds}, ${pgS3 ? 'PostgreSQL + S3 (Ceph RGW)' : 'SQLite + files'}`);
  for (const how of ['import', 'skopeo'] as const) {
    const s = best(results[how]);
    console.log(`  ${how === 'import' ? 'portfolio import ' : 'skopeo copy      '} ${s.toFixed(1)} s  ${(bytes / 1e6 / s).toFixed(0)} MB/s   (runs: ${results[how].map((x) => x.toFixed(1)).join(', ')} s)`);
  }
} finally {
  for (const s of servers) await s.stop();
  await rm(dir, { recursive: true, force: true });
}
