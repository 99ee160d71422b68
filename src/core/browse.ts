/**
 * Read queries behind the JSON API of the web interface (src/http/api/): each page is answered
 * from the metadata database with one or two indexed queries, never by listing the object store.
 */
import type { CatalogFilter } from './interfaces.js';
import type { RepositoryName } from './names.js';

export interface RepositorySummary {
  name: string;
  tags: number;
  manifests: number;
  /** Sum of the sizes of the blobs linked into the repository plus its manifests. */
  bytes: number;
  /** Last push of a manifest (ms since the epoch), null when it holds none. */
  lastPush: number | null;
}

export interface RepositoryQuery {
  /** Narrows to names containing this text (`match: 'substring'`) or starting with it (`'prefix'`). */
  search?: string;
  match?: 'substring' | 'prefix';
  /** Names strictly after this one (byte order). */
  after?: string;
  limit: number;
  /** Narrows to what a caller may see (a superset; the http layer checks each name exactly). */
  filter?: CatalogFilter;
}

export interface TagSummary {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  /** The manifest's bytes plus the blobs it (or, for an index, its children) references. */
  size: number;
  /** `os/arch[/variant]` of the image or of each index entry; empty when unknown. */
  platforms: string[];
  /** Last time the tag was pushed or moved (ms since the epoch). */
  pushedAt: number;
  /** Last pull of its manifest (ms since the epoch; recorded in batches), null when never pulled. */
  lastPulledAt: number | null;
}

export type TagSort = 'name' | 'pushed';

export interface TagQuery {
  sort: TagSort;
  /** The cursor of the previous page (opaque to callers): the last tag's sort key. */
  after?: { name: string; pushedAt: number };
  limit: number;
}

export interface ManifestDetail {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  size: number;
  pushedAt: number;
  content: Buffer;
  /** Tags in this repository that point at it. */
  tags: string[];
  /** Sizes and inline bytes of the blobs it references, by digest (inline bytes only when small). */
  blobs: Map<string, { size: number; inline: Buffer | null }>;
  /** Manifests here whose subject is this one. */
  referrers: { digest: string; mediaType: string; artifactType: string | null; size: number; annotations: Record<string, string> | null }[];
}

export interface UsageSummary {
  /** Each blob counted once, however many repositories link it. */
  storedBytes: number;
  blobs: number;
  repositories: number;
}

export interface Browse {
  repositories(query: RepositoryQuery): Promise<{ items: RepositorySummary[]; more: boolean }>;
  /** A repository's summary, or null when it does not exist. */
  repositorySummary(name: RepositoryName): Promise<RepositorySummary | null>;
  /** A repository's tags; null when the repository does not exist. */
  tags(name: RepositoryName, query: TagQuery): Promise<{ items: TagSummary[]; more: boolean } | null>;
  /** A manifest by digest or tag, or null. */
  manifest(name: RepositoryName, reference: string): Promise<ManifestDetail | null>;
  usageSummary(): Promise<UsageSummary>;
}
