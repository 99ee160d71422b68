/**
 * The event outbox. A store records an event inside the transaction of its change, so the event
 * exists exactly when the change committed; one delivery row per sink that wants it is the
 * sink's queue. Events of one repository carry a sequence number taken from a row that the
 * recording transaction updates last: on PostgreSQL that row lock makes two changes of one
 * repository number their events in commit order (and, being the last lock taken, cannot deadlock).
 *
 * Delivery keeps that order: a deliverer claims a repository's queue by leasing its oldest pending
 * event (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas claim different queues without
 * waiting), sends it with the events after it, and only then does the next one become claimable.
 */
import { randomUUID } from 'node:crypto';
import type {
  ClaimedBatch,
  Delivery,
  DeliveryState,
  EventAction,
  EventOrigin,
  EventRouting,
  EventTarget,
  RegistryEvent,
  SinkBacklog,
} from '../../core/events.js';
import { EventSelector } from '../../core/events.js';
import type { Database, Executor } from './database.js';
import { inSlices, slices } from './batches.js';
import { prepare } from './prepared.js';

const STATE = { pending: 0, delivered: 1, failed: 2 } as const;
const STATE_NAME: Record<number, DeliveryState> = { 0: 'pending', 1: 'delivered', 2: 'failed' };

/** An event a store wants recorded: what happened; who asked comes from the store's origin. */
export interface EventDraft {
  action: EventAction;
  target: EventTarget;
  /** Which API path the target's `url` points at. */
  kind?: 'manifests' | 'blobs';
}

export class Outbox {
  private routing: { selectors: { sink: string; selector: EventSelector }[]; pulls: boolean; source: EventRouting['source'] } = {
    selectors: [],
    pulls: false,
    source: { addr: '', instanceID: '' },
  };
  private readonly listeners: (() => void)[] = [];

  constructor(private readonly database: Database) {}

  route(routing: EventRouting): void {
    this.routing = {
      selectors: routing.routes.map((r) => ({ sink: r.sink, selector: new EventSelector(r.filter, `events sink ${r.sink}`) })),
      pulls: routing.pulls,
      source: routing.source,
    };
  }

  /** Whether pulls are recorded at all, so a GET does not open a write transaction that records nothing. */
  get recordsPulls(): boolean {
    return this.routing.pulls && this.routing.selectors.some((s) => s.selector.takesAction('pull'));
  }

  onRecorded(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Tells deliverers in this process to look again; call after the recording transaction committed. */
  recorded(): void {
    for (const listener of this.listeners) listener();
  }

  /**
   * Records `drafts` in the caller's transaction; call it after the change's other writes (it
   * takes the repository's sequence row last). Returns whether anything was recorded.
   */
  async record(trx: Executor, repository: string, origin: EventOrigin | undefined, drafts: EventDraft[]): Promise<boolean> {
    const { selectors, source } = this.routing;
    if (selectors.length === 0) return false;
    const wanted = drafts
      .map((draft) => ({ draft, sinks: selectors.filter((s) => s.selector.accepts(draft.action, draft.target)).map((s) => s.sink) }))
      .filter((w) => w.sinks.length > 0);
    if (wanted.length === 0) return false;
    const dialect = this.database.dialect;
    const last = (await NEXT_SEQ.first(trx, dialect, repository, wanted.length))!.seq;
    let seq = last - wanted.length;
    const now = Date.now();
    const timestamp = new Date(now).toISOString();
    for (const { draft, sinks } of wanted) {
      seq++;
      const event: RegistryEvent = {
        id: randomUUID(),
        timestamp,
        action: draft.action,
        target: withUrl(draft, origin),
        request: origin?.request ?? {},
        actor: origin?.actor ? { name: origin.actor } : {},
        source,
      };
      const payload = JSON.stringify(event);
      for (const sink of sinks) await INSERT_DELIVERY.execute(trx, dialect, event.id, sink, repository, seq, payload, now);
    }
    return true;
  }

  async claim(sink: string, options: { streams: number; batch: number; leaseMs: number }): Promise<ClaimedBatch[]> {
    const db = this.database;
    const dialect = db.dialect;
    return db.tx(async (trx) => {
      const now = Date.now();
      const heads = (await HEADS.execute(trx, dialect, sink, now, options.streams)).rows;
      const batches: ClaimedBatch[] = [];
      for (const head of heads) {
        await CLAIM.execute(trx, dialect, now + options.leaseMs, sink, head.event_id);
        // The events after a head are nobody else's: only a queue's head can be claimed.
        const rows = (await QUEUE.execute(trx, dialect, sink, head.repository, options.batch)).rows;
        batches.push({
          sink,
          repository: head.repository,
          deliveries: rows.map((r) => ({ event: JSON.parse(r.payload) as RegistryEvent, attempts: r.attempts })),
        });
      }
      return batches;
    });
  }

  async delivered(sink: string, ids: string[]): Promise<void> {
    const dialect = this.database.dialect;
    const now = Date.now();
    await this.database.tx(async (trx) => {
      for (const id of ids) await DELIVERED.execute(trx, dialect, now, sink, id);
    });
  }

  async extend(sink: string, headIds: string[], leaseMs: number): Promise<void> {
    const until = Date.now() + leaseMs;
    for (const slice of slices(headIds)) {
      await this.database.db
        .updateTable('event_deliveries')
        .set({ claimed_until: until })
        .where('sink', '=', sink)
        .where('state', '=', STATE.pending)
        .where('event_id', 'in', slice)
        .execute();
    }
  }

  async release(sink: string, ids: string[]): Promise<void> {
    for (const slice of slices(ids)) {
      await this.database.db.updateTable('event_deliveries').set({ claimed_until: 0 }).where('sink', '=', sink).where('event_id', 'in', slice).execute();
    }
  }

  async failed(sink: string, ids: string[], error: string, retryAt: (attempts: number) => number | null): Promise<void> {
    if (ids.length === 0) return;
    const message = error.slice(0, 1000);
    await this.database.tx(async (trx) => {
      const rows = await inSlices(ids, (slice) =>
        trx.selectFrom('event_deliveries').select(['event_id', 'attempts']).where('sink', '=', sink).where('event_id', 'in', slice).execute(),
      );
      const byAttempts = new Map<number, string[]>();
      for (const row of rows) {
        const group = byAttempts.get(row.attempts + 1) ?? [];
        group.push(row.event_id);
        byAttempts.set(row.attempts + 1, group);
      }
      for (const [attempts, group] of byAttempts) {
        const at = retryAt(attempts);
        for (const slice of slices(group)) {
          await trx
            .updateTable('event_deliveries')
            .set({ attempts, last_error: message, claimed_until: 0, state: at === null ? STATE.failed : STATE.pending, next_attempt_at: at ?? Date.now() })
            .where('sink', '=', sink)
            .where('event_id', 'in', slice)
            .where('state', '=', STATE.pending)
            .execute();
        }
      }
    });
  }

  async list(options: { states?: DeliveryState[]; sink?: string; limit: number }): Promise<Delivery[]> {
    let query = this.database.db
      .selectFrom('event_deliveries')
      .select(['sink', 'state', 'attempts', 'last_error', 'next_attempt_at', 'delivered_at', 'payload']);
    if (options.states?.length) query = query.where('state', 'in', options.states.map((s) => STATE[s]));
    if (options.sink !== undefined) query = query.where('sink', '=', options.sink);
    const rows = await query.orderBy('created_at').orderBy('repository').orderBy('seq').limit(options.limit).execute();
    return rows.map((r) => ({
      sink: r.sink,
      state: STATE_NAME[r.state]!,
      attempts: r.attempts,
      lastError: r.last_error,
      nextAttemptAt: r.next_attempt_at,
      deliveredAt: r.delivered_at,
      event: JSON.parse(r.payload) as RegistryEvent,
    }));
  }

  async retry(options: { sink?: string; ids?: string[] }): Promise<number> {
    const now = Date.now();
    const run = async (ids?: string[]) => {
      let query = this.database.db
        .updateTable('event_deliveries')
        .set({ state: STATE.pending, attempts: 0, next_attempt_at: now, claimed_until: 0 })
        .where('state', '=', STATE.failed);
      if (options.sink !== undefined) query = query.where('sink', '=', options.sink);
      if (ids) query = query.where('event_id', 'in', ids);
      return Number((await query.executeTakeFirst()).numUpdatedRows);
    };
    if (!options.ids) return run();
    let total = 0;
    for (const slice of slices(options.ids)) total += await run(slice);
    return total;
  }

  async prune(before: number): Promise<number> {
    const deleted = await this.database.db.deleteFrom('event_deliveries').where('state', '=', STATE.delivered).where('delivered_at', '<', before).executeTakeFirst();
    return Number(deleted.numDeletedRows);
  }

  async backlog(): Promise<SinkBacklog[]> {
    const rows = await this.database.db
      .selectFrom('event_deliveries')
      .select((eb) => ['sink', 'state', eb.fn.countAll<number>().as('n'), eb.fn.min('created_at').as('oldest')])
      .where('state', 'in', [STATE.pending, STATE.failed])
      .groupBy(['sink', 'state'])
      .execute();
    const bySink = new Map<string, SinkBacklog>();
    for (const row of rows) {
      const entry = bySink.get(row.sink) ?? { sink: row.sink, pending: 0, failed: 0, oldestPendingAt: null };
      if (row.state === STATE.pending) {
        entry.pending = Number(row.n);
        entry.oldestPendingAt = row.oldest === null ? null : Number(row.oldest);
      } else entry.failed = Number(row.n);
      bySink.set(row.sink, entry);
    }
    return [...bySink.values()];
  }
}

/** The target with distribution's `length` (= size) and a `url` where the client can fetch it. */
function withUrl(draft: EventDraft, origin: EventOrigin | undefined): EventTarget {
  const target: EventTarget = { ...draft.target };
  if (target.size !== undefined) target.length = target.size;
  if (draft.kind && target.digest && origin?.baseUrl) target.url = `${origin.baseUrl}/v2/${target.repository}/${draft.kind}/${target.digest}`;
  return target;
}

/** Takes `count` sequence numbers of a repository's events; returns the last. Locks the repository's row until commit. */
const NEXT_SEQ = prepare((exec, _pg, repository: string, count: number) =>
  exec
    .insertInto('event_streams')
    .values({ repository, seq: count })
    .onConflict((oc) => oc.column('repository').doUpdateSet((eb) => ({ seq: eb('event_streams.seq', '+', count) })))
    .returning('seq'),
);

const INSERT_DELIVERY = prepare((exec, _pg, eventId: string, sink: string, repository: string, seq: number, payload: string, now: number) =>
  exec.insertInto('event_deliveries').values({
    event_id: eventId,
    sink,
    repository,
    seq,
    payload,
    state: STATE.pending,
    attempts: 0,
    next_attempt_at: now,
    claimed_until: 0,
    created_at: now,
  }),
);

/** Each repository's oldest pending event for a sink, if it is due and unclaimed (locked on PostgreSQL, skipping rows another replica is claiming). */
const HEADS = prepare((exec, pg, sink: string, now: number, limit: number) =>
  exec
    .selectFrom('event_deliveries as d')
    .select(['d.event_id', 'd.repository'])
    .where('d.sink', '=', sink)
    .where('d.state', '=', STATE.pending)
    .where('d.next_attempt_at', '<=', now)
    .where('d.claimed_until', '<', now)
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('event_deliveries as e')
            .select('e.seq')
            .whereRef('e.sink', '=', 'd.sink')
            .where('e.state', '=', STATE.pending)
            .whereRef('e.repository', '=', 'd.repository')
            .whereRef('e.seq', '<', 'd.seq'),
        ),
      ),
    )
    .orderBy('d.next_attempt_at')
    .limit(limit)
    .$if(pg, (q) => q.forUpdate().skipLocked()),
);

const CLAIM = prepare((exec, _pg, until: number, sink: string, eventId: string) =>
  exec.updateTable('event_deliveries').set({ claimed_until: until }).where('sink', '=', sink).where('event_id', '=', eventId),
);

/** A repository's pending events for a sink, in order. */
const QUEUE = prepare((exec, _pg, sink: string, repository: string, limit: number) =>
  exec
    .selectFrom('event_deliveries')
    .select(['attempts', 'payload'])
    .where('sink', '=', sink)
    .where('state', '=', STATE.pending)
    .where('repository', '=', repository)
    .orderBy('seq')
    .limit(limit),
);

const DELIVERED = prepare((exec, _pg, now: number, sink: string, eventId: string) =>
  exec
    .updateTable('event_deliveries')
    .set((eb) => ({ state: STATE.delivered, delivered_at: now, claimed_until: 0, attempts: eb('attempts', '+', 1), last_error: null }))
    .where('sink', '=', sink)
    .where('event_id', '=', eventId),
);
