/**
 * SQLite shared by processes: a transaction that meets another connection's write lock waits
 * without blocking the event loop, counts its waits, and runs once the lock is released.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import { Database } from '../../src/backends/sql/database.js';

test('a SQLite transaction waits for another process’s write lock asynchronously, then commits', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portfolio-busy-'));
  const file = join(dir, 'metadata.db');
  let waits = 0;
  const database = await Database.open({ url: `sqlite:${file}`, observer: { transactionRetried() {}, busyWaited: () => void waits++ } });
  // Another process, as far as SQLite can tell: a connection of its own holding the write lock.
  const other = new SqliteDatabase(file);
  try {
    await database.migrate();
    other.pragma('journal_mode = WAL');
    other.exec('begin immediate');
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 1);
    const write = database.tx(async (trx) => {
      await sql`insert into leases (name, owner, expires_at) values ('busy-test', 'me', 1)`.execute(trx);
      return 'committed';
    });
    let settled = false;
    void write.finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(settled, false, 'the transaction ran while another connection held the write lock');
    assert.ok(waits > 0, 'no wait was counted');
    assert.ok(ticks > 0, 'the event loop was blocked while the transaction waited');
    other.exec('commit');
    assert.equal(await write, 'committed');
    clearInterval(ticker);
    const row = other.prepare("select owner from leases where name = 'busy-test'").get() as { owner: string } | undefined;
    assert.equal(row?.owner, 'me');
  } finally {
    other.close();
    await database.close();
    await rm(dir, { recursive: true, force: true });
  }
});
