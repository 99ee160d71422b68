/** Counters of the pull-through cache, per upstream (its configured prefix: a fixed set), in the metrics registry. */
import { Counter, type Registry } from 'prom-client';

type Kind = 'manifest' | 'blob';

export class ProxyMetrics {
  private readonly hits: Counter<'upstream' | 'kind'>;
  private readonly misses: Counter<'upstream' | 'kind'>;
  private readonly bytes: Counter<'upstream'>;
  private readonly stale: Counter<'upstream'>;
  private readonly errors: Counter<'upstream'>;

  constructor(registry: Registry, upstreams: readonly string[]) {
    const registers = [registry];
    this.hits = new Counter({ name: 'portfolio_proxy_hits_total', help: 'Cached manifests and blobs served without fetching, by upstream prefix and kind', labelNames: ['upstream', 'kind'], registers });
    this.misses = new Counter({ name: 'portfolio_proxy_misses_total', help: 'Manifests and blobs fetched from the upstream, by upstream prefix and kind', labelNames: ['upstream', 'kind'], registers });
    this.bytes = new Counter({ name: 'portfolio_proxy_upstream_bytes_total', help: 'Bytes received from the upstream (manifests and blobs)', labelNames: ['upstream'], registers });
    this.stale = new Counter({ name: 'portfolio_proxy_stale_serves_total', help: 'Tags served past their TTL because the upstream was down, slow or answered 5xx/429', labelNames: ['upstream'], registers });
    this.errors = new Counter({ name: 'portfolio_proxy_upstream_errors_total', help: 'Upstream failures: unreachable, time-outs, 5xx/429, wrong content', labelNames: ['upstream'], registers });
    for (const upstream of upstreams) {
      for (const kind of ['manifest', 'blob'] as const) {
        this.hits.labels(upstream, kind).inc(0);
        this.misses.labels(upstream, kind).inc(0);
      }
      this.bytes.labels(upstream).inc(0);
      this.stale.labels(upstream).inc(0);
      this.errors.labels(upstream).inc(0);
    }
  }

  proxyHit(upstream: string, kind: Kind): void {
    this.hits.labels(upstream, kind).inc();
  }
  proxyMiss(upstream: string, kind: Kind): void {
    this.misses.labels(upstream, kind).inc();
  }
  proxyUpstreamBytes(upstream: string, bytes: number): void {
    this.bytes.labels(upstream).inc(bytes);
  }
  proxyStaleServe(upstream: string): void {
    this.stale.labels(upstream).inc();
  }
  proxyUpstreamError(upstream: string): void {
    this.errors.labels(upstream).inc();
  }
}
