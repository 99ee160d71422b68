/**
 * A data directory written by an earlier schema is brought up to date by `portfolio migrate`
 * without losing anything: images pull, unfinished uploads finish, fsck passes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Migrator, sql } from 'kysely';
import { openEngine } from '../../src/cli/engine.js';
import { parseDigest } from '../../src/core/digest.js';
import { parseManifest } from '../../src/core/manifest.js';
import { parseRepositoryName } from '../../src/core/names.js';
import { migrations } from '../../src/backends/sql/schema.js';
import { blob, image } from '../helpers/oci.js';
import { runCli, startRegistry } from '../helpers/registry.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portfolio-migrate-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

test('a store at schema 0003 migrates with its images, links and unfinished uploads intact', async () => {
  const data = join(dir, 'old');
  const big = blob(randomBytes(200_000));
  const img = image({ layers: [blob(randomBytes(3000)), big] });
  const pending = randomBytes(150_000);
  const inlinePending = randomBytes(500);
  let objectSession: string;
  let inlineSession: string;

  // Write the store as schema 0003 left it.
  const engine = await openEngine({ dataDir: data, uploadTtlMs: 3_600_000, inlineBlobBytes: 64 * 1024, migrate: false });
  try {
    const migrator = new Migrator({ db: engine.database.db, provider: { getMigrations: async () => migrations('sqlite') } });
    const { error } = await migrator.migrateTo('0003_inline_blobs');
    assert.ifError(error);
    const repo = engine.registry.repository(parseRepositoryName('old/app'));
    // Today's upload commit reads the quota rules (0008's table): an empty one while writing, gone again after.
    await sql`create table policies (id text primary key, kind text, rule text, source text, updated_at integer)`.execute(engine.database.db);
    for (const b of [img.config, ...img.layers]) {
      const s = await repo.uploads.start();
      await repo.uploads.complete(s.id, parseDigest(b.digest), Readable.from([b.bytes]), { length: b.size });
    }
    await sql`drop table policies`.execute(engine.database.db);
    // The manifest as 0003's code wrote it (today's code writes columns 0003 did not have).
    const db = engine.database.db;
    const repository = await db.selectFrom('repositories').select('id').where('name', '=', 'old/app').executeTakeFirstOrThrow();
    const parsed = parseManifest(img.manifest, img.mediaType);
    const now = Date.now();
    const row = await sql<{ id: number }>`insert into manifests (repository_id, digest, media_type, size, content, created_at)
      values (${repository.id}, ${img.digest}, ${img.mediaType}, ${img.manifest.length}, ${img.manifest}, ${now}) returning id`.execute(db);
    const manifestId = row.rows[0]!.id;
    const blobs = await db.selectFrom('blobs').select('id').where('digest', 'in', parsed.blobs).execute();
    await db.insertInto('manifest_blobs').values(blobs.map((b) => ({ manifest_id: manifestId, repository_id: repository.id, blob_id: b.id }))).execute();
    await db.insertInto('tags').values({ repository_id: repository.id, name: 'v1', manifest_id: manifestId, updated_at: now }).execute();
    const s1 = await repo.uploads.start();
    await repo.uploads.append(s1.id, Readable.from([pending]), { start: 0, length: pending.length });
    objectSession = s1.id;
    // An inline session as 0003 kept it: its bytes in the session row.
    const s2 = await repo.uploads.start();
    await engine.database.db.updateTable('uploads').set({ content: inlinePending, size: inlinePending.length }).where('id', '=', s2.id).execute();
    inlineSession = s2.id;
  } finally {
    await engine.registry.close();
  }

  const migrated = await runCli(['migrate', '--data-dir', data]);
  assert.equal(migrated.code, 0, migrated.stderr);
  assert.match(migrated.stdout, /applied: 0004_compact_tables/);

  // The rebuilt tables, and the foreign key from a manifest's blobs to the links still holds.
  const check = await openEngine({ dataDir: data, uploadTtlMs: 3_600_000, migrate: false });
  try {
    const tables = await sql<{ name: string; sql: string }>`select name, sql from sqlite_master where type = 'table'`.execute(check.database.db);
    for (const name of ['uploads', 'repository_blobs']) {
      assert.match(tables.rows.find((r) => r.name === name)?.sql ?? '', /without rowid/i, name);
    }
    const link = await check.database.db.selectFrom('manifest_blobs').select(['repository_id', 'blob_id']).executeTakeFirstOrThrow();
    await assert.rejects(
      check.database.db.deleteFrom('repository_blobs').where('repository_id', '=', link.repository_id).where('blob_id', '=', link.blob_id).execute(),
      /FOREIGN KEY/,
    );
  } finally {
    await check.registry.close();
  }

  const reg = await startRegistry({ dataDir: data, engineArgs: ['--data-dir', data] });
  try {
    const manifest = await fetch(`${reg.url}/v2/old/app/manifests/v1`, { headers: { accept: img.mediaType } });
    assert.equal(manifest.status, 200);
    assert.deepEqual(Buffer.from(await manifest.arrayBuffer()), img.manifest);
    for (const b of [img.config, ...img.layers]) {
      const res = await fetch(`${reg.url}/v2/old/app/blobs/${b.digest}`);
      assert.equal(res.status, 200, b.digest);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), b.bytes);
    }
    // Both unfinished sessions continue where they were.
    for (const [id, first] of [
      [objectSession, pending],
      [inlineSession, inlinePending],
    ] as const) {
      const rest = randomBytes(1000);
      const whole = blob(Buffer.concat([first, rest]));
      const put = await fetch(`${reg.url}/v2/old/app/blobs/uploads/${id}?digest=${whole.digest}`, {
        method: 'PUT',
        headers: { 'content-range': `${first.length}-${first.length + rest.length - 1}`, 'content-type': 'application/octet-stream' },
        body: rest,
      });
      assert.equal(put.status, 201, await put.text());
      const res = await fetch(`${reg.url}/v2/old/app/blobs/${whole.digest}`);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), whole.bytes);
    }
    // A manifest's layer still cannot be deleted from under it.
    assert.equal((await fetch(`${reg.url}/v2/old/app/blobs/${big.digest}`, { method: 'DELETE' })).status, 409);
  } finally {
    await reg.stop();
  }
  const fsck = await runCli(['fsck', '--full', '--json', '--data-dir', data]);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
});
