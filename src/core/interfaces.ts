/**
 * The contract between the http layer and every backend (seed: RepositoryStoreManager,
 * RepositoryStore, ManifestStore, BlobStore, BlobWriter/UploadSession). A backend is valid
 * when it passes the shared contract suite in test/contract/.
 *
 * Rules every implementation keeps:
 * - Nothing becomes visible until its bytes are durably written and digest-verified.
 * - A committed manifest never references a blob or child that is missing from its repository.
 * - Failures that a client caused are RegistryErrors with the spec's status and code.
 */
import type { Readable, Writable } from 'node:stream';
import type { Digest } from './digest.js';
import type { EventOrigin } from './events.js';
import type { Descriptor, ParsedManifest } from './manifest.js';
import type { Reference, RepositoryName } from './names.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** An inclusive byte range, already resolved against the blob's size. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * A blob's bytes as a stream, opened. A store may also know a faster way to write them into a
 * sink than piping (`sendTo`: resolves once every byte was handed over and the sink ended).
 * Either consume the stream or call `sendTo`, not both.
 */
export type BlobStream = Readable & { sendTo?(sink: Writable): Promise<void> };

export interface BlobHandle {
  info: BlobInfo;
  /** Streams the blob, or the inclusive range of it. */
  read(range?: ByteRange): Promise<BlobStream>;
  /** A URL the client may fetch the bytes from instead (a presigned object-store URL), when configured. */
  directUrl?(): Promise<string>;
}

export interface UploadState {
  id: string;
  repository: RepositoryName;
  /** Bytes received so far; the next chunk starts here. */
  offset: number;
  expiresAt: Date;
}

export interface AppendOptions {
  /** Where the client says this chunk starts (from Content-Range); must equal the offset. */
  start?: number;
  /** How many bytes the client says it sends (Content-Length or the Content-Range span). */
  length?: number;
}

export interface ManifestInfo {
  digest: Digest;
  mediaType: string;
  size: number;
}

export interface StoredManifest extends ManifestInfo {
  bytes: Buffer;
}

export interface PutManifestResult {
  digest: Digest;
  subject: Digest | null;
}

export interface PageRequest {
  /** Maximum number of entries; undefined means the backend's default page. */
  n?: number;
  /** Return entries strictly after this one in byte order. */
  last?: string;
}

export interface Page {
  items: string[];
  /** True when entries remain after the last one returned. */
  more: boolean;
}

export interface BlobStore {
  /** Metadata of a blob visible in this repository, or null. */
  stat(digest: Digest): Promise<BlobInfo | null>;
  open(digest: Digest): Promise<BlobHandle | null>;
  /** Unlinks the blob from this repository. Throws BLOB_UNKNOWN, or 409 when a manifest here uses it. */
  delete(digest: Digest): Promise<void>;
  /**
   * Links a blob into this repository without moving bytes: from `from` when given (it must be
   * visible there), else from any repository. Returns null when the blob cannot be mounted.
   */
  mount(digest: Digest, from: RepositoryName | null): Promise<BlobInfo | null>;
}

export interface UploadStore {
  start(): Promise<UploadState>;
  /** Throws BLOB_UPLOAD_UNKNOWN for unknown or expired sessions. */
  get(id: string): Promise<UploadState>;
  /** Appends a chunk. A chunk that does not start at the offset is RANGE_INVALID (416); the session stays usable. */
  append(id: string, body: Readable, options: AppendOptions): Promise<UploadState>;
  /** Appends an optional last chunk, verifies the digest and makes the blob visible here. */
  complete(id: string, digest: Digest, body: Readable | null, options: AppendOptions): Promise<BlobInfo>;
  cancel(id: string): Promise<void>;
  /**
   * Makes a blob visible here from a complete local file whose bytes the caller already hashed
   * to `digest` while receiving them (a pull-through fill): only the size is checked again. The
   * file is left in place for the caller to remove; on the file store it is linked, not copied.
   */
  putFile(digest: Digest, path: string, size: number): Promise<BlobInfo>;
}

export interface ManifestStore {
  head(reference: Reference): Promise<ManifestInfo | null>;
  get(reference: Reference): Promise<StoredManifest | null>;
  /** Stores the verbatim bytes; a reference by digest must equal the bytes' digest (the http layer checks). */
  put(reference: Reference, bytes: Buffer, manifest: ParsedManifest): Promise<PutManifestResult>;
  /** By tag: removes the tag. By digest: removes the manifest and its tags (409 while an index here uses it). */
  delete(reference: Reference): Promise<void>;
  /** Descriptors of the manifests in this repository whose subject is `subject`. */
  referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]>;
}

export interface Repository {
  readonly name: RepositoryName;
  readonly blobs: BlobStore;
  readonly uploads: UploadStore;
  readonly manifests: ManifestStore;
  /** Tags in byte order, or null when the repository does not exist. */
  tags(page: PageRequest): Promise<Page | null>;
}

/**
 * Narrows a catalog to names equal to one of `names` or starting with one of `prefixes` (byte
 * order). Lets a caller who may see few repositories page through those, not through all.
 */
export interface CatalogFilter {
  names: readonly string[];
  prefixes: readonly string[];
}

export interface Registry {
  /** A repository's stores; changes made through them record `origin` in their events. */
  repository(name: RepositoryName, origin?: EventOrigin): Repository;
  /** Repository names in byte order; with a filter, only those it lets through (`n` counts those). */
  catalog(page: PageRequest, filter?: CatalogFilter): Promise<Page>;
  /**
   * A local directory for temporary files on the filesystem that holds the blobs, when they are
   * local files: a file written there is stored by `putFile` without a copy.
   */
  readonly spoolDirectory?: string;
  /** Deletes upload sessions past their expiry and reclaims their bytes; returns how many. */
  expireUploads(now?: Date): Promise<number>;
  close(): Promise<void>;
}
