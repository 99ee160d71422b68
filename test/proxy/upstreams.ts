/** Real upstream registries for the cache tests: CNCF distribution with htpasswd Basic auth, and image layouts to push with skopeo. */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { freePort } from '../helpers/net.js';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, sha256 } from '../helpers/oci.js';

export const DISTRIBUTION = process.env.DOCKER_REGISTRY ?? '/usr/bin/docker-registry';

export interface Distribution {
  url: string;
  process: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** CNCF distribution (`docker-registry serve`) on a free loopback port, with Basic auth from `htpasswd`. */
export async function startDistribution(dir: string, htpasswd: string): Promise<Distribution> {
  const port = await freePort();
  await mkdir(join(dir, 'data'), { recursive: true });
  const config = [
    'version: 0.1',
    'log: {level: warn}',
    `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}, delete: {enabled: true}}`,
    `http: {addr: "127.0.0.1:${port}"}`,
    `auth: {htpasswd: {realm: upstream-b, path: ${htpasswd}}}`,
  ].join('\n');
  await writeFile(join(dir, 'config.yml'), config);
  const child = spawn(DISTRIBUTION, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited:\n${output}`);
    const ready = await fetch(`${url}/v2/`).then(
      (r) => r.status === 401,
      () => false,
    );
    if (ready) break;
    if (attempt > 200) throw new Error(`docker-registry did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    process: child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface Layout {
  dir: string;
  digest: string;
  manifest: Buffer;
  blobs: Map<string, Buffer>;
}

/** An OCI layout with one image of `layers` random gzip layers of `layerBytes` each, tagged `tag`. */
export async function writeImageLayout(dir: string, tag: string, layers = 2, layerBytes = 300_000): Promise<Layout> {
  const blobs = new Map<string, Buffer>();
  const layerBlobs = Array.from({ length: layers }, () => gzipSync(randomBytes(layerBytes), { level: 1 }));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(8).toString('hex') }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: layerBlobs.map((l) => ({ mediaType: OCI_LAYER, digest: sha256(l), size: l.length })),
    }),
  );
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  for (const b of [...layerBlobs, config, manifest]) {
    blobs.set(sha256(b), b);
    await writeFile(join(dir, 'blobs/sha256', sha256(b).slice(7)), b);
  }
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { dir, digest: sha256(manifest), manifest, blobs };
}

/** An OCI layout with a two-platform index tagged `tag` whose children are two small images. */
export async function writeIndexLayout(dir: string, tag: string): Promise<Layout & { children: Layout[] }> {
  const children = [await writeImageLayout(join(dir, 'amd64'), 'x', 1, 100_000), await writeImageLayout(join(dir, 'arm64'), 'x', 1, 100_000)];
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: children.map((c, i) => ({
        mediaType: OCI_MANIFEST,
        digest: c.digest,
        size: c.manifest.length,
        platform: { architecture: i === 0 ? 'amd64' : 'arm64', os: 'linux' },
      })),
    }),
  );
  const blobs = new Map<string, Buffer>([[sha256(index), index]]);
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  for (const child of children) for (const [digest, bytes] of child.blobs) blobs.set(digest, bytes);
  for (const [digest, bytes] of blobs) await writeFile(join(dir, 'blobs/sha256', digest.slice(7)), bytes);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_INDEX, digest: sha256(index), size: index.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { dir, digest: sha256(index), manifest: index, blobs, children };
}
