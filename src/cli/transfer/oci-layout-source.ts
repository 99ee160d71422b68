/**
 * An OCI image layout (directory or tar) as an import source: `index.json` names the images,
 * `org.opencontainers.image.ref.name` their tags; blobs live under `blobs/<algorithm>/<hex>`.
 */
import { parseDigest, type Digest } from '../../core/digest.js';
import type { Files } from './files.js';
import type { ImageSource, SourceBlob, SourceManifest, SourceRepository } from './source.js';
import { splitReference } from './references.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';

interface IndexDescriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
}

export function blobPath(digest: Digest): string {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return `blobs/${algorithm}/${hex}`;
}

export async function isOciLayout(files: Files): Promise<boolean> {
  return (await files.exists('oci-layout')) && (await files.exists('index.json'));
}

export class OciLayoutSource implements ImageSource {
  constructor(
    private readonly files: Files,
    /** All images go into this repository; else each ref.name must name its repository. */
    private readonly destination: string | undefined,
  ) {}

  get description(): string {
    return `OCI layout ${this.files.description}`;
  }

  async *repositories(): AsyncIterable<SourceRepository> {
    const index = JSON.parse((await this.files.read('index.json')).toString('utf8')) as { manifests?: IndexDescriptor[] };
    const groups = new Map<string, { tags: { tag: string; digest: Digest }[]; manifests: Digest[] }>();
    const types = new Map<Digest, string>();
    for (const d of index.manifests ?? []) {
      const digest = parseDigest(d.digest);
      if (d.mediaType) types.set(digest, d.mediaType);
      const ref = d.annotations?.[REF_NAME];
      const { repository, tag } = ref ? splitReference(ref) : { repository: undefined, tag: undefined };
      // docker save (25 and later) keeps the full name beside a bare-tag ref.name.
      const full = d.annotations?.[CONTAINERD_NAME];
      const name = this.destination ?? repository ?? (full ? splitReference(full).repository : undefined);
      if (!name) throw new Error(`${this.files.description}: ${ref ? `ref.name ${JSON.stringify(ref)} names no repository` : `${digest} has no ref.name`}; give DEST-REPOSITORY`);
      let group = groups.get(name);
      if (!group) groups.set(name, (group = { tags: [], manifests: [] }));
      if (tag) group.tags.push({ tag, digest });
      else group.manifests.push(digest);
    }
    for (const [name, group] of groups) {
      yield {
        name,
        tags: group.tags,
        manifests: group.manifests,
        manifest: (digest) => this.manifest(digest, types.get(digest)),
        blob: (digest) => this.blob(digest),
      };
    }
  }

  private async manifest(digest: Digest, mediaType: string | undefined): Promise<SourceManifest> {
    return { bytes: await this.files.read(blobPath(digest)), mediaType };
  }

  private async blob(digest: Digest): Promise<SourceBlob | null> {
    const path = blobPath(digest);
    const size = await this.files.size(path);
    if (size === undefined) return null;
    return { size, stream: this.files.stream(path) };
  }

  async close(): Promise<void> {}
}
