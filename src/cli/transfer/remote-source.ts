/**
 * Another registry as an import source over the distribution API: one repository (optionally
 * some tags), a list, or the whole catalog. Referrers come from the referrers API where the
 * source has one.
 */
import { digestOf, parseDigest, type Digest } from '../../core/digest.js';
import { MANIFEST_MEDIA_TYPES, normalizeContentType } from '../../core/manifest.js';
import { RemoteClient, type Credentials } from './remote-client.js';
import type { ImageSource, SourceBlob, SourceManifest, SourceRepository } from './source.js';

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

export interface RemoteOptions {
  /** `http(s)://host[:port]`. */
  base: string;
  /** Repositories to import; empty means the whole catalog. */
  repositories: string[];
  /** Only these tags (with a single repository); empty means every tag. */
  tags: string[];
  /** Destination name (one repository) or prefix (several). */
  destination?: string;
  credentials?: Credentials;
}

/** `https://host/repo:tag` → base, repository, tag. */
export function parseRemote(url: string): { base: string; repository?: string; tag?: string } {
  const u = new URL(url);
  const path = u.pathname.replace(/^\/+|\/+$/g, '');
  const base = `${u.protocol}//${u.host}`;
  if (!path) return { base };
  const colon = path.indexOf(':');
  return colon === -1 ? { base, repository: path } : { base, repository: path.slice(0, colon), tag: path.slice(colon + 1) };
}

export class RemoteSource implements ImageSource {
  private readonly client: RemoteClient;

  constructor(private readonly options: RemoteOptions) {
    this.client = new RemoteClient(options.base, options.credentials);
  }

  get description(): string {
    return `registry ${this.options.base}`;
  }

  async *repositories(): AsyncIterable<SourceRepository> {
    const names = this.options.repositories.length ? this.options.repositories : await this.catalog();
    for (const name of names) {
      const scope = `repository:${name}:pull`;
      const tagNames = this.options.tags.length ? this.options.tags : await this.tags(name, scope);
      const tags: { tag: string; digest: Digest }[] = [];
      for (const tag of tagNames) {
        const { bytes } = await this.client.bytes(`/v2/${name}/manifests/${tag}`, scope, ACCEPT);
        tags.push({ tag, digest: digestOf(bytes) });
      }
      const destination = this.options.destination
        ? names.length === 1 && this.options.repositories.length === 1
          ? this.options.destination
          : `${this.options.destination}/${name}`
        : name;
      yield {
        name: destination,
        tags,
        manifests: [],
        manifest: (digest) => this.manifest(name, scope, digest),
        blob: (digest) => this.blob(name, scope, digest),
        referrers: (digest) => this.referrers(name, scope, digest),
      };
    }
  }

  private async catalog(): Promise<string[]> {
    const names: string[] = [];
    let path: string | null = '/v2/_catalog?n=1000';
    while (path) {
      const page: { body: { repositories?: string[] }; next: string | null } = await this.client.json(path, 'registry:catalog:*');
      names.push(...(page.body.repositories ?? []));
      path = page.next;
    }
    return names;
  }

  private async tags(name: string, scope: string): Promise<string[]> {
    const tags: string[] = [];
    let path: string | null = `/v2/${name}/tags/list?n=1000`;
    while (path) {
      const page: { body: { tags?: string[] | null }; next: string | null } = await this.client.json(path, scope);
      tags.push(...(page.body.tags ?? []));
      path = page.next;
    }
    return tags;
  }

  private async manifest(name: string, scope: string, digest: Digest): Promise<SourceManifest> {
    const { bytes, contentType } = await this.client.bytes(`/v2/${name}/manifests/${digest}`, scope, ACCEPT);
    const mediaType = normalizeContentType(contentType);
    return { bytes, mediaType: mediaType && MANIFEST_MEDIA_TYPES.includes(mediaType) ? mediaType : undefined };
  }

  private async blob(name: string, scope: string, digest: Digest): Promise<SourceBlob | null> {
    const found = await this.client.stream(`/v2/${name}/blobs/${digest}`, scope);
    return found && { size: found.size, stream: found.body };
  }

  /** Referrers by the referrers API; none where the source has no such API. */
  private async referrers(name: string, scope: string, digest: Digest): Promise<Digest[]> {
    const res = await this.client.get(`/v2/${name}/referrers/${digest}`, scope, { accept: 'application/vnd.oci.image.index.v1+json' });
    if (res.status !== 200) {
      await res.body?.cancel();
      return [];
    }
    const body = (await res.json()) as { manifests?: { digest: string }[] };
    return (body.manifests ?? []).map((m) => parseDigest(m.digest));
  }

  async close(): Promise<void> {}
}
