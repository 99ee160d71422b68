/**
 * What the pull-through cache asks of a backend beyond the distribution API: a cheap record of
 * when cached manifests were pulled, and removal of what nobody pulled for a while.
 */
import type { Digest } from './digest.js';

export interface CachePull {
  repository: string;
  digest: Digest;
  /** Unix milliseconds. */
  at: number;
}

export interface CachePruneOptions {
  /** Repository prefixes of the cached upstreams (`docker.io`): only repositories below them are pruned. */
  prefixes: readonly string[];
  /** Manifests neither pulled nor stored since this time (Unix ms) are deleted with their tags. */
  before: number;
  dryRun?: boolean;
}

export interface CachePruneReport {
  manifestsDeleted: number;
  /** Still referenced by an index that was pulled: kept. */
  manifestsKept: number;
}

export interface CacheLedger {
  /** Records pulls in one batch; the latest time wins. */
  recordPulls(pulls: readonly CachePull[]): Promise<void>;
  /** Deletes unused cached manifests (indexes before their children); garbage collection then reclaims their blobs. */
  pruneCache(options: CachePruneOptions): Promise<CachePruneReport>;
}
