/** The in-memory running digests of uploads: valid only for the size they hashed, bounded, and expiring. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { HashCache } from '../../src/backends/sql/hash-cache.js';

test('a running hash serves only the exact size it hashed', () => {
  const cache = new HashCache(60_000);
  cache.put('s', 3, createHash('sha256').update('abc'));
  assert.equal(cache.peek('s', 4), null, 'another size: re-read the bytes');
  assert.equal(cache.peek('s', 3)?.digest('hex'), createHash('sha256').update('abc').digest('hex'));
  assert.ok(cache.take('s', 3));
  assert.equal(cache.take('s', 3), null, 'taken out: a failed write cannot leave it behind the bytes');
});

test('entries of sessions ended elsewhere do not accumulate', async () => {
  const cache = new HashCache(20);
  for (let i = 0; i < 10_000; i++) cache.put(`s${i}`, 0, createHash('sha256'));
  assert.ok(cache.size <= 4096, `${cache.size} entries`);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(cache.peek('s9999', 0), null, 'expired with the upload TTL');
});
