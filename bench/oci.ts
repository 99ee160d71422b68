/**
 * The client side of pushes, as docker does them: HEAD each blob, POST + monolithic PUT for each
 * missing one, then PUT the manifest under a tag.
 */
import { expect, header, withQuery, type HttpClient } from './http.js';
import { Rng, sha256 } from './data.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const ACCEPT_MANIFESTS = 'application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json';

export interface Blob {
  digest: string;
  size: number;
  data: Buffer;
  mediaType: string;
}

export interface Image {
  config: Blob;
  layers: Blob[];
  manifest: Buffer;
  manifestDigest: string;
}

function blob(data: Buffer, mediaType: string): Blob {
  return { digest: sha256(data), size: data.length, data, mediaType };
}

/** A small image: ~1 KiB JSON config and `layerCount` random layers of `layerSize` bytes. */
export function makeImage(rng: Rng, layerCount = 2, layerSize = 4096): Image {
  const layers = Array.from({ length: layerCount }, () => blob(rng.bytes(layerSize), 'application/vnd.oci.image.layer.v1.tar+gzip'));
  const cfg = {
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'], Labels: { 'bench.nonce': '' } },
    rootfs: { type: 'layers', diff_ids: layers.map(() => `sha256:${rng.hex(64)}`) },
    history: [{ created: '2024-01-01T00:00:00Z', created_by: 'portfolio bench' }],
  };
  let json = JSON.stringify(cfg);
  cfg.config.Labels['bench.nonce'] = rng.hex(Math.max(16, 1024 - json.length));
  json = JSON.stringify(cfg);
  const config = blob(Buffer.from(json), 'application/vnd.oci.image.config.v1+json');
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  return { config, layers, manifest, manifestDigest: sha256(manifest) };
}

/** POST an upload session; returns the Location to continue it. */
export async function startUpload(client: HttpClient, repo: string): Promise<URL> {
  const res = expect(await client.request(`/v2/${repo}/blobs/uploads/`, { method: 'POST' }), 202, `POST upload ${repo}`);
  const location = header(res, 'location');
  if (!location) throw new Error(`POST upload ${repo}: no Location`);
  return client.url(location);
}

/** Pushes a blob unless the registry has it (HEAD, then POST + monolithic PUT). */
export async function pushBlob(client: HttpClient, repo: string, b: Blob): Promise<void> {
  const head = await client.request(`/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' });
  if (head.status === 200) return;
  expect(head, 404, `HEAD blob ${repo}`);
  const location = await startUpload(client, repo);
  const put = await client.request(withQuery(location, 'digest', b.digest), {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: b.data,
  });
  expect(put, 201, `PUT blob ${repo}`);
}

export async function putManifest(client: HttpClient, repo: string, reference: string, manifest: Buffer): Promise<void> {
  const res = await client.request(`/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'Content-Type': OCI_MANIFEST },
    body: manifest,
  });
  expect(res, 201, `PUT manifest ${repo}:${reference}`);
}

export async function pushImage(client: HttpClient, repo: string, tag: string, image: Image): Promise<void> {
  // docker pushes the layers in parallel and the config after them; one client at a time per
  // image keeps the concurrency at exactly the number of workers.
  for (const l of image.layers) await pushBlob(client, repo, l);
  await pushBlob(client, repo, image.config);
  await putManifest(client, repo, tag, image.manifest);
}

/** Runs `task(i)` for i in [0, count) on `concurrency` workers. */
export async function pool(count: number, concurrency: number, task: (i: number, worker: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async (_, worker) => {
      for (;;) {
        const i = next++;
        if (i >= count) return;
        await task(i, worker);
      }
    }),
  );
}
