/**
 * `serve --workers N`: the primary process. It forks N workers that share one listener, restarts
 * a worker that dies (backing off when they keep dying), forwards SIGHUP and SIGTERM to every
 * worker, merges their metrics for a scrape, and names the one worker that runs the background
 * duties — handing them to another when that one dies.
 *
 * Connections are spread by node:cluster's round-robin: the primary accepts and hands each
 * connection to the next worker. Node 20 has no SO_REUSEPORT for TCP, and the kernel's own
 * spreading of one shared socket (SCHED_NONE) favours whichever process is awake, so a busy
 * worker would get busier. A connection stays on its worker for its life, so a keep-alive
 * client's requests (an upload's PATCHes among them) stay on one process and its caches.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { isMessage, type MetricsJson, type ToPrimary, type ToWorker } from './worker-messages.js';

/** A worker that lived at least this long died of something other than its start-up: restart at once. */
const HEALTHY_AFTER_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;
/** How long the primary waits for a worker's metrics before merging without them. */
const COLLECT_TIMEOUT_MS = 5_000;
/** Past the workers' own drain timeout, the primary kills what is left. */
const STOP_TIMEOUT_MS = 35_000;

/** `auto` is the cores this process may use (cgroup and affinity limits included). */
export function workerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

export interface PrimaryOptions {
  count: number;
  logger: Logger;
}

interface Slot {
  worker: Worker;
  startedAt: number;
  ready: boolean;
}

/** Runs until SIGTERM/SIGINT and every worker has drained; rejects if the first workers cannot start. */
export function runPrimary(options: PrimaryOptions): Promise<void> {
  const { count, logger } = options;
  cluster.schedulingPolicy = cluster.SCHED_RR;
  const slots = new Map<number, Slot>();
  let dutyHolder: number | undefined;
  let everReady = false;
  let stopping = false;
  let failures = 0;
  let failure: Error | undefined;
  let collectSeq = 0;
  const collecting = new Map<number, Map<number, (metrics: MetricsJson | null) => void>>();

  const own = new Registry();
  new Gauge({ name: 'portfolio_workers', help: 'Worker processes serving (serve --workers)', registers: [own], collect() { this.set([...slots.values()].filter((s) => s.ready).length); } });
  const restarts = new Counter({ name: 'portfolio_worker_restarts_total', help: 'Worker processes started again after one died', registers: [own] });

  const post = (worker: Worker, message: ToWorker) => {
    if (!worker.isConnected()) return;
    try {
      worker.send(message);
    } catch {
      // The worker is exiting; its 'exit' handles the rest.
    }
  };

  const assignDuties = () => {
    if (stopping || (dutyHolder !== undefined && slots.has(dutyHolder))) return;
    const next = [...slots.values()].find((s) => s.ready);
    dutyHolder = next?.worker.id;
    if (!next) return;
    logger.info({ worker: next.worker.id, pid: next.worker.process.pid }, 'worker runs the background duties');
    post(next.worker, { portfolio: 'duties' });
  };

  /** Every ready worker's metrics and the primary's own, merged as prom-client's cluster aggregation does. */
  const aggregate = async (): Promise<string> => {
    const id = ++collectSeq;
    const waiting = new Map<number, (metrics: MetricsJson | null) => void>();
    collecting.set(id, waiting);
    const replies = [...slots.values()]
      .filter((s) => s.ready)
      .map(
        (s) =>
          new Promise<MetricsJson | null>((resolve) => {
            const timer = setTimeout(() => resolve(null), COLLECT_TIMEOUT_MS);
            waiting.set(s.worker.id, (metrics) => {
              clearTimeout(timer);
              resolve(metrics);
            });
            post(s.worker, { portfolio: 'collect', id });
          }),
      );
    try {
      const all = (await Promise.all(replies)).filter((m): m is MetricsJson => m !== null);
      all.push(await own.getMetricsAsJSON());
      return await AggregatorRegistry.aggregate(all).metrics();
    } finally {
      collecting.delete(id);
    }
  };

  const onMessage = (worker: Worker, message: ToPrimary) => {
    const slot = slots.get(worker.id);
    switch (message.portfolio) {
      case 'ready':
        if (!slot) return;
        slot.ready = true;
        everReady = true;
        assignDuties();
        return;
      case 'scrape':
        aggregate()
          .then((text) => post(worker, { portfolio: 'scraped', id: message.id, text }))
          .catch((err: unknown) => {
            logger.warn({ err }, 'merging the workers\u2019 metrics failed');
            post(worker, { portfolio: 'scraped', id: message.id, text: '' });
          });
        return;
      case 'collected':
        collecting.get(message.id)?.get(worker.id)?.(message.metrics);
        return;
      case 'gc':
      case 'session':
        for (const s of slots.values()) if (s.worker.id !== worker.id) post(s.worker, message);
        return;
    }
  };

  const fork = () => {
    const worker = cluster.fork();
    slots.set(worker.id, { worker, startedAt: Date.now(), ready: false });
    worker.on('message', (message: unknown) => {
      if (isMessage<ToPrimary>(message)) onMessage(worker, message);
    });
  };

  return new Promise<void>((resolve, reject) => {
    let forceTimer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      clearTimeout(forceTimer);
      process.removeListener('SIGHUP', onHup);
      if (err) reject(err);
      else resolve();
    };

    cluster.on('exit', (worker, code, signal) => {
      const slot = slots.get(worker.id);
      slots.delete(worker.id);
      for (const waiting of collecting.values()) waiting.get(worker.id)?.(null);
      if (stopping) {
        if (slots.size === 0) finish(failure);
        return;
      }
      logger.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'worker died');
      if (!everReady) {
        // Nothing ever served: a setting or the environment is wrong, and restarting will not fix it.
        failure ??= new Error(`a worker exited during start-up (${signal ?? `code ${code}`}); its log says why`);
        stop('start-up failure');
        if (slots.size === 0) finish(failure);
        return;
      }
      if (dutyHolder === worker.id) {
        dutyHolder = undefined;
        assignDuties();
      }
      failures = slot && Date.now() - slot.startedAt >= HEALTHY_AFTER_MS ? 0 : failures + 1;
      const delay = failures === 0 ? 0 : Math.min(MAX_BACKOFF_MS, 250 * 2 ** (failures - 1));
      restarts.inc();
      logger.info({ delayMs: delay }, 'starting a worker in its place');
      setTimeout(() => {
        if (!stopping) fork();
      }, delay);
    });

    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal: why, workers: slots.size }, 'draining the workers');
      for (const s of slots.values()) s.worker.process.kill('SIGTERM');
      forceTimer = setTimeout(() => {
        for (const s of slots.values()) s.worker.process.kill('SIGKILL');
      }, STOP_TIMEOUT_MS);
      forceTimer.unref();
    };
    // Every worker re-reads the configuration itself, as a single process would.
    const onHup = () => {
      for (const s of slots.values()) s.worker.process.kill('SIGHUP');
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', onHup);

    logger.info({ workers: count }, 'starting workers');
    for (let i = 0; i < count; i++) fork();
  });
}
