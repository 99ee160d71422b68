/**
 * `portfolio serve`: the registry process, with a clean drain on SIGTERM/SIGINT. With
 * `--workers N` (N > 1) this process becomes the primary of N workers (workers.ts), each of which
 * runs `serve` below; one of them runs the background duties.
 */
import cluster from 'node:cluster';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { AccessControl } from '../http/auth/access.js';
import type { Authorizer } from '../http/auth/authorizer.js';
import { Health } from '../http/health.js';
import type { LimitOptions } from '../http/limits.js';
import { createMetricsServer, Metrics } from '../http/metrics.js';
import { ProxyMetrics } from '../http/proxy-metrics.js';
import { createRegistryServer } from '../http/server.js';
import { ProxyRegistry } from '../proxy/registry.js';
import { Dispatcher } from '../backends/events/dispatcher.js';
import { serveSecurity } from './auth.js';
import type { LoadedConfig } from './config.js';
import { openEngine, type EngineOptions } from './engine.js';
import { eventRouting, sinkRunners } from './event-sinks.js';
import { engineFrom } from './flags.js';
import { limitsFrom } from './limits.js';
import { createLogger, defaultLogFormat } from './log.js';
import { watchReloads } from './reload.js';
import { applyConfigPolicies, runScheduledRetention } from './policies.js';
import type { Config } from './settings.js';
import { uiFrom } from './ui.js';
import type { GcStatus } from '../http/api/api.js';
import { VERSION } from './version.js';
import { WorkerLink } from './worker-link.js';
import { runPrimary, workerCount } from './workers.js';

export interface ServeOptions extends EngineOptions {
  addr: string;
  uploadSweepIntervalMs: number;
  gc: { intervalMs: number; graceMs: number; deleteUntaggedAfterMs?: number };
  tlsCert?: string;
  tlsKey?: string;
  /** Serve /metrics on this HOST:PORT instead of the main listener. */
  metricsAddr?: string;
  /** Connection caps, timeouts and per-client limits. */
  limits: LimitOptions;
  logger: Logger;
  config: Config;
}

/** The options of `serve` from its configuration. */
export function serveOptionsFrom(config: Config): ServeOptions {
  return {
    ...engineFrom(config, true),
    addr: config.http.addr,
    uploadSweepIntervalMs: config.uploads.sweep_interval,
    gc: { intervalMs: config.gc.interval, graceMs: config.gc.grace, deleteUntaggedAfterMs: config.gc.delete_untagged },
    tlsCert: config.http.tls.cert,
    tlsKey: config.http.tls.key,
    metricsAddr: config.metrics.addr,
    limits: limitsFrom(config),
    logger: createLogger(config.log.level, config.log.format ?? defaultLogFormat()),
    config,
  };
}

/** Runs the registry; `load` builds the configuration, at start and again on SIGHUP. */
export async function serveConfigured(load: () => LoadedConfig): Promise<void> {
  const options = serveOptionsFrom(load().config);
  const count = workerCount(options.config.http.workers);
  if (cluster.isWorker) {
    // Workers run what every worker shares; the primary already migrated the schema and applied the file's policies.
    const logger = options.logger.child({ worker: cluster.worker?.id });
    return serve({ ...options, logger, migrate: false }, load, { applyPolicies: false });
  }
  if (count <= 1) return serve(options, load);
  await prepareShared(options);
  await runPrimary({ count, logger: options.logger });
  options.logger.info('stopped');
  options.logger.flush?.();
}

/**
 * What the workers must not each do at once before serving: migrate the schema, generate the
 * token signing key, apply the file's policies. Bad settings fail here, once.
 */
async function prepareShared(options: ServeOptions): Promise<void> {
  parseAddr(options.addr);
  await serveSecurity(options.config, options.logger);
  const engine = await openEngine(options);
  try {
    await applyConfigPolicies(engine.registry.policies, options.config, options.logger);
  } finally {
    await engine.registry.close();
  }
}

interface ServeRole {
  /** Apply the file's policies at start and on reload (one process of several does). */
  applyPolicies: boolean;
}

const DRAIN_TIMEOUT_MS = 30_000;
const ORPHAN_SCAN_INTERVAL_MS = 10 * 60_000;

export async function serve(options: ServeOptions, reload?: () => LoadedConfig, role: ServeRole = { applyPolicies: true }): Promise<void> {
  const { host, port } = parseAddr(options.addr);
  const tls = options.tlsCert && options.tlsKey ? { cert: await readFile(options.tlsCert), key: await readFile(options.tlsKey) } : undefined;
  if (Boolean(options.tlsCert) !== Boolean(options.tlsKey)) throw new Error('--tls-cert and --tls-key go together');
  const metricsAt = options.metricsAddr ? parseAddr(options.metricsAddr, '--metrics-addr') : undefined;
  const security = await serveSecurity(options.config, options.logger);
  // The engine reports retries to the metrics; the metrics read storage counts from the engine
  // (only on a scrape, once both exist).
  const metrics = new Metrics({ stats: () => engine.registry.stats(), backlog: () => engine.registry.eventBacklog() });
  const engine = await openEngine({ ...options, observer: metrics });
  const logger = options.logger;
  // In a worker: duties when the primary names this one, metrics merged across the workers.
  const link = cluster.isWorker ? new WorkerLink(metrics.registry) : undefined;
  if (link) metrics.aggregate = () => link.scrape();
  // Events recorded by any replica go out from every replica that runs serve (see dispatcher.ts).
  const dispatcher = new Dispatcher(
    engine.registry,
    { pollMs: options.config.events.poll_interval, retentionMs: options.config.events.retention },
    metrics,
    (sink, err) => logger.warn({ sink, err }, 'event delivery loop failed; retrying'),
  );
  const startSinks = async (config: Config) => {
    const runners = sinkRunners(config);
    metrics.setSinks(runners.map((r) => r.sink.name));
    await dispatcher.run(runners);
  };
  await startSinks(options.config);
  if (role.applyPolicies) await applyConfigPolicies(engine.registry.policies, options.config, logger);
  // The last background collection pass, for the web interface's usage page.
  let lastGc: GcStatus | null = null;
  link?.onGcStatus((status) => (lastGc = status));
  const health = new Health(() => engine.registry.readiness());
  // Repositories under an upstream's prefix are served through the pull-through cache (docs/proxy.md).
  const upstreams = options.config.proxy ?? [];
  const proxy = upstreams.length
    ? new ProxyRegistry(engine.registry, upstreams, { logger, observer: new ProxyMetrics(metrics.registry, upstreams.map((u) => u.prefix)) })
    : undefined;
  const ui = uiFrom(options.config, engine.registry, logger, () => lastGc);
  if (link && ui.api) link.shareSessions(ui.api.sessions);
  const server = createRegistryServer(proxy ?? engine.registry, {
    logger,
    tls,
    maintenance: engine.registry,
    policies: engine.registry.policies,
    chunkMinLength: engine.objects.minChunkBytes,
    limits: options.limits,
    health,
    metrics,
    serveMetrics: !metricsAt,
    ...ui,
    ...(proxy ? { mirror: (ns: string) => proxy.mirrorPrefix(ns) } : {}),
    ...security,
  });
  const metricsServer = metricsAt ? createMetricsServer(metrics) : undefined;
  if (metricsServer && metricsAt) await listen(metricsServer, metricsAt.port, metricsAt.host);
  await listen(server, port, host);
  // Requests in progress: draining closes the listener once they are done.
  let inFlight = 0;
  let whenIdle: (() => void) | undefined;
  server.on('request', (_req, res) => {
    inFlight++;
    res.once('close', () => {
      if (--inFlight === 0) whenIdle?.();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  // The one record a newcomer reads: where to push, where the data goes, who may do what.
  logger.info(
    {
      url: `${tls ? 'https' : 'http'}://${shownHost}:${address.port}`,
      ...(metricsServer ? { metrics: `http://${showAddress(metricsServer.address() as AddressInfo)}/metrics` } : {}),
      version: VERSION, ...(link ? { pid: process.pid } : {}), ...engine.describe, auth: describeAuth(security.authorizer),
      ...(upstreams.length ? { proxy: upstreams.map((u) => `${u.prefix}=${u.url}`) } : {}) },
    'listening',
  );

  let sweep: NodeJS.Timeout | undefined;
  const startSweep = () => {
    sweep = setInterval(() => {
      engine.registry
        .expireUploads()
        .then((n) => n && logger.info({ expired: n }, 'expired upload sessions'))
        .catch((err: unknown) => logger.error({ err }, 'upload expiry failed'));
    }, options.uploadSweepIntervalMs);
    sweep.unref();
  };

  // Background collection: one pass at a time, the next one an interval after the last ends.
  let gcTimer: NodeJS.Timeout | undefined;
  let gcRunning: Promise<void> = Promise.resolve();
  let lastOrphanScan = 0;
  const collect = () => {
    // Orphans only count once they are a minute old at least: listing the store every pass is waste.
    const skipOrphanScan = Date.now() - lastOrphanScan < ORPHAN_SCAN_INTERVAL_MS;
    if (!skipOrphanScan) lastOrphanScan = Date.now();
    gcRunning = pruneCache()
      .then(() => runScheduledRetention(engine.registry, logger))
      .then(() => engine.registry.collectGarbage({ ...options.gc, skipOrphanScan }))
      .then((report) => {
        metrics.gcPass(report);
        logger.debug({ ran: report.ran, durationMs: report.durationMs }, 'collection pass');
        if (report.ran) {
          lastGc = { at: Date.now(), report };
          link?.gcDone(lastGc);
        }
        const removed = report.manifestsDeleted + report.linksDeleted + report.blobsDeleted + report.orphanObjectsDeleted + report.uploadsExpired;
        if (report.ran && removed > 0) logger.info({ ...report }, 'garbage collected');
      })
      .catch((err: unknown) => {
        metrics.gcPass(null);
        lastGc = { at: Date.now(), error: (err as Error).message };
        link?.gcDone(lastGc);
        logger.error({ err }, 'garbage collection failed');
      })
      .finally(() => {
        if (!stopping) gcTimer = setTimeout(collect, options.gc.intervalMs);
      });
  };
  // With a cache prune schedule, cached manifests nobody pulled go first, so the same pass reclaims what they alone used.
  const pruneAfter = options.config.cache.prune_unused_for;
  const pruneCache = async () => {
    if (!proxy || pruneAfter === undefined) return;
    try {
      const report = await engine.registry.pruneCache({ prefixes: upstreams.map((u) => u.prefix), before: Date.now() - pruneAfter });
      if (report.manifestsDeleted > 0) logger.info({ ...report }, 'cache pruned');
    } catch (err) {
      logger.error({ err }, 'cache prune failed');
    }
  };
  // Background duties run in one process: this one alone, or the worker the primary names.
  let stopping = false;
  let hasDuties = false;
  const startDuties = () => {
    if (stopping || hasDuties) return;
    hasDuties = true;
    startSweep();
    if (options.gc.intervalMs > 0) gcTimer = setTimeout(collect, options.gc.intervalMs);
  };
  if (link) link.whenDuties(startDuties);
  else startDuties();
  link?.ready();

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, inFlight }, 'draining');
    // Readiness fails at once, and the listener stays open while requests are in flight, so a
    // load balancer sees the 503 and stops sending before connections are refused.
    health.draining = true;
    clearInterval(sweep);
    clearTimeout(gcTimer);
    const force = setTimeout(() => {
      whenIdle?.();
      server.closeAllConnections();
    }, DRAIN_TIMEOUT_MS);
    force.unref();
    const closeListener = () => {
      whenIdle = undefined;
      server.close(onClosed);
      server.closeIdleConnections();
    };
    const onClosed = () => {
      metricsServer?.close();
      Promise.all([gcRunning, dispatcher.stop(), proxy?.close()])
        .then(() => engine.registry.close())
        .then(() => {
          logger.info('stopped');
          logger.flush?.();
          process.exitCode = 0;
          // The channel to the primary would keep a worker alive.
          if (link) process.exit(0);
        })
        .catch((err: unknown) => {
          logger.error({ err }, 'close failed');
          process.exitCode = 1;
          if (link) process.exit(1);
        });
    };
    if (inFlight === 0) closeListener();
    else whenIdle = closeListener;
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // A primary that is gone cannot restart or stop this worker: drain and go.
  if (link) process.once('disconnect', () => stop('primary gone'));
  if (reload) {
    const applyEvents = async (config: Config) => {
      engine.registry.routeEvents(eventRouting(config));
      await startSinks(config);
    };
    // Policies are rows every worker reads: one process (the one with the duties) writes them on reload.
    const applyPolicies = async (config: Config) => {
      if (hasDuties) await applyConfigPolicies(engine.registry.policies, config, logger);
    };
    watchReloads({ running: options.config, load: reload, logger, authorizer: security.authorizer, applyEvents, applyPolicies });
  }
}

function describeAuth(authorizer: Authorizer | undefined): string {
  if (!authorizer) return 'off: anyone may pull, push and delete';
  if (authorizer instanceof AccessControl && authorizer.options.mode === 'token') return 'on: token auth, tokens from /auth/token';
  return 'on: Basic auth';
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

function showAddress(address: AddressInfo): string {
  return `${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}

export function parseAddr(addr: string, flag = '--addr'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  if (!m) throw new Error(`invalid ${flag} ${JSON.stringify(addr)}: use HOST:PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in ${flag} ${addr}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
