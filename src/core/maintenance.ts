/**
 * Storage management a backend offers beside the distribution API: garbage collection,
 * integrity checks, accounting and repository removal. The CLI and the admin routes use it.
 */
import type { EventOrigin } from './events.js';
import type { RepositoryName } from './names.js';

export interface GcOptions {
  /** Links and blobs untouched for less than this (ms) are kept, so in-flight pushes are safe. */
  graceMs: number;
  /** Also delete manifests with no tag, no parent index and no live subject after this long (ms). */
  deleteUntaggedAfterMs?: number;
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean;
  /** Skip listing the object store for orphans (a full listing is costly; orphans are rare). */
  skipOrphanScan?: boolean;
  onProgress?: (progress: { phase: string; done: number }) => void;
}

export interface GcReport {
  uploadsExpired: number;
  manifestsDeleted: number;
  linksDeleted: number;
  blobsDeleted: number;
  bytesFreed: number;
  orphanObjectsDeleted: number;
  orphanBytesFreed: number;
  durationMs: number;
  /** False when another process held the collection lease, so this pass did nothing. */
  ran: boolean;
}

export interface FsckOptions {
  /** Re-hash every blob's bytes, not just check their size. */
  full?: boolean;
  /** Fix what is safe to fix: delete orphaned objects and expired sessions, drop rows of missing unreferenced blobs. */
  repair?: boolean;
  /** Objects younger than this (ms) are not orphans yet: an upload may be about to record them. */
  graceMs: number;
  onProgress?: (progress: { phase: string; done: number }) => void;
}

export interface FsckProblem {
  kind:
    | 'blob-missing'
    | 'blob-size'
    | 'blob-digest'
    | 'manifest-reference'
    | 'manifest-digest'
    | 'tag-dangling'
    | 'repository-summary'
    | 'orphan-object'
    | 'upload-missing'
    | 'upload-expired';
  subject: string;
  detail: string;
  repaired: boolean;
}

export interface FsckReport {
  checked: { blobs: number; manifests: number; tags: number; repositories: number; uploads: number; objects: number };
  problems: FsckProblem[];
}

export interface RepositoryUsage {
  name: string;
  manifests: number;
  tags: number;
  blobs: number;
  /** Sum of the sizes of the blobs linked here (what a full pull of everything would move). */
  bytes: number;
}

export interface Usage {
  repositories: RepositoryUsage[];
  /** Bytes as stored once: each blob counted once however many repositories link it. */
  storedBytes: number;
  /** Sum over repositories, counting shared blobs once per repository. */
  logicalBytes: number;
  blobs: number;
}

export interface Maintenance {
  collectGarbage(options: GcOptions): Promise<GcReport>;
  fsck(options: FsckOptions): Promise<FsckReport>;
  usage(): Promise<Usage>;
  /** Removes a repository's manifests, tags, links and sessions; collection reclaims its bytes. */
  deleteRepository(name: RepositoryName, origin?: EventOrigin): Promise<boolean>;
}
