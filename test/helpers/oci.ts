/** Small builders for test content: blobs, image manifests and indexes. */
import { createHash, randomBytes } from 'node:crypto';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function sha512(bytes: Uint8Array | string): string {
  return `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
}

export interface Blob {
  bytes: Buffer;
  digest: string;
  size: number;
}

export function blob(bytes: Buffer | string = randomBytes(1024)): Blob {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return { bytes: b, digest: sha256(b), size: b.length };
}

export interface Image {
  config: Blob;
  layers: Blob[];
  manifest: Buffer;
  digest: string;
  mediaType: string;
}

export interface ImageOptions {
  layers?: Blob[];
  mediaType?: string;
  configMediaType?: string;
  artifactType?: string;
  subject?: { mediaType: string; digest: string; size: number };
  annotations?: Record<string, string>;
}

export function image(options: ImageOptions = {}): Image {
  const mediaType = options.mediaType ?? OCI_MANIFEST;
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex') }));
  const layers = options.layers ?? [blob(), blob()];
  const layerType = mediaType === DOCKER_MANIFEST ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : OCI_LAYER;
  const body: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    ...(options.artifactType ? { artifactType: options.artifactType } : {}),
    config: {
      mediaType: options.configMediaType ?? (mediaType === DOCKER_MANIFEST ? 'application/vnd.docker.container.image.v1+json' : OCI_CONFIG),
      digest: config.digest,
      size: config.size,
    },
    layers: layers.map((l) => ({ mediaType: layerType, digest: l.digest, size: l.size })),
    ...(options.subject ? { subject: options.subject } : {}),
    ...(options.annotations ? { annotations: options.annotations } : {}),
  };
  const manifest = Buffer.from(JSON.stringify(body));
  return { config, layers, manifest, digest: sha256(manifest), mediaType };
}

export function index(children: { digest: string; size: number; mediaType: string }[], mediaType = OCI_INDEX): { manifest: Buffer; digest: string; mediaType: string } {
  const body = {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((c, i) => ({ ...c, platform: { architecture: i % 2 ? 'arm64' : 'amd64', os: 'linux' } })),
  };
  const manifest = Buffer.from(JSON.stringify(body));
  return { manifest, digest: sha256(manifest), mediaType };
}

/** Pushes a blob with a single POST?digest= request. */
export async function pushBlob(base: string, repo: string, b: Blob): Promise<void> {
  const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(b.size) },
    body: b.bytes,
  });
  if (res.status !== 201) throw new Error(`push blob ${b.digest}: ${res.status} ${await res.text()}`);
}

/** Pushes an image's blobs and manifest under `reference`. */
export async function pushImage(base: string, repo: string, img: Image, reference: string = img.digest): Promise<Response> {
  for (const b of [img.config, ...img.layers]) await pushBlob(base, repo, b);
  return fetch(`${base}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': img.mediaType },
    body: img.manifest,
  });
}
