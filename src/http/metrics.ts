/**
 * Prometheus metrics (prom-client): what the HTTP layer counts per request, what the storage
 * engine reports through the core StorageObserver, garbage collection passes, cached storage
 * gauges and the Node process. Label values come from fixed sets only: never a path or digest.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SinkBacklog } from '../core/events.js';
import type { GcReport } from '../core/maintenance.js';
import type { StorageObserver, StorageStats } from '../core/observer.js';
import { ADMIN_PREFIX } from './handlers/admin.js';
import { TOKEN_PATH } from './auth/token-endpoint.js';

export const METRICS_PATH = '/metrics';

export interface MetricsOptions {
  /** Blob and upload counts for the storage gauges; queried at most once per `statsMaxAgeMs`. */
  stats?: () => Promise<StorageStats>;
  statsMaxAgeMs?: number;
  /** Event queues per sink, for the event gauges; cached like the storage counts. */
  backlog?: () => Promise<SinkBacklog[]>;
}

type Route = 'base' | 'blobs' | 'manifests' | 'uploads' | 'tags' | 'referrers' | 'catalog' | 'admin' | 'token' | 'health' | 'metrics' | 'other';

/** The route template of a path, from a fixed set. Mirrors router.ts without running its patterns. */
export function routeOf(url: string): Route {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path.startsWith('/v2/')) {
    if (path.length === 4) return 'base';
    if (path === '/v2/_catalog') return 'catalog';
    if (path.includes('/blobs/uploads')) return 'uploads';
    if (path.includes('/blobs/')) return 'blobs';
    if (path.includes('/manifests/')) return 'manifests';
    if (path.endsWith('/tags/list')) return 'tags';
    if (path.includes('/referrers/')) return 'referrers';
    return 'other';
  }
  if (path === '/v2') return 'base';
  if (path.startsWith(ADMIN_PREFIX)) return 'admin';
  if (path === TOKEN_PATH) return 'token';
  if (path === '/healthz' || path === '/readyz') return 'health';
  if (path === METRICS_PATH) return 'metrics';
  return 'other';
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const DEFAULT_STATS_MAX_AGE_MS = 15_000;

/** Socket byte counts already attributed to a request, so each request adds only its own. */
const COUNTED = Symbol('portfolio.metrics.counted');
type CountedSocket = Socket & { [COUNTED]?: { read: number; written: number } };

/**
 * One (route, method, status) combination. prom-client hashes the label values on every call,
 * even through a child, so the request count is a plain number here, added to the counter when
 * it is scraped; only the latency goes through prom-client per request.
 */
interface RequestSeries {
  labels: [string, string, string];
  count: number;
  reported: number;
  duration: { observe(value: number): void };
}

export class Metrics implements StorageObserver {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly duration: Histogram<'route' | 'method'>;
  private readonly received: Counter;
  private readonly sent: Counter;
  private readonly retries: Counter;
  private readonly busyWaits: Counter;
  private readonly gcPasses: Counter<'result'>;
  private readonly gcRemoved: Counter<'kind'>;
  private readonly gcBytes: Counter;
  private readonly gcDuration: Histogram;
  private readonly gcLastSuccess: Gauge;
  /** By "route method status". */
  private readonly series = new Map<string, RequestSeries>();
  /** Bytes counted since the last scrape. */
  private readonly bytes = { received: 0, sent: 0 };
  private readonly eventDeliveries: Counter<'sink'>;
  private readonly eventFailures: Counter<'sink'>;
  /** The configured sinks: their gauges read 0 rather than vanish when their queue is empty. */
  private sinks: string[] = [];

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const series = this.series;
    this.requests = new Counter({
      name: 'portfolio_http_requests_total',
      help: 'HTTP requests answered, by route template, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
      collect(this: Counter<'route' | 'method' | 'status'>) {
        for (const s of series.values()) {
          if (s.count > s.reported) this.labels(...s.labels).inc(s.count - s.reported);
          s.reported = s.count;
        }
      },
    });
    this.duration = new Histogram({
      name: 'portfolio_http_request_duration_seconds',
      help: 'Time from request to the end of the response, by route template and method',
      labelNames: ['route', 'method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    // Byte counts, like request counts, are plain numbers per request and reach prom-client at scrape time.
    const bytes = this.bytes;
    const byteCounter = (name: string, help: string, key: 'received' | 'sent') =>
      new Counter({
        name,
        help,
        registers,
        collect(this: Counter) {
          if (bytes[key] > 0) this.inc(bytes[key]);
          bytes[key] = 0;
        },
      });
    this.received = byteCounter('portfolio_http_received_bytes_total', 'Bytes received from clients (headers and bodies)', 'received');
    this.sent = byteCounter('portfolio_http_sent_bytes_total', 'Bytes sent to clients (headers and bodies)', 'sent');
    this.retries = new Counter({ name: 'portfolio_database_transaction_retries_total', help: 'Transactions run again after a conflict (PostgreSQL serialization failure, deadlock, unique-key race)', registers });
    this.busyWaits = new Counter({
      name: 'portfolio_database_busy_waits_total',
      help: 'Waits of a SQLite statement for the write lock another worker process held (contention between workers)',
      registers,
    });
    this.gcPasses = new Counter({ name: 'portfolio_gc_passes_total', help: 'Background garbage collection passes, by result: ok, skipped (another replica held the lease), failed', labelNames: ['result'], registers });
    this.gcRemoved = new Counter({ name: 'portfolio_gc_removed_total', help: 'Items removed by garbage collection, by kind', labelNames: ['kind'], registers });
    this.gcBytes = new Counter({ name: 'portfolio_gc_removed_bytes_total', help: 'Bytes freed by garbage collection (blobs and orphaned objects)', registers });
    this.gcDuration = new Histogram({ name: 'portfolio_gc_duration_seconds', help: 'Duration of garbage collection passes that ran', buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900], registers });
    // Gauges every worker process reads alike (or only one sets) are merged by max, not summed (see `aggregate`).
    this.gcLastSuccess = new Gauge({ name: 'portfolio_gc_last_success_timestamp_seconds', help: 'Unix time the last garbage collection pass completed (0: none yet)', registers, aggregator: 'max' });
    for (const result of ['ok', 'skipped', 'failed']) this.gcPasses.labels(result).inc(0);
    for (const kind of ['manifests', 'links', 'blobs', 'orphans', 'uploads']) this.gcRemoved.labels(kind).inc(0);
    if (options.stats) {
      const cached = atMostEvery(options.stats, options.statsMaxAgeMs ?? DEFAULT_STATS_MAX_AGE_MS);
      const stat = (name: string, help: string, pick: (s: StorageStats) => number) =>
        new Gauge({
          name,
          help,
          registers,
          aggregator: 'max',
          collect: async function (this: Gauge) {
            const value = await cached();
            if (value) this.set(pick(value));
          },
        });
      stat('portfolio_blobs_stored', 'Distinct blobs stored (refreshed at most every few seconds)', (s) => s.blobs);
      stat('portfolio_blob_bytes_stored', 'Bytes of the blobs stored, each blob counted once (refreshed at most every few seconds)', (s) => s.bytes);
      stat('portfolio_upload_sessions', 'Upload sessions in progress (refreshed at most every few seconds)', (s) => s.uploads);
    }
    this.eventDeliveries = new Counter({ name: 'portfolio_event_deliveries_total', help: 'Events a sink took, by sink', labelNames: ['sink'], registers });
    this.eventFailures = new Counter({ name: 'portfolio_event_delivery_failures_total', help: 'Failed attempts to deliver an event, by sink', labelNames: ['sink'], registers });
    if (options.backlog) {
      const cached = atMostEvery(options.backlog, options.statsMaxAgeMs ?? DEFAULT_STATS_MAX_AGE_MS);
      const sinks = () => this.sinks;
      const backlog = (name: string, help: string, pick: (b: SinkBacklog, now: number) => number) =>
        new Gauge({
          name,
          help,
          labelNames: ['sink'],
          registers,
          aggregator: 'max',
          collect: async function (this: Gauge<'sink'>) {
            const value = await cached();
            if (!value) return;
            this.reset();
            const now = Date.now();
            for (const sink of sinks()) this.labels(sink).set(0);
            for (const b of value) this.labels(b.sink).set(pick(b, now));
          },
        });
      backlog('portfolio_events_pending', 'Events waiting to be delivered, by sink (refreshed at most every few seconds)', (b) => b.pending);
      backlog('portfolio_events_failed', 'Events parked after their last attempt failed, by sink (`portfolio events list --failed`)', (b) => b.failed);
      backlog('portfolio_events_oldest_pending_age_seconds', 'Age of the oldest event waiting to be delivered, by sink (0: none)', (b, now) =>
        b.oldestPendingAt === null ? 0 : Math.max(0, (now - b.oldestPendingAt) / 1000),
      );
    }
  }

  /** The sinks configured now (at start and on reload). */
  setSinks(names: string[]): void {
    this.sinks = names;
    for (const sink of names) {
      this.eventDeliveries.labels(sink).inc(0);
      this.eventFailures.labels(sink).inc(0);
    }
  }

  eventsDelivered(sink: string, count: number): void {
    this.eventDeliveries.labels(sink).inc(count);
  }

  eventsFailed(sink: string, count: number): void {
    this.eventFailures.labels(sink).inc(count);
  }

  /** Records one finished request. Called once per response, on its 'close'. */
  observeRequest(req: IncomingMessage, res: ServerResponse, started: bigint): void {
    const route = routeOf(req.url ?? '/');
    const method = METHODS.has(req.method ?? '') ? req.method! : 'other';
    const key = `${route} ${method} ${res.statusCode}`;
    let series = this.series.get(key);
    if (!series) {
      series = { labels: [route, method, String(res.statusCode)], count: 0, reported: 0, duration: this.duration.labels(route, method) };
      this.series.set(key, series);
    }
    series.count++;
    series.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    const socket = req.socket as CountedSocket | null;
    if (socket) {
      const counted = (socket[COUNTED] ??= { read: 0, written: 0 });
      const read = socket.bytesRead;
      const written = socket.bytesWritten;
      if (read > counted.read) this.bytes.received += read - counted.read;
      if (written > counted.written) this.bytes.sent += written - counted.written;
      counted.read = read;
      counted.written = written;
    }
  }

  transactionRetried(): void {
    this.retries.inc();
  }

  busyWaited(): void {
    this.busyWaits.inc();
  }

  /** Records a background collection pass: its report, or null when it failed. */
  gcPass(report: GcReport | null): void {
    if (!report) return void this.gcPasses.labels('failed').inc();
    if (!report.ran) return void this.gcPasses.labels('skipped').inc();
    this.gcPasses.labels('ok').inc();
    this.gcRemoved.labels('manifests').inc(report.manifestsDeleted);
    this.gcRemoved.labels('links').inc(report.linksDeleted);
    this.gcRemoved.labels('blobs').inc(report.blobsDeleted);
    this.gcRemoved.labels('orphans').inc(report.orphanObjectsDeleted);
    this.gcRemoved.labels('uploads').inc(report.uploadsExpired);
    this.gcBytes.inc(report.bytesFreed + report.orphanBytesFreed);
    this.gcDuration.observe(report.durationMs / 1000);
    this.gcLastSuccess.set(Date.now() / 1000);
  }

  /**
   * With several worker processes, the exposition of all of them merged (by the primary); a
   * scrape answered by any worker then reads the same totals.
   */
  aggregate?: () => Promise<string>;

  /** Answers a scrape with the text exposition format. */
  async serve(res: ServerResponse): Promise<void> {
    const body = Buffer.from(this.aggregate ? await this.aggregate() : await this.registry.metrics());
    res.writeHead(200, { 'Content-Type': this.registry.contentType, 'Content-Length': String(body.length) });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }
}

/** `query`, run at most once per `maxAgeMs` however often Prometheus scrapes; null when it failed. */
function atMostEvery<T>(query: () => Promise<T>, maxAgeMs: number): () => Promise<T | null> {
  let cache: { at: number; value: Promise<T | null> } | undefined;
  return () => {
    const now = Date.now();
    if (!cache || now - cache.at >= maxAgeMs) cache = { at: now, value: query().catch(() => null) };
    return cache.value;
  };
}

/** A listener of its own that serves only the metrics (`--metrics-addr`), so they can stay private. */
export function createMetricsServer(metrics: Metrics): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== METRICS_PATH || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: scrape /metrics\n');
      return;
    }
    metrics.serve(res).catch(() => res.destroy());
  });
}
