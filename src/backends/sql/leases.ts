/**
 * Named, expiring leases in the metadata database: mutual exclusion across processes and
 * replicas. A holder that dies loses its lease when it expires, or at once when the next
 * claimant runs on the same host and sees that the holder's process is gone.
 *
 * Fencing: a holder counts its lease as valid only until the expiry its last successful
 * renewal set (less a margin for clock skew), and each of its writes re-checks the lease row
 * in the same statement or transaction (`heldBy`), so a holder that stalled past its lease
 * cannot write after another has taken it.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { sql, type ExpressionBuilder, type RawBuilder, type SqlBool } from 'kysely';
import type { Database, Executor } from './database.js';
import type { Schema } from './schema.js';

export interface Lease {
  readonly name: string;
  readonly owner: string;
  /** Extends the lease; false when it was lost (expired and taken by another owner) or could not be renewed. */
  renew(): Promise<boolean>;
  /** False once the lease may have passed to another holder: stop writing. */
  valid(): boolean;
  /** Re-checks the row inside a write's transaction (locking it on PostgreSQL, so a takeover waits for the commit). */
  confirm(exec: Executor): Promise<boolean>;
  release(): Promise<void>;
}

const HOST = hostname();
/** Renewals stop counting this long before the recorded expiry: other hosts' clocks may run ahead. */
const SKEW_MARGIN_MS = 5_000;

export async function tryAcquireLease(database: Database, name: string, ttlMs: number): Promise<Lease | null> {
  const owner = `${HOST}:${process.pid}:${randomUUID()}`;
  const db = database.db;
  const now = Date.now();
  await db
    .insertInto('leases')
    .values({ name, owner, expires_at: now + ttlMs })
    .onConflict((oc) => oc.column('name').doUpdateSet({ owner, expires_at: now + ttlMs }).where('leases.expires_at', '<', now))
    .execute();
  let held = await db.selectFrom('leases').select('owner').where('name', '=', name).executeTakeFirst();
  if (held && held.owner !== owner && holderIsDead(held.owner)) {
    await db.updateTable('leases').set({ owner, expires_at: now + ttlMs }).where('name', '=', name).where('owner', '=', held.owner).execute();
    held = await db.selectFrom('leases').select('owner').where('name', '=', name).executeTakeFirst();
  }
  if (held?.owner !== owner) return null;
  const margin = Math.min(SKEW_MARGIN_MS, ttlMs / 4);
  let validUntil = now + ttlMs - margin;
  let lost = false;
  const valid = () => !lost && Date.now() < validUntil;
  return {
    name,
    owner,
    async renew() {
      const at = Date.now();
      try {
        const r = await db.updateTable('leases').set({ expires_at: at + ttlMs }).where('name', '=', name).where('owner', '=', owner).executeTakeFirst();
        if (r.numUpdatedRows === 0n) lost = true;
        else validUntil = at + ttlMs - margin;
      } catch {
        // Unknown outcome: the lease stays valid only until its last confirmed expiry.
      }
      return valid();
    },
    valid,
    async confirm(exec: Executor) {
      if (!valid()) return false;
      const row = await exec
        .selectFrom('leases')
        .select('owner')
        .where(heldBy(name, owner, Date.now()))
        .$if(database.postgres, (q) => q.forShare())
        .executeTakeFirst();
      if (!row) lost = true;
      return row !== undefined;
    },
    async release() {
      await db.deleteFrom('leases').where('name', '=', name).where('owner', '=', owner).execute();
    },
  };
}

/** The lease row still names `owner` and has not expired. */
export function heldBy(name: string, owner: string, now: number) {
  return (eb: ExpressionBuilder<Schema, 'leases'>) => eb.and([eb('name', '=', name), eb('owner', '=', owner), eb('expires_at', '>', now)]);
}

/** True only when the holder ran on this host and its process no longer exists. */
function holderIsDead(owner: string): boolean {
  const [host, pid] = owner.split(':');
  if (host !== HOST || !pid || Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** For a single-statement write: true only while `lease` is still held (evaluated in the statement). */
export function leaseCondition(lease: Lease): RawBuilder<SqlBool> {
  return sql<SqlBool>`exists (select 1 from leases where name = ${lease.name} and owner = ${lease.owner} and expires_at > ${Date.now()})`;
}
