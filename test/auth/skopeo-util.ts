/** skopeo helpers shared by the auth and TLS suites: a runner with an isolated HOME and a tiny OCI layout. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { RunningRegistry } from '../helpers/registry.js';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, sha256 } from '../helpers/oci.js';

const SKOPEO = process.env.SKOPEO ?? 'skopeo';

/** Environment that keeps skopeo away from the user's credentials and configuration. */
export async function skopeoEnv(work: string): Promise<NodeJS.ProcessEnv> {
  await mkdir(join(work, 'home'), { recursive: true });
  await writeFile(join(work, 'auth.json'), JSON.stringify({ auths: {} }));
  return { ...process.env, HOME: join(work, 'home'), XDG_CONFIG_HOME: join(work, 'home/.config'), XDG_RUNTIME_DIR: join(work, 'home'), REGISTRY_AUTH_FILE: join(work, 'auth.json') };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function skopeo(env: NodeJS.ProcessEnv, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(SKOPEO, ['--insecure-policy', ...args], { timeout: 30_000, env, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr: stderr + (error && typeof error.code !== 'number' ? error.message : '') });
    });
  });
}

export async function ok(env: NodeJS.ProcessEnv, args: string[], registry: RunningRegistry): Promise<Run> {
  const r = await skopeo(env, args);
  assert.equal(r.code, 0, `skopeo ${args.join(' ')}\n${r.stderr}\n--- server ---\n${registry.output().slice(-3000)}`);
  return r;
}

/** An OCI layout with one small image (a gzip layer and a config), tagged `v1`. */
export async function writeLayout(dir: string): Promise<{ digest: string; bytes: Buffer }> {
  const layer = gzipSync(randomBytes(50_000));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [{ mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length }],
    }),
  );
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  for (const b of [layer, config, manifest]) await writeFile(join(dir, 'blobs/sha256', sha256(b).slice(7)), b);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }],
    }),
  );
  return { digest: sha256(manifest), bytes: manifest };
}

