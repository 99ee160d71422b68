/**
 * The backend contract: every Registry implementation must pass this suite. It drives the
 * core interfaces directly (no HTTP), so a new backend can be checked before it is served.
 * It runs twice: with every blob in the object store, and with small blobs kept inline.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseDigest, type Digest } from '../../src/core/digest.js';
import { RegistryError } from '../../src/core/errors.js';
import { parseManifest } from '../../src/core/manifest.js';
import { parseReference, parseRepositoryName } from '../../src/core/names.js';
import type { Registry } from '../../src/core/interfaces.js';
import { blob, image, index, sha512 } from '../helpers/oci.js';
import { openTestEngine, streamOf } from './backend.js';

export function contractSuite(inlineBlobBytes: number): void {
  type Opened = Awaited<ReturnType<typeof openTestEngine>>;
  let engine: Opened;
  let registry: Registry;
  let counter = 0;

  const repo = (prefix = 'contract') => registry.repository(parseRepositoryName(`${prefix}/r${++counter}`));
  const d = (s: string): Digest => parseDigest(s);

  async function rejectsWith(promise: Promise<unknown>, status: number, code: string): Promise<void> {
    await assert.rejects(promise, (err: unknown) => {
      assert.ok(err instanceof RegistryError, `expected a RegistryError, got ${String(err)}`);
      assert.equal(err.status, status, err.message);
      assert.equal(err.code, code);
      return true;
    });
  }

  async function upload(r: ReturnType<typeof repo>, bytes: Buffer): Promise<Digest> {
    const b = blob(bytes);
    const s = await r.uploads.start();
    await r.uploads.complete(s.id, d(b.digest), streamOf(bytes), { length: bytes.length });
    return d(b.digest);
  }

  async function pushImage(r: ReturnType<typeof repo>, img = image(), tag?: string) {
    for (const b of [img.config, ...img.layers]) await upload(r, b.bytes);
    const parsed = parseManifest(img.manifest, img.mediaType);
    return r.manifests.put(parseReference(tag ?? img.digest), img.manifest, parsed);
  }

  async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  before(async () => {
    engine = await openTestEngine(inlineBlobBytes);
    registry = engine.registry;
  });
  after(async () => engine.dispose());

  describe('uploads', () => {
    test('chunked upload becomes a visible blob with the exact bytes', async () => {
      const r = repo();
      const bytes = randomBytes(300_000);
      const s = await r.uploads.start();
      assert.equal(s.offset, 0);
      let state = await r.uploads.append(s.id, streamOf(bytes.subarray(0, 100_000)), { start: 0, length: 100_000 });
      assert.equal(state.offset, 100_000);
      state = await r.uploads.append(s.id, streamOf(bytes.subarray(100_000, 250_000)), {});
      assert.equal(state.offset, 250_000);
      assert.equal((await r.uploads.get(s.id)).offset, 250_000);
      const info = await r.uploads.complete(s.id, d(blob(bytes).digest), streamOf(bytes.subarray(250_000)), { start: 250_000 });
      assert.equal(info.size, bytes.length);
      const handle = await r.blobs.open(info.digest);
      assert.ok(handle);
      assert.deepEqual(await readAll(await handle.read()), bytes);
      assert.deepEqual(await readAll(await handle.read({ start: 10, end: 19 })), bytes.subarray(10, 20));
      await rejectsWith(r.uploads.get(s.id), 404, 'BLOB_UPLOAD_UNKNOWN');
    });


    test('small chunks, then chunks that outgrow the inline limit, keep every byte in order', async () => {
      const r = repo();
      const small = randomBytes(1000);
      const big = randomBytes(100_000);
      const tail = randomBytes(70_000);
      const bytes = Buffer.concat([small, small, big, tail]);
      const s = await r.uploads.start();
      await r.uploads.append(s.id, streamOf(small), { start: 0, length: small.length });
      // Unknown length, many pieces: the part already read in memory goes first.
      await r.uploads.append(s.id, streamOf(small), {});
      let state = await r.uploads.append(s.id, streamOf(...Array.from({ length: 100 }, (_, i) => big.subarray(i * 1000, (i + 1) * 1000))), {});
      assert.equal(state.offset, 2000 + big.length);
      const info = await r.uploads.complete(s.id, d(blob(bytes).digest), streamOf(tail), { length: tail.length });
      assert.equal(info.size, bytes.length);
      const handle = await r.blobs.open(info.digest);
      assert.deepEqual(await readAll(await handle!.read()), bytes);
      const row = await engine.database.db.selectFrom('blobs').select('content').where('digest', '=', info.digest).executeTakeFirstOrThrow();
      assert.equal(row.content, null, 'a blob past the limit lives in the object store');

      // A declared length past the limit goes straight to the store, after the inline bytes.
      const r2 = repo();
      const s2 = await r2.uploads.start();
      await r2.uploads.append(s2.id, streamOf(small), {});
      state = await r2.uploads.append(s2.id, streamOf(big), { start: small.length, length: big.length });
      assert.equal(state.offset, small.length + big.length);
      const whole = Buffer.concat([small, big]);
      const info2 = await r2.uploads.complete(s2.id, d(blob(whole).digest), null, {});
      assert.deepEqual(await readAll(await (await r2.blobs.open(info2.digest))!.read({ start: 990, end: 1009 })), whole.subarray(990, 1010));
    });

    test('an inline blob serves ranges, and a zero-length blob is empty', async () => {
      const r = repo();
      const bytes = randomBytes(5000);
      const digest = await upload(r, bytes);
      const handle = await r.blobs.open(digest);
      assert.deepEqual(await readAll(await handle!.read({ start: 4990, end: 4999 })), bytes.subarray(4990));
      assert.deepEqual(await readAll(await handle!.read({ start: 0, end: 0 })), bytes.subarray(0, 1));
      const empty = await upload(r, Buffer.alloc(0));
      const eh = await r.blobs.open(empty);
      assert.equal(eh!.info.size, 0);
      assert.equal((await readAll(await eh!.read())).length, 0);
    });
    test('a chunk that does not start at the offset is 416 and the session stays usable', async () => {
      const r = repo();
      const s = await r.uploads.start();
      await r.uploads.append(s.id, streamOf('abc'), { start: 0 });
      await rejectsWith(r.uploads.append(s.id, streamOf('abc'), { start: 0 }), 416, 'RANGE_INVALID');
      await rejectsWith(r.uploads.append(s.id, streamOf('zzz'), { start: 7 }), 416, 'RANGE_INVALID');
      const info = await r.uploads.complete(s.id, d(blob('abcdef').digest), streamOf('def'), { start: 3 });
      assert.equal(info.size, 6);
    });

    test('two concurrent appends to one session: exactly one wins', async () => {
      const r = repo();
      const s = await r.uploads.start();
      const results = await Promise.allSettled([
        r.uploads.append(s.id, streamOf(randomBytes(200_000)), { start: 0 }),
        r.uploads.append(s.id, streamOf(randomBytes(200_000)), { start: 0 }),
      ]);
      assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1);
      const rejected = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
      assert.equal((rejected.reason as RegistryError).status, 416);
      assert.equal((await r.uploads.get(s.id)).offset, 200_000);
    });

    test('two concurrent small appends, or completions, of one session: exactly one wins', async () => {
      const r = repo();
      const s = await r.uploads.start();
      const chunks = [randomBytes(1000), randomBytes(1000)];
      const results = await Promise.allSettled(chunks.map((c) => r.uploads.append(s.id, streamOf(c), { start: 0, length: c.length })));
      assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1);
      assert.equal(((results.find((x) => x.status === 'rejected') as PromiseRejectedResult).reason as RegistryError).status, 416);
      assert.equal((await r.uploads.get(s.id)).offset, 1000);
      const first = chunks[results.findIndex((x) => x.status === 'fulfilled')]!;
      const tails = [randomBytes(500), randomBytes(500)];
      const done = await Promise.allSettled(
        tails.map((t) => r.uploads.complete(s.id, d(blob(Buffer.concat([first, t])).digest), streamOf(t), { start: 1000, length: t.length })),
      );
      assert.equal(done.filter((x) => x.status === 'fulfilled').length, 1);
      const winner = tails[done.findIndex((x) => x.status === 'fulfilled')]!;
      const lost = (done.find((x) => x.status === 'rejected') as PromiseRejectedResult).reason as RegistryError;
      assert.ok(lost.status === 416 || lost.status === 404, String(lost));
      const handle = await r.blobs.open(d(blob(Buffer.concat([first, winner])).digest));
      assert.deepEqual(await readAll(await handle!.read()), Buffer.concat([first, winner]));
    });

    test('a digest mismatch is DIGEST_INVALID and nothing becomes visible', async () => {
      const r = repo();
      const s = await r.uploads.start();
      const wrong = d(blob('other').digest);
      await rejectsWith(r.uploads.complete(s.id, wrong, streamOf('content'), {}), 400, 'DIGEST_INVALID');
      assert.equal(await r.blobs.stat(wrong), null);
      assert.equal(await r.blobs.stat(d(blob('content').digest)), null);
    });

    test('sha512 digests are verified', async () => {
      const r = repo();
      const s = await r.uploads.start();
      await r.uploads.append(s.id, streamOf('sha'), {});
      const info = await r.uploads.complete(s.id, d(sha512('sha512 content')), streamOf(' content'.replace(' content', '512 content')), {});
      assert.equal(info.digest, sha512('sha512 content'));
      assert.ok(await r.blobs.stat(info.digest));
    });

    test('a declared length that the body does not meet is refused', async () => {
      const r = repo();
      const s = await r.uploads.start();
      await assert.rejects(r.uploads.append(s.id, streamOf('abc'), { length: 10 }), RegistryError);
      assert.equal((await r.uploads.get(s.id)).offset, 0);
    });

    test('a blob over the size limit is 413 and leaves the session where it was', async () => {
      const r = repo();
      const s = await r.uploads.start();
      await rejectsWith(r.uploads.append(s.id, streamOf(randomBytes(9 * 1024 * 1024)), {}), 413, 'SIZE_INVALID');
      assert.equal((await r.uploads.get(s.id)).offset, 0);
    });

    test('cancel ends the session; expiry reclaims idle sessions', async () => {
      const r = repo();
      const a = await r.uploads.start();
      await r.uploads.cancel(a.id);
      await rejectsWith(r.uploads.get(a.id), 404, 'BLOB_UPLOAD_UNKNOWN');
      const b = await r.uploads.start();
      await r.uploads.append(b.id, streamOf('pending'), {});
      const expired = await registry.expireUploads(new Date(Date.now() + 120_000));
      assert.ok(expired >= 1);
      await rejectsWith(r.uploads.get(b.id), 404, 'BLOB_UPLOAD_UNKNOWN');
    });

    test('the same content uploaded twice at once is stored once and visible in both repositories', async () => {
      const r1 = repo();
      const r2 = repo();
      const bytes = randomBytes(50_000);
      const [a, b] = await Promise.all([upload(r1, bytes), upload(r2, bytes)]);
      assert.equal(a, b);
      assert.ok(await r1.blobs.stat(a));
      assert.ok(await r2.blobs.stat(a));
      const rows = await engine.database.db.selectFrom('blobs').select(['object_key', 'content']).where('digest', '=', a).execute();
      assert.equal(rows.length, 1);
      const inline = bytes.length <= inlineBlobBytes;
      assert.deepEqual(rows[0]!.content, inline ? bytes : null);
      let objects = 0;
      for await (const o of engine.objects.list('blobs/')) if (o.size === bytes.length) objects++;
      assert.equal(objects, inline ? 0 : 1, 'an inline blob has no object; a stored one has exactly one');
    });
  });

  describe('blobs from local files', () => {
    let dir: string;
    before(async () => {
      // In the spool directory where there is one: the file store links from there.
      const base = registry.spoolDirectory ?? tmpdir();
      await mkdir(base, { recursive: true });
      dir = await mkdtemp(join(base, 'contract-'));
    });
    after(async () => rm(dir, { recursive: true, force: true }));

    async function objectCount(): Promise<number> {
      let found = 0;
      for await (const _ of engine.objects.list('blobs/')) found++;
      return found;
    }
    const sessionCount = async () => (await engine.database.db.selectFrom('uploads').select('id').execute()).length;

    test('putFile makes the file a visible blob, leaves the file, and stores the same content once', async () => {
      const r1 = repo();
      const r2 = repo();
      const sessions = await sessionCount();
      for (const size of [0, 3000, 300_000]) {
        const objects = await objectCount();
        const bytes = randomBytes(size);
        const digest = d(blob(bytes).digest);
        // The empty blob may be stored already by an earlier test: then no object is added.
        const existed = (await engine.database.db.selectFrom('blobs').select('id').where('digest', '=', digest).execute()).length > 0;
        const path = join(dir, `file-${size}`);
        await writeFile(path, bytes);
        const [a, b] = await Promise.all([r1.uploads.putFile(digest, path, size), r2.uploads.putFile(digest, path, size)]);
        assert.deepEqual(a, { digest, size });
        assert.deepEqual(b, { digest, size });
        assert.deepEqual(await readFile(path), bytes, 'the caller removes its file');
        for (const r of [r1, r2]) {
          const handle = await r.blobs.open(digest);
          assert.ok(handle);
          assert.equal(handle.info.size, size);
          assert.deepEqual(await readAll(await handle.read()), bytes);
        }
        const rows = await engine.database.db.selectFrom('blobs').select(['content']).where('digest', '=', digest).execute();
        assert.equal(rows.length, 1);
        await rm(path);
        // The file is gone; the blob is not (a link or a copy of it, never the file itself).
        const again = await r1.blobs.open(digest);
        assert.deepEqual(await readAll(await again!.read()), bytes);
        const inline = inlineBlobBytes > 0 && size <= inlineBlobBytes;
        assert.equal(await objectCount(), objects + (inline || existed ? 0 : 1), 'one object for a stored blob (the duplicate is deleted), none for an inline one');
      }
      assert.equal(await sessionCount(), sessions, 'no upload session is left behind');
    });

    test('putFile of a file with another size than declared stores nothing', async () => {
      const r = repo();
      const bytes = randomBytes(200_000);
      const digest = d(blob(bytes).digest);
      const path = join(dir, 'short');
      await writeFile(path, bytes.subarray(0, 150_000));
      const objects = await objectCount();
      const sessions = await sessionCount();
      await assert.rejects(r.uploads.putFile(digest, path, bytes.length));
      assert.equal(await r.blobs.stat(digest), null);
      assert.equal(await objectCount(), objects, 'the partial object is removed');
      assert.equal(await sessionCount(), sessions, 'the session is cancelled');
    });
  });

  describe('blobs', () => {
    test('blobs are scoped per repository until mounted', async () => {
      const r1 = repo();
      const r2 = repo();
      const digest = await upload(r1, randomBytes(1000));
      assert.equal(await r2.blobs.stat(digest), null);
      assert.equal(await r2.blobs.mount(digest, parseRepositoryName('contract/nowhere')), null);
      const mounted = await r2.blobs.mount(digest, r1.name);
      assert.equal(mounted?.size, 1000);
      assert.ok(await r2.blobs.stat(digest));
      const r3 = repo();
      assert.ok(await r3.blobs.mount(digest, null), 'a mount without from finds the blob anywhere');
      assert.equal(await r3.blobs.mount(d(blob('absent').digest), null), null);
    });

    test('delete unlinks from one repository only, and refuses while a manifest uses the blob', async () => {
      const r1 = repo();
      const img = image();
      await pushImage(r1, img);
      const r2 = repo();
      await r2.blobs.mount(d(img.layers[0]!.digest), r1.name);
      await rejectsWith(r1.blobs.delete(d(img.layers[0]!.digest)), 409, 'BLOB_REFERENCED');
      await r2.blobs.delete(d(img.layers[0]!.digest));
      assert.equal(await r2.blobs.stat(d(img.layers[0]!.digest)), null);
      assert.ok(await r1.blobs.stat(d(img.layers[0]!.digest)));
      await rejectsWith(r2.blobs.delete(d(img.layers[0]!.digest)), 404, 'BLOB_UNKNOWN');
    });
  });

  describe('manifests', () => {
    test('put, get and head by tag and digest; bytes verbatim', async () => {
      const r = repo();
      const img = image();
      const result = await pushImage(r, img, 'v1');
      assert.equal(result.digest, img.digest);
      const byTag = await r.manifests.get(parseReference('v1'));
      assert.deepEqual(byTag?.bytes, img.manifest);
      assert.equal(byTag?.mediaType, img.mediaType);
      const head = await r.manifests.head(parseReference(img.digest));
      assert.deepEqual(head, { digest: img.digest, mediaType: img.mediaType, size: img.manifest.length });
    });

    test('a missing blob or child is MANIFEST_BLOB_UNKNOWN and nothing is stored', async () => {
      const r = repo();
      const img = image();
      await upload(r, img.config.bytes);
      await rejectsWith(r.manifests.put(parseReference('t'), img.manifest, parseManifest(img.manifest, img.mediaType)), 400, 'MANIFEST_BLOB_UNKNOWN');
      assert.equal(await r.manifests.head(parseReference(img.digest)), null);
      const idx = index([{ digest: img.digest, size: img.manifest.length, mediaType: img.mediaType }]);
      await rejectsWith(r.manifests.put(parseReference('i'), idx.manifest, parseManifest(idx.manifest, idx.mediaType)), 400, 'MANIFEST_BLOB_UNKNOWN');
    });

    test('a manifest of more blobs than one statement binds: stored whole, or refused for the one blob missing', async () => {
      const r = repo();
      // 1,201 layers: three slices of the backend's IN lists and multi-row inserts.
      const layers = Array.from({ length: 1201 }, (_, i) => blob(`layer ${i} ${randomBytes(4).toString('hex')}`));
      const missing = layers[700]!;
      const img = image({ layers });
      await upload(r, img.config.bytes);
      for (const l of layers) if (l !== missing) await upload(r, l.bytes);
      await rejectsWith(r.manifests.put(parseReference('big'), img.manifest, parseManifest(img.manifest, img.mediaType)), 400, 'MANIFEST_BLOB_UNKNOWN');
      assert.equal(await r.manifests.head(parseReference('big')), null);
      await upload(r, missing.bytes);
      await r.manifests.put(parseReference('big'), img.manifest, parseManifest(img.manifest, img.mediaType));
      assert.deepEqual((await r.manifests.get(parseReference('big')))?.bytes, img.manifest);
      // Every layer is now referenced: none can be deleted from the repository.
      await rejectsWith(r.blobs.delete(d(layers[1200]!.digest)), 409, 'BLOB_REFERENCED');
      await rejectsWith(r.blobs.delete(d(missing.digest)), 409, 'BLOB_REFERENCED');
    });

    test('index children cannot be deleted while the index exists; deleting by digest removes tags', async () => {
      const r = repo();
      const a = image();
      const b = image();
      await pushImage(r, a);
      await pushImage(r, b);
      const idx = index([
        { digest: a.digest, size: a.manifest.length, mediaType: a.mediaType },
        { digest: b.digest, size: b.manifest.length, mediaType: b.mediaType },
      ]);
      await r.manifests.put(parseReference('multi'), idx.manifest, parseManifest(idx.manifest, idx.mediaType));
      await rejectsWith(r.manifests.delete(parseReference(a.digest)), 409, 'MANIFEST_REFERENCED');
      await r.manifests.put(parseReference('alias'), idx.manifest, parseManifest(idx.manifest, idx.mediaType));
      await r.manifests.delete(parseReference('alias'));
      assert.ok(await r.manifests.head(parseReference('multi')));
      await r.manifests.delete(parseReference(idx.digest));
      assert.equal(await r.manifests.head(parseReference('multi')), null);
      await r.manifests.delete(parseReference(a.digest));
      await rejectsWith(r.manifests.delete(parseReference(a.digest)), 404, 'MANIFEST_UNKNOWN');
    });

    test('tags move and list in byte order with paging', async () => {
      const r = repo();
      const a = image();
      const b = image();
      await pushImage(r, a, 'latest');
      await pushImage(r, b, 'latest');
      assert.equal((await r.manifests.head(parseReference('latest')))?.digest, b.digest);
      const names = ['b', 'B', 'a', 'A', '1.0', '_x', 'latest'];
      for (const t of names) await r.manifests.put(parseReference(t), a.manifest, parseManifest(a.manifest, a.mediaType));
      const sorted = [...new Set(names)].sort((x, y) => (Buffer.compare(Buffer.from(x), Buffer.from(y))));
      assert.deepEqual((await r.tags({}))?.items, sorted);
      const first = await r.tags({ n: 3 });
      assert.deepEqual(first, { items: sorted.slice(0, 3), more: true });
      assert.deepEqual(await r.tags({ n: 100, last: sorted[2] }), { items: sorted.slice(3), more: false });
      assert.equal(await repo('never').tags({}), null);
    });

    test('referrers by subject and artifact type, before and after the subject exists', async () => {
      const r = repo();
      const subject = image();
      const sig = image({ artifactType: 'application/vnd.example.sig', subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.manifest.length }, annotations: { k: 'v' } });
      const sbom = image({ configMediaType: 'application/vnd.example.sbom', subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.manifest.length } });
      const put = await pushImage(r, sig);
      assert.equal(put.subject, subject.digest);
      await pushImage(r, sbom);
      await pushImage(r, subject);
      const all = await r.manifests.referrers(d(subject.digest));
      assert.equal(all.length, 2);
      const sigEntry = all.find((x) => x.digest === sig.digest);
      assert.deepEqual(sigEntry, { mediaType: sig.mediaType, digest: sig.digest, size: sig.manifest.length, artifactType: 'application/vnd.example.sig', annotations: { k: 'v' } });
      assert.equal(all.find((x) => x.digest === sbom.digest)?.artifactType, 'application/vnd.example.sbom');
      const filtered = await r.manifests.referrers(d(subject.digest), 'application/vnd.example.sbom');
      assert.deepEqual(filtered.map((x) => x.digest), [sbom.digest]);
      await r.manifests.delete(parseReference(sig.digest));
      assert.equal((await r.manifests.referrers(d(subject.digest))).length, 1);
    });
  });

  describe('catalog', () => {
    test('lists repositories in byte order with paging', async () => {
      const names = ['zcat/b', 'zcat/a', 'zcat/a/b', 'zcat/a-b'];
      for (const n of names) await upload(registry.repository(parseRepositoryName(n)), randomBytes(10));
      // A repository that only ever saw an upload session holds nothing and is not listed.
      await registry.repository(parseRepositoryName('zcat/empty')).uploads.start();
      const all: string[] = [];
      let last: string | undefined;
      for (;;) {
        const page = await registry.catalog({ n: 2, last });
        all.push(...page.items);
        if (!page.more) break;
        last = page.items[page.items.length - 1];
      }
      const expected = [...all].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      assert.deepEqual(all, expected);
      for (const n of names) assert.ok(all.includes(n), n);
      assert.ok(!all.includes('zcat/empty'));
    });

    test('a filter narrows the listing to exact names and name prefixes, and n counts what it lets through', async () => {
      const names = ['zf/a', 'zf/ab', 'zf/b', 'zf/b/c', 'zfa', 'zf_x/1', 'zf-x', 'zg/a', 'zh'];
      for (const n of names) await upload(registry.repository(parseRepositoryName(n)), randomBytes(10));
      await registry.repository(parseRepositoryName('zf/empty')).uploads.start();
      const list = async (filter: { names: string[]; prefixes: string[] }, n: number): Promise<string[][]> => {
        const pages: string[][] = [];
        let last: string | undefined;
        for (;;) {
          const page = await registry.catalog(last === undefined ? { n } : { n, last }, filter);
          pages.push(page.items);
          if (!page.more) return pages;
          last = page.items[page.items.length - 1];
          assert.ok(pages.length < 50, 'paging ends');
        }
      };
      // `_` is literal here, never wildcards; a prefix ends where it says.
      const filter = { names: ['zh', 'zf/b', 'nowhere'], prefixes: ['zf/a', 'zf_'] };
      assert.deepEqual((await list(filter, 100)).flat(), ['zf/a', 'zf/ab', 'zf/b', 'zf_x/1', 'zh']);
      const pages = await list(filter, 2);
      assert.deepEqual(pages, [['zf/a', 'zf/ab'], ['zf/b', 'zf_x/1'], ['zh']]);
      assert.deepEqual((await registry.catalog({ n: 10, last: 'zf/ab' }, filter)).items, ['zf/b', 'zf_x/1', 'zh']);
      assert.deepEqual((await list({ names: [], prefixes: ['zf/'] }, 100)).flat(), ['zf/a', 'zf/ab', 'zf/b', 'zf/b/c'], 'an empty session is not listed');
      assert.deepEqual((await list({ names: [], prefixes: [] }, 100)).flat(), [], 'an empty filter lets nothing through');
      const everything = (await list({ names: [], prefixes: [''] }, 1000)).flat();
      for (const n of ['zf/a', 'zg/a', 'zh', 'zfa']) assert.ok(everything.includes(n), `the empty prefix lets ${n} through`);
    });
  });
}
