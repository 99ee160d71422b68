/**
 * Moves events from the outbox to the sinks. Each sink has its own loop, so a sink that fails or
 * hangs backs off alone: the others, and the pushes that record events, never wait for it. Every
 * replica runs the loops; the outbox's leases keep them from sending one repository's events at
 * the same time, so each sink sees a repository's events in commit order (at least once).
 */
import type { ClaimedBatch, EventLog } from '../../core/events.js';
import { DeliveryError, type EventSink } from './sink.js';

export interface Backoff {
  /** Wait after the first failure; each further failure of the same event doubles it, up to `maxMs`. */
  initialMs: number;
  maxMs: number;
  /** Attempts before an event is parked as failed (`portfolio events list --failed`). */
  maxAttempts: number;
}

/** A sink with its retry rules. */
export interface SinkRunner {
  sink: EventSink;
  backoff: Backoff;
}

export interface DispatcherOptions {
  /** How often each loop looks for events when nothing woke it (other replicas' events, retries coming due). */
  pollMs: number;
  /** Delivered events older than this are deleted. */
  retentionMs: number;
  /** Repositories claimed at once per sink: as many requests in flight to it. */
  streams?: number;
}

/** Told what deliveries do (for metrics). Must not throw. */
export interface DeliveryObserver {
  eventsDelivered(sink: string, count: number): void;
  eventsFailed(sink: string, count: number): void;
}

/** What goes wrong in the loop itself (the database unreachable): logged, then the loop goes on. */
export type DispatchErrorHandler = (sink: string, err: unknown) => void;

const PRUNE_EVERY_MS = 10 * 60_000;

export class Dispatcher {
  private loops: SinkLoop[] = [];
  private pruneTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly log: EventLog,
    private readonly options: DispatcherOptions,
    private readonly observer: DeliveryObserver,
    private readonly onError: DispatchErrorHandler,
  ) {
    log.onEventsRecorded(() => {
      for (const loop of this.loops) loop.wake();
    });
  }

  /** Starts (or, on reload, replaces) the sinks' loops. Events of a sink no longer configured wait in its queue. */
  async run(runners: SinkRunner[]): Promise<void> {
    const previous = this.loops;
    this.loops = runners.map((r) => new SinkLoop(this.log, r, this.options, this.observer, this.onError));
    await Promise.all(previous.map((l) => l.stop()));
    if (this.stopped) return;
    for (const loop of this.loops) loop.start();
    if (!this.pruneTimer) {
      const prune = () => {
        this.log.pruneEvents(Date.now() - this.options.retentionMs).catch((err: unknown) => this.onError('prune', err));
      };
      prune();
      this.pruneTimer = setInterval(prune, Math.min(PRUNE_EVERY_MS, Math.max(1000, this.options.retentionMs / 10)));
      this.pruneTimer.unref();
    }
  }

  /** Stops claiming; resolves when the sends in progress ended (their outcome is recorded). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pruneTimer);
    await Promise.all(this.loops.map((l) => l.stop()));
  }
}

/** Claims are leased this long and renewed every third of it while their delivery runs. */
const LEASE_MS = 30_000;
/**
 * After a wake-up, the loop waits this long before it claims, so that the events of a burst of
 * pushes go out in a few requests instead of one each (and the claims take the database's write
 * lock a few times instead of once per push).
 */
const GATHER_MS = 100;

class SinkLoop {
  private running: Promise<void> | undefined;
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  /** Aborts the sends in progress when the loop stops: a hanging sink must not hold up shutdown. */
  private readonly abort = new AbortController();

  constructor(
    private readonly log: EventLog,
    private readonly runner: SinkRunner,
    private readonly options: DispatcherOptions,
    private readonly observer: DeliveryObserver,
    private readonly onError: DispatchErrorHandler,
  ) {}

  start(): void {
    this.running = this.loop();
  }

  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp?.();
    this.abort.abort();
    await this.running;
    await this.runner.sink.close();
  }

  private async loop(): Promise<void> {
    const { sink } = this.runner;
    while (!this.stopped) {
      this.woken = false;
      let claimed: ClaimedBatch[] = [];
      try {
        claimed = await this.log.claimEvents(sink.name, { streams: sink.streams, batch: sink.batch, leaseMs: LEASE_MS });
      } catch (err) {
        this.onError(sink.name, err);
      }
      if (claimed.length > 0) {
        await this.deliverAll(claimed);
        // A full round means a backlog: go on at once. Otherwise let the next events gather.
        const events = claimed.reduce((n, b) => n + b.deliveries.length, 0);
        if (events < sink.batch && !this.stopped) await this.sleep(GATHER_MS, false);
        continue;
      }
      if (!this.woken) await this.sleep(this.options.pollMs);
      if (this.woken && !this.stopped) await this.sleep(GATHER_MS, false);
    }
  }

  private sleep(ms: number, wakeable = true): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.wakeUp === wake) self.wakeUp = undefined;
        resolve();
      }
      // Only stop() cuts a gathering pause short; a wake-up just marks that there is work.
      const wake = () => (wakeable || this.stopped ? done() : undefined);
      this.wakeUp = wake;
    });
  }

  /** Sends claimed queues in requests of at most `sink.batch` events, whole queues each, renewing the leases meanwhile. */
  private async deliverAll(claimed: ClaimedBatch[]): Promise<void> {
    const { sink } = this.runner;
    const heads = claimed.map((b) => b.deliveries[0]!.event.id);
    const renew = setInterval(() => {
      this.log.extendClaims(sink.name, heads, LEASE_MS).catch((err: unknown) => this.onError(sink.name, err));
    }, LEASE_MS / 3);
    try {
      let chunk: ClaimedBatch[] = [];
      let size = 0;
      for (const batch of claimed) {
        if (size > 0 && size + batch.deliveries.length > sink.batch) {
          await this.deliver(chunk);
          chunk = [];
          size = 0;
        }
        chunk.push(batch);
        size += batch.deliveries.length;
      }
      if (chunk.length) await this.deliver(chunk);
    } finally {
      clearInterval(renew);
    }
  }

  private async deliver(batches: ClaimedBatch[]): Promise<void> {
    const { sink, backoff } = this.runner;
    const events = batches.flatMap((b) => b.deliveries.map((d) => d.event));
    const ids = events.map((e) => e.id);
    let taken = ids.length;
    let failure: string | undefined;
    try {
      await sink.send(events, this.abort.signal);
    } catch (err) {
      taken = err instanceof DeliveryError ? Math.min(err.delivered, ids.length) : 0;
      failure = (err as Error).message;
    }
    try {
      if (this.abort.signal.aborted && failure !== undefined) {
        // Stopped, not failed: what was not taken goes back to the queue for the next deliverer.
        if (taken > 0) await this.log.eventsDelivered(sink.name, ids.slice(0, taken));
        await this.log.releaseEvents(sink.name, ids.slice(taken));
        return;
      }
      if (taken > 0) {
        await this.log.eventsDelivered(sink.name, ids.slice(0, taken));
        this.observer.eventsDelivered(sink.name, taken);
      }
      if (failure !== undefined) {
        const rest = ids.slice(taken);
        await this.log.eventsFailed(sink.name, rest, failure, (attempts) => retryAt(backoff, attempts));
        this.observer.eventsFailed(sink.name, rest.length);
      }
    } catch (err) {
      // The lease runs out and the events go again: at least once.
      this.onError(sink.name, err);
    }
  }
}

/** When an event that failed `attempts` times goes again (null: park it), with jitter so replicas spread out. */
export function retryAt(backoff: Backoff, attempts: number, now = Date.now()): number | null {
  if (attempts >= backoff.maxAttempts) return null;
  const wait = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (attempts - 1));
  return now + Math.round(wait * (0.75 + Math.random() * 0.5));
}
