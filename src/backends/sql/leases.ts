/**
 * Named, expiring leases in the metadata database: mutual exclusion across processes and
 * replicas. A holder that dies loses its lease when it expires, or at once when the next
 * claimant runs on the same host and sees that the holder's process is gone.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Database } from './database.js';

export interface Lease {
  /** Extends the lease; false when it was lost (expired and taken by another owner). */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

const HOST = hostname();

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
  return {
    async renew() {
      const r = await db.updateTable('leases').set({ expires_at: Date.now() + ttlMs }).where('name', '=', name).where('owner', '=', owner).executeTakeFirst();
      return r.numUpdatedRows > 0n;
    },
    async release() {
      await db.deleteFrom('leases').where('name', '=', name).where('owner', '=', owner).execute();
    },
  };
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
