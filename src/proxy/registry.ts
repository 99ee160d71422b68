/**
 * The pull-through cache: a Registry that serves repositories under each upstream's prefix from
 * the local store, filling it from the upstream on a miss, and every other repository from the
 * wrapped registry unchanged. Cached content is ordinary content of the wrapped registry (GC,
 * `du` and `fsck` see it); it only ever enters through the wrapped registry's own stores: blobs
 * through `putFile` once the fill verified their digest, manifests through `put`.
 */
import os from 'node:os';
import { join } from 'node:path';
import type { EventOrigin } from '../core/events.js';
import type { Page, PageRequest, Registry, Repository, CatalogFilter } from '../core/interfaces.js';
import type { RepositoryName } from '../core/names.js';
import type { UpstreamConfig } from './config.js';
import { CachedRepository } from './repository.js';
import { UpstreamCache, type ProxyLogger, type ProxyObserver } from './upstream-cache.js';

export interface ProxyOptions {
  logger?: ProxyLogger;
  observer?: ProxyObserver;
}

export class ProxyRegistry implements Registry {
  /** Longest prefix first, so `cache/ghcr` wins over `cache`. */
  private readonly caches: UpstreamCache[];
  /** In configuration order: the first upstream of a host serves its mirror requests. */
  private readonly configured: UpstreamCache[];

  constructor(
    private readonly inner: Registry,
    upstreams: readonly UpstreamConfig[],
    options: ProxyOptions = {},
  ) {
    const logger = options.logger;
    // Spooled next to the stored blobs when they are local files (storing is then a link, no copy).
    const spoolDir = inner.spoolDirectory ?? join(os.tmpdir(), 'portfolio-spool');
    const shared = { logger, observer: options.observer, spoolDir };
    this.configured = upstreams.map((config) => new UpstreamCache(config, shared));
    this.caches = [...this.configured].sort((a, b) => b.config.prefix.length - a.config.prefix.length);
  }

  /** The cache serving `name`, if it lies below one of the prefixes. */
  cacheFor(name: string): UpstreamCache | undefined {
    return this.caches.find((cache) => name.startsWith(`${cache.config.prefix}/`));
  }

  /**
   * The prefix of the upstream a containerd mirror request names with `?ns=HOST`: the upstream
   * whose prefix is HOST, else the first configured whose URL's host is HOST.
   */
  mirrorPrefix(ns: string): string | undefined {
    const byPrefix = this.caches.find((cache) => cache.config.prefix === ns);
    if (byPrefix) return byPrefix.config.prefix;
    return this.configured.find((cache) => new URL(cache.config.url).host === ns)?.config.prefix;
  }

  repository(name: RepositoryName, origin?: EventOrigin): Repository {
    const local = this.inner.repository(name, origin);
    const cache = this.cacheFor(name);
    return cache ? new CachedRepository(cache, local, name) : local;
  }

  get spoolDirectory(): string | undefined {
    return this.inner.spoolDirectory;
  }

  catalog(page: PageRequest, filter?: CatalogFilter): Promise<Page> {
    return this.inner.catalog(page, filter);
  }

  expireUploads(now?: Date): Promise<number> {
    return this.inner.expireUploads(now);
  }

  /**
   * Nothing of its own to release: the wrapped registry is closed by its owner after this, and
   * fills still running then fail and leave nothing visible.
   */
  async close(): Promise<void> {}
}
