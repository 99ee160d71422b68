/**
 * A repository under an upstream's prefix: reads go through the cache, writes are refused while
 * the upstream is read-only (405 UNSUPPORTED, docs/proxy.md) and go to the local store otherwise.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../core/digest.js';
import { errors } from '../core/errors.js';
import type {
  AppendOptions,
  BlobHandle,
  BlobInfo,
  BlobStore,
  ByteRange,
  ManifestInfo,
  ManifestStore,
  Page,
  PageRequest,
  PutManifestResult,
  Repository,
  StoredManifest,
  UploadState,
  UploadStore,
} from '../core/interfaces.js';
import type { Descriptor, ParsedManifest } from '../core/manifest.js';
import type { Reference, RepositoryName } from '../core/names.js';
import type { UpstreamCache } from './upstream-cache.js';

function readOnly(cache: UpstreamCache, name: string): Error {
  return errors.unsupported(`${name} is a read-only cache of ${cache.config.url}: push and delete are refused`);
}

export class CachedRepository implements Repository {
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  readonly manifests: ManifestStore;

  constructor(
    cache: UpstreamCache,
    private readonly local: Repository,
    readonly name: RepositoryName,
  ) {
    this.blobs = new CachedBlobs(cache, local);
    this.uploads = cache.config.readOnly ? new RefusedUploads(cache, name) : local.uploads;
    this.manifests = new CachedManifests(cache, local);
  }

  tags(page: PageRequest): Promise<Page | null> {
    return this.local.tags(page);
  }
}

class CachedBlobs implements BlobStore {
  constructor(
    private readonly cache: UpstreamCache,
    private readonly local: Repository,
  ) {}

  async stat(digest: Digest): Promise<BlobInfo | null> {
    const found = await this.local.blobs.stat(digest);
    if (found || !this.cache.allowed(this.cache.upstreamName(this.local.name))) return found;
    return this.cache.statUpstream(this.local.name, digest);
  }

  async open(digest: Digest): Promise<BlobHandle | null> {
    const found = await this.local.blobs.open(digest);
    if (found) {
      this.cache.options.observer?.proxyHit(this.cache.config.prefix, 'blob');
      return found;
    }
    if (!this.cache.allowed(this.cache.upstreamName(this.local.name))) return null;
    const fill = await this.cache.fill(this.local, digest);
    if (!fill) return null;
    const size = fill.size;
    if (size === null) {
      // Without a length nothing can be answered before the end: read the stored blob.
      await this.cache.awaitFill(fill, digest);
      return this.local.blobs.open(digest);
    }
    return {
      info: { digest, size },
      read: async (range?: ByteRange) => {
        // Every client, ranges included, reads along from the spool at its own pace.
        const reader = fill.spool.reader(range?.start ?? 0, range ? range.end + 1 : size);
        if (reader) return reader;
        // The fill ended since: the blob is stored (or the fill failed, which this reports).
        await this.cache.awaitFill(fill, digest);
        const handle = await this.local.blobs.open(digest);
        if (!handle) throw errors.blobUnknown(digest);
        return handle.read(range);
      },
    };
  }

  delete(digest: Digest): Promise<void> {
    if (this.cache.config.readOnly) throw readOnly(this.cache, this.local.name);
    return this.local.blobs.delete(digest);
  }

  mount(digest: Digest, from: RepositoryName | null): Promise<BlobInfo | null> {
    if (this.cache.config.readOnly) throw readOnly(this.cache, this.local.name);
    return this.local.blobs.mount(digest, from);
  }
}

class CachedManifests implements ManifestStore {
  constructor(
    private readonly cache: UpstreamCache,
    private readonly local: Repository,
  ) {}

  async head(reference: Reference): Promise<ManifestInfo | null> {
    const found = await this.get(reference);
    return found ? { digest: found.digest, mediaType: found.mediaType, size: found.size } : null;
  }

  get(reference: Reference): Promise<StoredManifest | null> {
    return this.cache.manifest(this.local, reference);
  }

  put(reference: Reference, bytes: Buffer, manifest: ParsedManifest): Promise<PutManifestResult> {
    if (this.cache.config.readOnly) throw readOnly(this.cache, this.local.name);
    return this.local.manifests.put(reference, bytes, manifest);
  }

  delete(reference: Reference): Promise<void> {
    if (this.cache.config.readOnly) throw readOnly(this.cache, this.local.name);
    return this.local.manifests.delete(reference);
  }

  referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    return this.local.manifests.referrers(subject, artifactType);
  }
}

class RefusedUploads implements UploadStore {
  constructor(
    private readonly cache: UpstreamCache,
    private readonly name: string,
  ) {}

  private refuse(): Promise<never> {
    return Promise.reject(readOnly(this.cache, this.name));
  }

  start(): Promise<UploadState> {
    return this.refuse();
  }
  get(_id: string): Promise<UploadState> {
    return this.refuse();
  }
  append(_id: string, _body: Readable, _options: AppendOptions): Promise<UploadState> {
    return this.refuse();
  }
  complete(_id: string, _digest: Digest, _body: Readable | null, _options: AppendOptions): Promise<BlobInfo> {
    return this.refuse();
  }
  cancel(_id: string): Promise<void> {
    return this.refuse();
  }
  putFile(_digest: Digest, _path: string, _size: number): Promise<BlobInfo> {
    return this.refuse();
  }
}
