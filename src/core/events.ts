/**
 * Registry events: what changed, who asked, and where it goes. A backend records an event in the
 * same transaction as the change (so it exists exactly when the change committed) and keeps it
 * until every sink that wants it has taken it; sinks (webhooks, NATS) and the dispatcher that
 * feeds them live outside the core.
 */
import { RepositoryPattern, wildcard } from './patterns.js';

export const EVENT_ACTIONS = ['push', 'delete', 'mount', 'pull'] as const;
export type EventAction = (typeof EVENT_ACTIONS)[number];

/** The request behind a change, as CNCF distribution's notifications describe it. */
export interface EventRequest {
  id: string;
  addr: string;
  host: string;
  method: string;
  useragent: string;
}

/** Who caused a change and through which request; the http layer builds it per request. */
export interface EventOrigin {
  request?: EventRequest;
  /** The authenticated user or token subject; absent for anonymous callers and the CLI. */
  actor?: string;
  /** `scheme://host` the client reached, for the `url` of targets. */
  baseUrl?: string;
}

/** What an event is about: distribution's target (mediaType, digest, size/length, repository, url, tag). */
export interface EventTarget {
  repository: string;
  mediaType?: string;
  digest?: string;
  size?: number;
  length?: number;
  url?: string;
  tag?: string;
  /** For a mount: where the blob came from. */
  fromRepository?: string;
}

/** One event, in the shape of a CNCF distribution notification event. */
export interface RegistryEvent {
  /** Stays the same across delivery attempts: consumers deduplicate on it. */
  id: string;
  /** RFC 3339, when the change committed (to the millisecond). */
  timestamp: string;
  action: EventAction;
  target: EventTarget;
  request: Partial<EventRequest>;
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

/** Which events a sink takes; an empty or absent list lets everything through. */
export interface EventFilter {
  actions?: EventAction[];
  /** Repository patterns (`team-a/**`). */
  repositories?: string[];
  /** Media types of the target, `*` as a wildcard (`application/vnd.oci.image.*`). */
  mediaTypes?: string[];
}

/** A sink's name and filter: what the backend needs to decide, inside the transaction, who gets an event. */
export interface EventRoute {
  sink: string;
  filter: EventFilter;
}

/** Where events are recorded: applied to changes committed from the call on. */
export interface EventRouting {
  routes: EventRoute[];
  /** Record pulls too (a write per manifest GET). */
  pulls: boolean;
  /** The `source` of events this process records. */
  source: { addr: string; instanceID: string };
}

/** Compiled filter: built once per configuration, asked once per event and sink. */
export class EventSelector {
  private readonly actions: Set<EventAction> | null;
  private readonly repositories: RepositoryPattern[] | null;
  private readonly mediaTypes: RegExp[] | null;

  constructor(filter: EventFilter, where = 'event filter') {
    this.actions = filter.actions?.length ? new Set(filter.actions) : null;
    this.repositories = filter.repositories?.length ? filter.repositories.map((p) => new RepositoryPattern(p, where)) : null;
    this.mediaTypes = filter.mediaTypes?.length ? filter.mediaTypes.map(wildcard) : null;
  }

  /** Whether some event of this action can pass (so a backend need not prepare one that none takes). */
  takesAction(action: EventAction): boolean {
    return !this.actions || this.actions.has(action);
  }

  accepts(action: EventAction, target: EventTarget): boolean {
    if (this.actions && !this.actions.has(action)) return false;
    if (this.repositories && !this.repositories.some((p) => p.matches(target.repository))) return false;
    // Deletes carry no media type (as in distribution): a media-type filter lets them through.
    if (this.mediaTypes && target.mediaType !== undefined && !this.mediaTypes.some((m) => m.test(target.mediaType!))) return false;
    return true;
  }
}

/** One sink's queue, as `events list` and the metrics show it. */
export interface SinkBacklog {
  sink: string;
  pending: number;
  failed: number;
  /** When the oldest pending event was recorded (ms since the epoch), or null. */
  oldestPendingAt: number | null;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

/** An event as queued for one sink. */
export interface Delivery {
  sink: string;
  state: DeliveryState;
  attempts: number;
  lastError: string | null;
  nextAttemptAt: number;
  deliveredAt: number | null;
  event: RegistryEvent;
}

/** Events of one repository for one sink, in commit order, claimed for delivery by one process. */
export interface ClaimedBatch {
  sink: string;
  repository: string;
  deliveries: { event: RegistryEvent; attempts: number }[];
}

/**
 * The stored side of events: the queue sinks read from. Claims hold a lease so that any replica
 * may deliver and no two deliver one repository's events at once (which would reorder them).
 */
export interface EventLog {
  /** Who gets which events from now on (at start and on reload). */
  routeEvents(routing: EventRouting): void;
  /** Up to `streams` repositories' oldest due events (at most `batch` each), leased for `leaseMs`. */
  claimEvents(sink: string, options: { streams: number; batch: number; leaseMs: number }): Promise<ClaimedBatch[]>;
  /** Marks events taken by the sink. */
  eventsDelivered(sink: string, ids: string[]): Promise<void>;
  /**
   * Records a failed attempt: each event comes back at `retryAt(attempts)` (attempts counted with
   * this one), or is parked as failed when that returns null.
   */
  eventsFailed(sink: string, ids: string[], error: string, retryAt: (attempts: number) => number | null): Promise<void>;
  /** Extends the lease on claimed queues (by their head events) while their delivery is still in progress. */
  extendClaims(sink: string, headIds: string[], leaseMs: number): Promise<void>;
  /** Gives claimed events back untried (a deliverer stopping): they are claimable again at once. */
  releaseEvents(sink: string, ids: string[]): Promise<void>;
  /** Queued events, oldest first: of these states (default all), of one sink or all. */
  listEvents(options: { states?: DeliveryState[]; sink?: string; limit: number }): Promise<Delivery[]>;
  /** Puts parked events back in the queue (all of them, a sink's, or these ids); returns how many. */
  retryEvents(options: { sink?: string; ids?: string[] }): Promise<number>;
  /** Deletes events every sink took before `before` (ms); returns how many deliveries went. */
  pruneEvents(before: number): Promise<number>;
  eventBacklog(): Promise<SinkBacklog[]>;
  /** Resolves when this process may have recorded new events (a hint: delivery also polls). */
  onEventsRecorded(listener: () => void): void;
}
