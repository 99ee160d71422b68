/** The SQL backend: metadata in SQLite or PostgreSQL, bytes in an ObjectStore. */
import { sql } from 'kysely';
import type { CacheLedger, CachePruneOptions, CachePruneReport } from '../../core/cache.js';
import type { ClaimedBatch, Delivery, DeliveryState, EventLog, EventOrigin, EventRouting, SinkBacklog } from '../../core/events.js';
import type { CatalogFilter, Page, PageRequest, Registry, Repository } from '../../core/interfaces.js';
import type { FsckOptions, FsckReport, GcOptions, GcReport, Maintenance, Usage } from '../../core/maintenance.js';
import type { RepositoryName } from '../../core/names.js';
import type { Observable, ReadinessCheck, StorageStats } from '../../core/observer.js';
import type { ObjectStore } from '../objects/object-store.js';
import { SqlBlobStore } from './blobs.js';
import { pruneCache } from './cache-ledger.js';
import { findRepositoryId, pageLimit, pageOf, type Context, type SqlRegistryOptions } from './context.js';
import type { Database } from './database.js';
import { Outbox } from './events.js';
import { fsck } from './fsck.js';
import { generate, type GenerateOptions, type GenerateReport } from './generate.js';
import { HashCache } from './hash-cache.js';
import { collectGarbage } from './gc.js';
import { SqlManifestStore } from './manifests.js';
import { readiness, stats } from './observe.js';
import { SqlPolicies } from './policies.js';
import { PullLog } from './pulls.js';
import { runRetention } from './retention.js';
import type { RetentionReport } from '../../core/policies.js';
import { usage } from './usage.js';
import { SqlBrowse } from './browse.js';
import type { Browse } from '../../core/browse.js';
import { SqlUploadStore } from './uploads.js';

export type { SqlRegistryOptions } from './context.js';

export class SqlRegistry implements Registry, Maintenance, Observable, EventLog, CacheLedger {
  private readonly ctx: Context;
  /** The read queries of the web interface's API. */
  readonly browse: Browse;
  /** Quotas and immutable tags (docs/policies.md). */
  readonly policies: SqlPolicies;

  constructor(database: Database, objects: ObjectStore, options: SqlRegistryOptions) {
    this.ctx = { database, objects, options, hashes: new HashCache(options.uploadTtlMs), events: new Outbox(database), pulls: new PullLog(database) };
    this.browse = new SqlBrowse(this.ctx);
    this.policies = new SqlPolicies(this.ctx);
  }

  get spoolDirectory(): string | undefined {
    return this.ctx.objects.spoolDirectory;
  }

  repository(name: RepositoryName, origin?: EventOrigin): Repository {
    const ctx = this.ctx;
    return {
      name,
      blobs: new SqlBlobStore(ctx, name, origin),
      uploads: new SqlUploadStore(ctx, name),
      manifests: new SqlManifestStore(ctx, name, origin),
      tags: async (page: PageRequest): Promise<Page | null> => {
        const db = ctx.database.db;
        const repositoryId = await findRepositoryId(db, ctx.database.dialect, name);
        if (repositoryId === null) return null;
        const limit = pageLimit(page.n, ctx.options.maxPageSize);
        let query = db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId);
        if (page.last !== undefined) query = query.where('name', '>', page.last);
        return pageOf(await query.orderBy('name').limit(limit + 1).execute(), limit);
      },
    };
  }

  async catalog(page: PageRequest, filter?: CatalogFilter): Promise<Page> {
    const limit = pageLimit(page.n, this.ctx.options.maxPageSize);
    if (filter && filter.names.length === 0 && filter.prefixes.length === 0) return { items: [], more: false };
    // A repository appears once it holds something: an abandoned upload does not list it.
    // Scalar probes rather than EXISTS: PostgreSQL may turn `EXISTS … OR EXISTS …` into hashed
    // subplans that read every manifest once per page; a scalar subquery is evaluated per
    // listed row, one index probe each, whatever the store holds.
    let query = this.ctx.database.db
      .selectFrom('repositories as r')
      .select('r.name as name')
      .where(({ or, eb, selectFrom }) =>
        or([
          eb(selectFrom('manifests as m').select(sql<number>`1`.as('one')).whereRef('m.repository_id', '=', 'r.id').limit(1), 'is not', null),
          eb(selectFrom('repository_blobs as rb').select(sql<number>`1`.as('one')).whereRef('rb.repository_id', '=', 'r.id').limit(1), 'is not', null),
        ]),
      );
    if (filter) {
      // Each prefix is a range of the name index: [prefix, prefix with its last character + 1).
      query = query.where(({ or, and, eb }) =>
        or([
          ...(filter.names.length ? [eb('r.name', 'in', [...filter.names])] : []),
          ...filter.prefixes.map((p) => (p === '' ? eb.lit(true) : and([eb('r.name', '>=', p), eb('r.name', '<', successor(p))]))),
        ]),
      );
    }
    if (page.last !== undefined) query = query.where('r.name', '>', page.last);
    return pageOf(await query.orderBy('r.name').limit(limit + 1).execute(), limit);
  }

  /** Synthetic content for scale tests and benchmarks (generate.ts). */
  generate(options: GenerateOptions): Promise<GenerateReport> {
    return generate(this.ctx, options);
  }

  async expireUploads(now: Date = new Date()): Promise<number> {
    const db = this.ctx.database.db;
    let expired = 0;
    for (;;) {
      const rows = await db
        .selectFrom('uploads')
        .select(['id', 'object_key', 'store_state'])
        .where('expires_at', '<=', now.getTime())
        .limit(100)
        .execute();
      let progressed = false;
      for (const row of rows) {
        // The row goes first: an object without a row is garbage that collection finds; a row
        // without its object would be a broken session.
        const deleted = await db
          .deleteFrom('uploads')
          .where('id', '=', row.id)
          .where('expires_at', '<=', now.getTime())
          .where((eb) => eb.or([eb('lease_expires', 'is', null), eb('lease_expires', '<', now.getTime())]))
          .executeTakeFirst();
        if (deleted.numDeletedRows === 0n) continue;
        progressed = true;
        expired++;
        this.ctx.hashes.forget(row.id);
        await this.ctx.objects.abortUpload(row.object_key, row.store_state).catch(() => {});
      }
      if (rows.length < 100 || !progressed) return expired;
    }
  }

  readiness(): Promise<ReadinessCheck[]> {
    return readiness(this.ctx);
  }

  stats(): Promise<StorageStats> {
    return stats(this.ctx);
  }

  collectGarbage(options: GcOptions): Promise<GcReport> {
    return collectGarbage(this.ctx, options, () => this.expireUploads());
  }

  /** Retention (docs/policies.md): the plan with `dryRun`, else the deletions, under the collection lease. */
  retention(options: { dryRun?: boolean; origin?: EventOrigin } = {}): Promise<RetentionReport> {
    return runRetention(this.ctx, options);
  }

  fsck(options: FsckOptions): Promise<FsckReport> {
    return fsck(this.ctx, options);
  }

  usage(): Promise<Usage> {
    return usage(this.ctx);
  }

  pruneCache(options: CachePruneOptions): Promise<CachePruneReport> {
    return pruneCache(this.ctx, (name) => this.repository(name), options);
  }

  async deleteRepository(name: RepositoryName, origin?: EventOrigin): Promise<boolean> {
    const events = this.ctx.events;
    let recorded = false;
    const sessions = await this.ctx.database.tx(async (trx) => {
      const repository = await trx.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst();
      if (!repository) return null;
      const uploads = await trx.selectFrom('uploads').select(['id', 'object_key', 'store_state']).where('repository_id', '=', repository.id).execute();
      // Dependents first, in foreign-key order (PostgreSQL checks each cascade step on its own);
      // blob rows and bytes are left to collection.
      const id = repository.id;
      const manifests = trx.selectFrom('manifests').select('id').where('repository_id', '=', id);
      await trx.deleteFrom('tags').where('repository_id', '=', id).execute();
      await trx.deleteFrom('manifest_children').where('parent_id', 'in', manifests).execute();
      await trx.deleteFrom('manifest_blobs').where('repository_id', '=', id).execute();
      await trx.deleteFrom('manifests').where('repository_id', '=', id).execute();
      await trx.deleteFrom('repository_blobs').where('repository_id', '=', id).execute();
      await trx.deleteFrom('uploads').where('repository_id', '=', id).execute();
      await trx.deleteFrom('repositories').where('id', '=', id).execute();
      recorded = await events.record(trx, name, origin, [{ action: 'delete', target: { repository: name } }]);
      return uploads;
    });
    if (!sessions) return false;
    if (recorded) events.recorded();
    for (const u of sessions) {
      this.ctx.hashes.forget(u.id);
      await this.ctx.objects.abortUpload(u.object_key, u.store_state).catch(() => {});
    }
    return true;
  }

  routeEvents(routing: EventRouting): void {
    this.ctx.events.route(routing);
  }

  claimEvents(sink: string, options: { streams: number; batch: number; leaseMs: number }): Promise<ClaimedBatch[]> {
    return this.ctx.events.claim(sink, options);
  }

  eventsDelivered(sink: string, ids: string[]): Promise<void> {
    return this.ctx.events.delivered(sink, ids);
  }

  eventsFailed(sink: string, ids: string[], error: string, retryAt: (attempts: number) => number | null): Promise<void> {
    return this.ctx.events.failed(sink, ids, error, retryAt);
  }

  extendClaims(sink: string, headIds: string[], leaseMs: number): Promise<void> {
    return this.ctx.events.extend(sink, headIds, leaseMs);
  }

  releaseEvents(sink: string, ids: string[]): Promise<void> {
    return this.ctx.events.release(sink, ids);
  }

  listEvents(options: { states?: DeliveryState[]; sink?: string; limit: number }): Promise<Delivery[]> {
    return this.ctx.events.list(options);
  }

  retryEvents(options: { sink?: string; ids?: string[] }): Promise<number> {
    return this.ctx.events.retry(options);
  }

  pruneEvents(before: number): Promise<number> {
    return this.ctx.events.prune(before);
  }

  eventBacklog(): Promise<SinkBacklog[]> {
    return this.ctx.events.backlog();
  }

  onEventsRecorded(listener: () => void): void {
    this.ctx.events.onRecorded(listener);
  }

  async close(): Promise<void> {
    await this.ctx.pulls?.flush().catch(() => {});
    await this.ctx.objects.close();
    await this.ctx.database.close();
  }
}

/** The least string above every string that starts with `prefix` (names are ASCII). */
function successor(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
