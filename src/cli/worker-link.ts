/** A worker process's side of `serve --workers N`: duties, merged metrics and GC status from the primary. */
import type { Registry } from 'prom-client';
import type { GcStatus } from '../http/api/api.js';
import type { Sessions } from '../http/api/sessions.js';
import { isMessage, type ToPrimary, type ToWorker } from './worker-messages.js';

/** A scrape that the primary does not answer in this time falls back to this process's own figures. */
const SCRAPE_TIMEOUT_MS = 10_000;

export class WorkerLink {
  private seq = 0;
  private readonly scrapes = new Map<number, (text: string) => void>();
  private onDuties: (() => void) | undefined;
  private dutiesGiven = false;
  private onGc: ((status: GcStatus) => void) | undefined;
  private sessions: Sessions | undefined;

  constructor(private readonly registry: Registry) {
    process.on('message', (message: unknown) => {
      if (isMessage<ToWorker>(message)) this.receive(message);
    });
  }

  /** Calls `start` once this worker is the one that runs the background duties (possibly never). */
  whenDuties(start: () => void): void {
    this.onDuties = start;
    if (this.dutiesGiven) start();
  }

  /** Another worker's collection pass, for this worker's web interface. */
  onGcStatus(apply: (status: GcStatus) => void): void {
    this.onGc = apply;
  }

  /** Web-interface logins made on any worker hold on every worker. */
  shareSessions(sessions: Sessions): void {
    this.sessions = sessions;
    sessions.onChange = (change) => send({ portfolio: 'session', change });
  }

  ready(): void {
    send({ portfolio: 'ready' });
  }

  gcDone(status: GcStatus): void {
    send({ portfolio: 'gc', status });
  }

  /** Every process's metrics merged by the primary; this process's alone if it cannot answer. */
  scrape(): Promise<string> {
    const id = ++this.seq;
    return new Promise<string>((resolve) => {
      const timer = setTimeout(() => {
        this.scrapes.delete(id);
        resolve(this.registry.metrics());
      }, SCRAPE_TIMEOUT_MS);
      this.scrapes.set(id, (text) => {
        clearTimeout(timer);
        resolve(text);
      });
      if (!send({ portfolio: 'scrape', id })) this.scrapes.get(id)?.('');
    }).then((text) => text || this.registry.metrics());
  }

  private receive(message: ToWorker): void {
    switch (message.portfolio) {
      case 'duties':
        if (this.dutiesGiven) return;
        this.dutiesGiven = true;
        this.onDuties?.();
        return;
      case 'collect':
        this.registry
          .getMetricsAsJSON()
          .then((metrics) => send({ portfolio: 'collected', id: message.id, metrics }))
          .catch(() => send({ portfolio: 'collected', id: message.id, metrics: [] }));
        return;
      case 'scraped': {
        const done = this.scrapes.get(message.id);
        this.scrapes.delete(message.id);
        done?.(message.text);
        return;
      }
      case 'gc':
        this.onGc?.(message.status);
        return;
      case 'session':
        this.sessions?.apply(message.change);
        return;
    }
  }
}

/** False when the channel to the primary is gone (it is exiting). */
function send(message: ToPrimary): boolean {
  if (!process.send || !process.connected) return false;
  try {
    return process.send(message);
  } catch {
    return false;
  }
}
