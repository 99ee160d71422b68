/**
 * How long a garbage-collection pass takes: N blobs (default 10,000) in 100 repositories, half
 * of them referenced by manifests, then one zero-grace pass that removes the other half, and a
 * second pass that finds nothing to do.
 *
 *   npm run bench:gc [-- --blobs N] [-- "--engine-args=--database-url … --storage s3://…"]
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { openEngine } from '../src/cli/engine.js';
import { parseDigest } from '../src/core/digest.js';
import { parseManifest } from '../src/core/manifest.js';
import { parseReference, parseRepositoryName } from '../src/core/names.js';

const { values } = parseArgs({ options: { blobs: { type: 'string' }, 'engine-args': { type: 'string' } } });
const total = Number(values.blobs ?? 10_000);
const args = (values['engine-args'] ?? '').split(/\s+/).filter(Boolean);
const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);

const dir = await mkdtemp(join(tmpdir(), 'portfolio-gc-bench-'));
const engine = await openEngine({ dataDir: dir, databaseUrl: flag('--database-url'), storage: flag('--storage'), uploadTtlMs: 3_600_000, migrate: true });
const { registry } = engine;
try {
  const started = performance.now();
  const repos = 100;
  const perRepo = Math.ceil(total / repos);
  await Promise.all(
    Array.from({ length: repos }, async (_, r) => {
      const repo = registry.repository(parseRepositoryName(`gcbench/r${r}`));
      const kept: { digest: string; size: number }[] = [];
      for (let i = 0; i < perRepo; i++) {
        const bytes = randomBytes(256);
        const digest = parseDigest(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
        const session = await repo.uploads.start();
        await repo.uploads.complete(session.id, digest, Readable.from([bytes]), {});
        if (i % 2 === 0) kept.push({ digest, size: bytes.length });
      }
      // Manifests of 10 layers reference half the blobs (the first kept blob doubles as config).
      for (let i = 0; i + 10 < kept.length; i += 10) {
        const body = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...kept[i]! },
            layers: kept.slice(i + 1, i + 11).map((k) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...k })),
          }),
        );
        await repo.manifests.put(parseReference(`t${i}`), body, parseManifest(body, 'application/vnd.oci.image.manifest.v1+json'));
      }
    }),
  );
  console.log(`set-up: ${repos * perRepo} blobs in ${repos} repositories in ${((performance.now() - started) / 1000).toFixed(1)} s (${engine.describe.database}, ${engine.describe.storage})`);
  const first = await registry.collectGarbage({ graceMs: 0 });
  console.log(`pass 1: removed ${first.linksDeleted} links, ${first.blobsDeleted} blobs, scanned orphans; ${first.durationMs} ms`);
  const second = await registry.collectGarbage({ graceMs: 0 });
  console.log(`pass 2: removed ${second.blobsDeleted} blobs; ${second.durationMs} ms (a pass with nothing to do)`);
  const fsck = await registry.fsck({ graceMs: 0 });
  console.log(`fsck: ${fsck.problems.length} problems over ${fsck.checked.blobs} blobs`);
} finally {
  await registry.close();
  await rm(dir, { recursive: true, force: true });
}
