/** What the primary and its worker processes say to each other over the cluster's IPC channel. */
import type { GcStatus } from '../http/api/api.js';
import type { SessionChange } from '../http/api/sessions.js';

/** prom-client's `getMetricsAsJSON()` of one process, passed through as is. */
export type MetricsJson = object[];

export type ToPrimary =
  /** The worker listens and serves. */
  | { portfolio: 'ready' }
  /** A scrape reached this worker: asks for every process's metrics merged. */
  | { portfolio: 'scrape'; id: number }
  /** This worker's metrics, for the collection `id`. */
  | { portfolio: 'collected'; id: number; metrics: MetricsJson }
  /** The designated worker finished a collection pass: every worker shows it (web interface). */
  | { portfolio: 'gc'; status: GcStatus }
  /** A web-interface login or logout: every worker knows the session, whichever gets the browser's next connection. */
  | { portfolio: 'session'; change: SessionChange };

export type ToWorker =
  /** Run the background duties (GC, upload expiry, cache prune, retention) from now on. */
  | { portfolio: 'duties' }
  /** Send this process's metrics for the collection `id`. */
  | { portfolio: 'collect'; id: number }
  /** The merged exposition for the scrape `id`. */
  | { portfolio: 'scraped'; id: number; text: string }
  | { portfolio: 'gc'; status: GcStatus }
  | { portfolio: 'session'; change: SessionChange };

export function isMessage<T extends { portfolio: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && typeof (value as { portfolio?: unknown }).portfolio === 'string';
}
