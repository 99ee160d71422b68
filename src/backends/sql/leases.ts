/** Named, expiring leases in the metadata database: mutual exclusion across processes and replicas. */
import { randomUUID } from 'node:crypto';
import type { Database } from './database.js';

export interface Lease {
  /** Extends the lease; false when it was lost (expired and taken by another owner). */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

export async function tryAcquireLease(database: Database, name: string, ttlMs: number): Promise<Lease | null> {
  const owner = randomUUID();
  const db = database.db;
  const now = Date.now();
  await db
    .insertInto('leases')
    .values({ name, owner, expires_at: now + ttlMs })
    .onConflict((oc) => oc.column('name').doUpdateSet({ owner, expires_at: now + ttlMs }).where('leases.expires_at', '<', now))
    .execute();
  const held = await db.selectFrom('leases').select('owner').where('name', '=', name).executeTakeFirst();
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
