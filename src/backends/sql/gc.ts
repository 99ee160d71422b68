/**
 * Online garbage collection: runs while the registry serves, without a read-only mode.
 *
 * How it decides, in order (each deletion — a manifest, or the unused links or blobs of one page
 * of at most 500 keys — is its own short statement or transaction that re-checks its condition,
 * so concurrent pushes only ever wait a moment, and no transaction spans the pass):
 *  1. expired upload sessions go, with their bytes;
 *  2. manifests that nothing needs: referrers whose subject is gone from the repository (and
 *     that carry no tag and are in no index), and — only when `deleteUntaggedAfterMs` is set —
 *     untagged manifests that are in no index and are not referrers of a live subject;
 *  3. repository links of blobs that no manifest in that repository references and that were
 *     not uploaded, mounted, referenced or read for the grace period;
 *  4. blob rows with no link left in any repository, then their bytes (after the row's
 *     transaction commits: bytes are never deleted while a row points at them);
 *  5. objects that no blob or upload row points to, older than the grace period (leftovers of
 *     crashes between a store write and its metadata commit).
 *
 * Safety does not rest on this code alone: manifest_blobs has a foreign key to the repository
 * link, and links to the blob row, so the database refuses any deletion a concurrent manifest
 * PUT or mount has made wrong; such a deletion is skipped. One collector runs at a time (a
 * lease in the database), so replicas may all schedule collection.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { sql, type ExpressionBuilder } from 'kysely';
import type { GcOptions, GcReport } from '../../core/maintenance.js';
import { BATCH_SIZE as BATCH, inSlices } from './batches.js';
import { TOUCH_RESOLUTION_MS } from './blobs.js';
import type { Context } from './context.js';
import type { Executor } from './database.js';
import type { ManifestsTable, RepositoryBlobsTable, Schema } from './schema.js';
import { leaseCondition, tryAcquireLease, type Lease } from './leases.js';

const LEASE_MS = 120_000;
/** An object this young may belong to an upload whose row is being written right now. */
const ORPHAN_MIN_AGE_MS = 60_000;

export async function collectGarbage(ctx: Context, options: GcOptions, expireUploads: () => Promise<number>): Promise<GcReport> {
  const started = Date.now();
  const report: GcReport = {
    uploadsExpired: 0,
    manifestsDeleted: 0,
    linksDeleted: 0,
    blobsDeleted: 0,
    bytesFreed: 0,
    orphanObjectsDeleted: 0,
    orphanBytesFreed: 0,
    durationMs: 0,
    ran: false,
  };
  const lease = await tryAcquireLease(ctx.database, 'gc', LEASE_MS);
  if (!lease) return report;
  report.ran = true;
  const renewal = setInterval(() => void lease.renew(), LEASE_MS / 4);
  try {
    const gc = new Collector(ctx, options, report, lease);
    if (!options.dryRun) report.uploadsExpired = await expireUploads();
    await gc.manifests();
    await gc.links();
    await gc.blobs();
    if (!options.skipOrphanScan) await gc.orphans();
  } finally {
    clearInterval(renewal);
    await lease.release().catch(() => {});
  }
  report.durationMs = Date.now() - started;
  return report;
}

class Collector {
  private readonly now = Date.now();
  /** Reads refresh a link at most once per TOUCH_RESOLUTION_MS: add it so a read still buys a full grace period. */
  private readonly cutoff: number;

  constructor(
    private readonly ctx: Context,
    private readonly options: GcOptions,
    private readonly report: GcReport,
    private readonly lease: Lease,
  ) {
    const margin = Math.min(TOUCH_RESOLUTION_MS, options.graceMs);
    this.cutoff = this.now - options.graceMs - margin;
  }

  /**
   * Called before every deletion: stops collection once its lease may have passed to another
   * collector (each deletion also re-checks the lease in its own statement or transaction).
   * Requests waiting on the event loop run between pages (at most BATCH deletions).
   */
  private async check(): Promise<void> {
    if (!this.lease.valid()) throw new Error('garbage collection lease lost');
  }

  private progress(phase: string, done: number): void {
    if (done % 1000 === 0) this.options.onProgress?.({ phase, done });
  }

  /**
   * Manifests nothing needs; repeated because deleting an index can free its children. Each
   * step reads one page of the table by key and evaluates the conditions on that page only, so
   * no statement scans more than a page however sparse the candidates are.
   */
  async manifests(): Promise<void> {
    const db = this.ctx.database.db;
    for (let round = 0; round < 16; round++) {
      let deleted = 0;
      for (let after = -1; ; ) {
        const page = await db.selectFrom('manifests').select('id').where('id', '>', after).orderBy('id').limit(BATCH).execute();
        const last = page[page.length - 1]?.id;
        if (last === undefined) break;
        const candidates = await db.selectFrom('manifests as m').select('m.id').where('m.id', '>', after).where('m.id', '<=', last).where(this.collectable()).execute();
        for (const c of candidates) {
          await this.check();
          if (this.options.dryRun) {
            this.report.manifestsDeleted++;
            continue;
          }
          if (await this.ctx.database.tx((trx) => this.deleteManifest(trx, c.id)).catch(() => false)) {
            deleted++;
            this.progress('manifests', ++this.report.manifestsDeleted);
          }
        }
        after = last;
        await yieldToEventLoop();
      }
      if (this.options.dryRun || deleted === 0) return;
    }
  }

  /**
   * Deletes one candidate if it is still collectable. The row is locked first (PostgreSQL; on
   * SQLite the transaction holds the write lock), so a concurrent PUT that tags or re-pushes it
   * either committed before (and the re-check sees its tag or fresh push time) or waits and then
   * inserts the manifest anew. Every condition is re-checked after the lock, in a new statement
   * (READ COMMITTED: it sees everything committed before the lock was granted).
   */
  private async deleteManifest(trx: Executor, id: number): Promise<boolean> {
    const locked = await trx
      .selectFrom('manifests')
      .select('id')
      .where('id', '=', id)
      .$if(this.ctx.database.postgres, (q) => q.forUpdate())
      .executeTakeFirst();
    if (!locked) return false;
    const still = await trx.selectFrom('manifests as m').select('m.id').where('m.id', '=', id).where(this.collectable()).executeTakeFirst();
    if (!still || !(await this.lease.confirm(trx))) return false;
    const r = await trx.deleteFrom('manifests').where('id', '=', id).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  /** What makes a manifest collectable: untagged, in no index, and either an orphaned referrer or (when configured) old enough. */
  private collectable() {
    const untaggedCutoff = this.options.deleteUntaggedAfterMs === undefined ? null : this.now - this.options.deleteUntaggedAfterMs;
    return ({ eb, not, exists, selectFrom, or, and }: ExpressionBuilder<Schema & { m: ManifestsTable }, 'm'>) => {
      const subjectGone = not(
        exists(selectFrom('manifests as s').select('s.id').whereRef('s.repository_id', '=', 'm.repository_id').whereRef('s.digest', '=', 'm.subject_digest')),
      );
      return and([
        not(exists(selectFrom('tags as t').select('t.manifest_id').whereRef('t.manifest_id', '=', 'm.id'))),
        not(exists(selectFrom('manifest_children as c').select('c.child_id').whereRef('c.child_id', '=', 'm.id'))),
        or([
          // A referrer whose subject is gone from the repository.
          and([eb('m.subject_digest', 'is not', null), eb('m.pushed_at', '<', this.cutoff), subjectGone]),
          // An untagged manifest past the configured age that is not a referrer of a live subject.
          ...(untaggedCutoff === null ? [] : [and([eb('m.pushed_at', '<', untaggedCutoff), or([eb('m.subject_digest', 'is', null), subjectGone])])]),
        ]),
      ]);
    };
  }

  /** Repository links that no manifest there references, past the grace period. */
  async links(): Promise<void> {
    const db = this.ctx.database.db;
    const pg = this.ctx.database.postgres;
    let after = { repository_id: -1, blob_id: -1 };
    for (;;) {
      // One page of links by key, then the unused ones within it (see manifests()).
      const page = await db
        .selectFrom('repository_blobs as rb')
        .select(['rb.repository_id', 'rb.blob_id'])
        .where(keyAfter(after, pg))
        .orderBy('rb.repository_id')
        .orderBy('rb.blob_id')
        .limit(BATCH)
        .execute();
      const last = page[page.length - 1];
      if (!last) return;
      const rows = await db
        .selectFrom('repository_blobs as rb')
        .select(['rb.repository_id', 'rb.blob_id'])
        .where(keyAfter(after, pg))
        .where(keyUpTo(last, pg))
        .where('rb.touched_at', '<', this.cutoff)
        .where(linkUnused)
        .execute();
      if (rows.length === 0) {
        after = last;
        await yieldToEventLoop();
        continue;
      }
      await this.check();
      if (this.options.dryRun) {
        this.report.linksDeleted += rows.length;
      } else {
        // The page's unused links in one statement, its conditions re-evaluated against the rows
        // as they are now. Should a concurrent manifest PUT make the foreign key from
        // manifest_blobs reject it, the page goes row by row so only that link stays.
        const range = this.linkRange(after, last);
        const batch = await db
          .deleteFrom('repository_blobs as rb')
          .where(range)
          .where('rb.touched_at', '<', this.cutoff)
          .where(linkUnused)
          .where(leaseCondition(this.lease))
          .executeTakeFirst()
          .then((r) => Number(r.numDeletedRows))
          .catch(() => null);
        const deleted = batch ?? (await this.deleteLinksOneByOne(rows));
        this.advance('links', 'linksDeleted', deleted);
      }
      after = last;
      await yieldToEventLoop();
    }
  }

  /** Links in (after, last] in key order. */
  private linkRange(after: { repository_id: number; blob_id: number }, last: { repository_id: number; blob_id: number }) {
    return (eb: ExpressionBuilder<Schema & { rb: RepositoryBlobsTable }, 'rb'>) =>
      eb.and([keyAfter(after, this.ctx.database.postgres)(eb), keyUpTo(last, this.ctx.database.postgres)(eb)]);
  }

  private async deleteLinksOneByOne(rows: { repository_id: number; blob_id: number }[]): Promise<number> {
    let deleted = 0;
    for (const row of rows) {
      await this.check();
      const r = await this.ctx.database.db
        .deleteFrom('repository_blobs as rb')
        .where('rb.repository_id', '=', row.repository_id)
        .where('rb.blob_id', '=', row.blob_id)
        .where('rb.touched_at', '<', this.cutoff)
        .where(linkUnused)
        .where(leaseCondition(this.lease))
        .executeTakeFirst()
        .catch(() => ({ numDeletedRows: 0n }));
      deleted += Number(r.numDeletedRows);
    }
    return deleted;
  }

  /** Adds `n` to a count of the report, telling progress at each thousand crossed. */
  private advance(phase: string, field: 'linksDeleted' | 'blobsDeleted', n: number): void {
    const before = this.report[field];
    this.report[field] += n;
    if (Math.floor(this.report[field] / 1000) > Math.floor(before / 1000)) this.options.onProgress?.({ phase, done: this.report[field] });
  }

  /** Blob rows that no repository links any more, then their bytes. */
  async blobs(): Promise<void> {
    const db = this.ctx.database.db;
    let afterId = -1;
    for (;;) {
      // One page of blobs by key, then the unlinked ones within it (see manifests()).
      const page = await db.selectFrom('blobs').select('id').where('id', '>', afterId).orderBy('id').limit(BATCH).execute();
      const lastId = page[page.length - 1]?.id;
      if (lastId === undefined) return;
      const rows = await db
        .selectFrom('blobs as b')
        .select((eb) => ['b.id', 'b.size', 'b.object_key', eb('b.content', 'is', null).as('stored')])
        .where('b.id', '>', afterId)
        .where('b.id', '<=', lastId)
        .where('b.created_at', '<', this.cutoff)
        .where(({ not, exists, selectFrom }) => {
          const links = selectFrom('repository_blobs as rb').select('rb.blob_id').whereRef('rb.blob_id', '=', 'b.id');
          if (!this.options.dryRun) return not(exists(links));
          // A dry run deleted no links: count the blobs whose every link the link phase would remove.
          return not(
            exists(
              links.where((inner) =>
                inner.or([
                  inner('rb.touched_at', '>=', this.cutoff),
                  inner.exists(
                    inner.selectFrom('manifest_blobs as mb').select('mb.blob_id').whereRef('mb.repository_id', '=', 'rb.repository_id').whereRef('mb.blob_id', '=', 'rb.blob_id'),
                  ),
                ]),
              ),
            ),
          );
        })
        .execute();
      if (rows.length === 0) {
        afterId = lastId;
        await yieldToEventLoop();
        continue;
      }
      await this.check();
      if (this.options.dryRun) {
        this.report.blobsDeleted += rows.length;
        this.report.bytesFreed += rows.reduce((sum, r) => sum + r.size, 0);
      } else {
        // The page's unlinked blob rows in one statement that re-checks that no link exists now
        // (a link inserted meanwhile makes its row stay, or waits for this delete and then fails
        // its foreign key); what it returns is gone and committed.
        // Should a link arriving meanwhile make the foreign key reject the statement, the page
        // goes row by row so only that blob stays.
        const unlinked = (ids: { from: number; to: number }) =>
          db
            .deleteFrom('blobs')
            .where('blobs.id', '>', ids.from)
            .where('blobs.id', '<=', ids.to)
            .where('blobs.created_at', '<', this.cutoff)
            .where(({ not, exists, selectFrom }) => not(exists(selectFrom('repository_blobs as rb').select('rb.blob_id').whereRef('rb.blob_id', '=', 'blobs.id'))))
            .where(leaseCondition(this.lease))
            // Unqualified: SQLite's RETURNING does not take the table's alias.
            .returning((eb) => ['size', 'object_key', eb('content', 'is', null).as('stored')])
            .execute();
        let gone = await unlinked({ from: afterId, to: lastId }).catch(() => null);
        if (gone === null) {
          gone = [];
          for (const row of rows) {
            await this.check();
            gone.push(...(await unlinked({ from: row.id - 1, to: row.id }).catch(() => [])));
          }
        }
        // Nothing can reach these bytes any more. (An inline blob's bytes went with its row.)
        for (const row of gone) if (row.stored) await this.ctx.objects.delete(row.object_key);
        this.report.bytesFreed += gone.reduce((sum, r) => sum + r.size, 0);
        this.advance('blobs', 'blobsDeleted', gone.length);
      }
      afterId = lastId;
      await yieldToEventLoop();
    }
  }

  /** Objects that no row points to, old enough that no upload is about to record them. */
  async orphans(): Promise<void> {
    const minAge = Math.max(this.options.graceMs, ORPHAN_MIN_AGE_MS);
    const oldest = this.now - minAge;
    let batch: { key: string; size: number }[] = [];
    const flush = async () => {
      const keys = batch.map((o) => o.key);
      const known = await knownKeys(this.ctx, keys);
      if (!this.options.dryRun && !(await this.lease.confirm(this.ctx.database.db))) throw new Error('garbage collection lease lost');
      for (const o of batch) {
        if (known.has(o.key)) continue;
        await this.check();
        if (!this.options.dryRun) await this.ctx.objects.delete(o.key);
        this.report.orphanObjectsDeleted++;
        this.report.orphanBytesFreed += o.size;
      }
      batch = [];
    };
    for await (const o of this.ctx.objects.list('blobs/')) {
      if (o.modified.getTime() >= oldest) continue;
      batch.push(o);
      if (batch.length >= BATCH) await flush();
    }
    if (batch.length) await flush();
    // Staging never precedes its session row, so the grace period alone protects it.
    for (const key of await deadStagedUploads(this.ctx, this.now - this.options.graceMs)) {
      await this.check();
      if (!this.options.dryRun) await this.ctx.objects.discardStaged?.(key);
      this.report.orphanObjectsDeleted++;
    }
  }
}

/**
 * Uploads whose staging objects outlived their session (a crash between ending the session and
 * discarding its bytes). Staging appears only after the session row exists, and the row goes
 * only in the transaction that records the blob or ends the session, so a key that no upload
 * row names has no writer left.
 */
export async function deadStagedUploads(ctx: Context, olderThan: number): Promise<string[]> {
  if (!ctx.objects.listStagedUploads) return [];
  const staged: string[] = [];
  for await (const upload of ctx.objects.listStagedUploads()) if (upload.modified.getTime() < olderThan) staged.push(upload.key);
  const dead: string[] = [];
  for (let i = 0; i < staged.length; i += BATCH) {
    const keys = staged.slice(i, i + BATCH);
    const live = await ctx.database.db.selectFrom('uploads').select('object_key').where('object_key', 'in', keys).execute();
    const liveKeys = new Set(live.map((r) => r.object_key));
    dead.push(...keys.filter((k) => !liveKeys.has(k)));
  }
  return dead;
}

/**
 * Links after `after` in key order. A row-value comparison, which both engines turn into one
 * range of the primary key; the equivalent `a > x OR (a = x AND b > y)` made SQLite scan the
 * table from its start on every page (collection quadratic in the number of links).
 */
function keyAfter(after: { repository_id: number; blob_id: number }, pg: boolean) {
  return (eb: ExpressionBuilder<Schema & { rb: RepositoryBlobsTable }, 'rb'>) => {
    const row = eb(eb.refTuple('rb.repository_id', 'rb.blob_id'), '>', eb.tuple(after.repository_id, after.blob_id));
    return pg ? eb.and([eb('rb.repository_id', '>=', after.repository_id), row]) : row;
  };
}

/**
 * Links up to `last` in key order. On PostgreSQL both bounds are repeated on the leading column
 * for its row estimate: from the row comparison alone it guessed a tenth of the table and
 * hash-joined every manifest reference on each page. Not on SQLite, which would then seek by
 * the plain column and scan a large repository's links from its first on every page.
 */
function keyUpTo(last: { repository_id: number; blob_id: number }, pg: boolean) {
  return (eb: ExpressionBuilder<Schema & { rb: RepositoryBlobsTable }, 'rb'>) => {
    const row = eb(eb.refTuple('rb.repository_id', 'rb.blob_id'), '<=', eb.tuple(last.repository_id, last.blob_id));
    return pg ? eb.and([eb('rb.repository_id', '<=', last.repository_id), row]) : row;
  };
}

/** No manifest in the link's repository references the link's blob. */
function linkUnused({ not, exists, selectFrom }: ExpressionBuilder<Schema & { rb: RepositoryBlobsTable }, 'rb'>) {
  return not(
    exists(selectFrom('manifest_blobs as mb').select('mb.blob_id').whereRef('mb.repository_id', '=', 'rb.repository_id').whereRef('mb.blob_id', '=', 'rb.blob_id')),
  );
}

/**
 * The keys among `keys` that a blob or upload row points to, read in ONE statement (one
 * snapshot): an upload completing meanwhile moves its key from the uploads table to the blobs
 * table in one transaction, which two separate reads could both miss.
 */
export async function knownKeys(ctx: Context, keys: string[]): Promise<Set<string>> {
  const rows = await inSlices(keys, async (slice) => {
    const r = await sql<{ object_key: string }>`select object_key from blobs where object_key in (${sql.join(slice)})
      union all select object_key from uploads where object_key in (${sql.join(slice)})`.execute(ctx.database.db);
    return r.rows;
  });
  return new Set(rows.map((r) => r.object_key));
}
