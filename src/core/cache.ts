/**
 * What the pull-through cache asks of a backend beyond the distribution API: removal of what
 * nobody pulled for a while (the backend notes the pulls of every manifest it serves).
 */

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
  /** Deletes unused cached manifests (indexes before their children); garbage collection then reclaims their blobs. */
  pruneCache(options: CachePruneOptions): Promise<CachePruneReport>;
}
