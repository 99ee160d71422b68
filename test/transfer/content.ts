/** Test content for transfers: an OCI image layout on disk and a crawler that lists what a registry serves. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { blob, image, index, OCI_INDEX, OCI_MANIFEST, type Blob } from '../helpers/oci.js';

export interface LayoutEntry {
  digest: string;
  mediaType: string;
  size: number;
  tag?: string;
}

export interface Layout {
  /** Every blob and manifest by digest. */
  objects: Map<string, Buffer>;
  entries: LayoutEntry[];
}

/**
 * An image (tag v1), a two-platform index (tag multi) whose children share a layer, an image
 * tagged twice, a referrer of the first image and a referrer of that referrer (listed untagged).
 */
export function sampleLayout(layerBytes = 64 * 1024, extraLayers = 0): Layout {
  const objects = new Map<string, Buffer>();
  const add = (b: Blob) => objects.set(b.digest, b.bytes);
  // Layers are real gzip streams: clients such as skopeo recompress anything else.
  const layer = (n: number) => blob(gzipSync(randomBytes(n), { level: 1 }));
  const shared = layer(layerBytes);
  const extra = Array.from({ length: extraLayers }, () => layer(layerBytes));
  const a = image({ layers: [shared, layer(layerBytes), ...extra] });
  const b = image({ layers: [shared, layer(1000)] });
  const c = image({ layers: [shared, layer(2000)] });
  const d = image({ layers: [layer(3000)] });
  const idx = index([b, c].map((m) => ({ digest: m.digest, size: m.manifest.length, mediaType: m.mediaType })));
  const sbom = image({
    layers: [blob('{"sbom":true}')],
    artifactType: 'application/vnd.example.sbom',
    configMediaType: 'application/vnd.oci.empty.v1+json',
    subject: { mediaType: OCI_MANIFEST, digest: a.digest, size: a.manifest.length },
  });
  // A signature of the SBOM: a referrer of a referrer.
  const signature = image({
    layers: [blob('{"signature":true}')],
    artifactType: 'application/vnd.example.signature',
    configMediaType: 'application/vnd.oci.empty.v1+json',
    subject: { mediaType: OCI_MANIFEST, digest: sbom.digest, size: sbom.manifest.length },
  });
  for (const img of [a, b, c, d, sbom, signature]) {
    add(img.config);
    img.layers.forEach(add);
    objects.set(img.digest, img.manifest);
  }
  objects.set(idx.digest, idx.manifest);
  const entry = (m: { digest: string; manifest: Buffer; mediaType: string }, tag?: string): LayoutEntry => ({ digest: m.digest, mediaType: m.mediaType, size: m.manifest.length, tag });
  return {
    objects,
    entries: [entry(a, 'v1'), entry(idx, 'multi'), entry(d, 'one'), entry(d, 'two'), entry(sbom), entry(signature)],
  };
}

export async function writeLayout(dir: string, layout: Layout): Promise<void> {
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const [digest, bytes] of layout.objects) await writeFile(join(dir, 'blobs/sha256', digest.slice('sha256:'.length)), bytes);
  const manifests = layout.entries.map((e) => ({
    mediaType: e.mediaType,
    digest: e.digest,
    size: e.size,
    ...(e.tag ? { annotations: { 'org.opencontainers.image.ref.name': e.tag } } : {}),
  }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
}

const ACCEPT = [OCI_MANIFEST, OCI_INDEX, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');

export interface Served {
  tags: Record<string, string>;
  /** `digest sha256-of-served-bytes` for every manifest and blob reachable from the tags and their referrers, sorted. */
  objects: string[];
}

/** Lists what a registry serves for a repository: tags, and every reachable manifest, blob and referrer with its bytes' digest. */
export async function served(base: string, repo: string, headers: Record<string, string> = {}, referrers = true): Promise<Served> {
  const tagList = (await (await fetch(`${base}/v2/${repo}/tags/list`, { headers })).json()) as { tags: string[] | null };
  const tags: Record<string, string> = {};
  const seen = new Map<string, string>();
  const fetchBytes = async (path: string, accept?: string): Promise<Buffer> => {
    const res = await fetch(`${base}/v2/${repo}/${path}`, { headers: { ...headers, ...(accept ? { accept } : {}) } });
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  };
  const hash = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const visitBlob = async (digest: string) => {
    if (seen.has(digest)) return;
    seen.set(digest, hash(await fetchBytes(`blobs/${digest}`)));
  };
  const visitManifest = async (digest: string): Promise<void> => {
    if (seen.has(digest)) return;
    const bytes = await fetchBytes(`manifests/${digest}`, ACCEPT);
    seen.set(digest, hash(bytes));
    const m = JSON.parse(bytes.toString()) as { config?: { digest: string }; layers?: { digest: string }[]; manifests?: { digest: string }[] };
    if (m.config) await visitBlob(m.config.digest);
    for (const l of m.layers ?? []) await visitBlob(l.digest);
    for (const child of m.manifests ?? []) await visitManifest(child.digest);
    if (referrers) {
      const res = await fetch(`${base}/v2/${repo}/referrers/${digest}`, { headers });
      if (res.status === 200) {
        const list = (await res.json()) as { manifests: { digest: string }[] };
        for (const r of list.manifests) await visitManifest(r.digest);
      }
    }
  };
  for (const tag of tagList.tags ?? []) {
    const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { ...headers, accept: ACCEPT } });
    const digest = res.headers.get('docker-content-digest')!;
    tags[tag] = digest;
    await visitManifest(digest);
  }
  return { tags, objects: [...seen].map(([d, h]) => `${d} ${h}`).sort() };
}

/** What a layout should serve: every object, each with its own digest. */
export function expected(layout: Layout): Served {
  const tags: Record<string, string> = {};
  for (const e of layout.entries) if (e.tag) tags[e.tag] = e.digest;
  return { tags, objects: [...layout.objects.keys()].map((d) => `${d} ${d}`).sort() };
}
