/**
 * S3ObjectStore against a real S3 server: radosgw from scripts/s3-server.sh by default
 * (http://127.0.0.1:9380, testkey/testsecret, bucket portfolio-test), or whatever the standard
 * AWS_* variables and PORTFOLIO_TEST_S3_BUCKET name. Skipped when the endpoint does not answer,
 * except in CI (CI=true), where that is a failure.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';
import { AbortMultipartUploadCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  createS3ObjectStore,
  ensureBucket,
  s3ClientConfig,
  type S3ObjectStore,
} from '../../src/backends/objects/s3-store.js';

process.env.AWS_ENDPOINT_URL_S3 ??= 'http://127.0.0.1:9380';
process.env.AWS_ACCESS_KEY_ID ??= 'testkey';
process.env.AWS_SECRET_ACCESS_KEY ??= 'testsecret';
process.env.AWS_REGION ??= 'us-east-1';
const BUCKET = process.env.PORTFOLIO_TEST_S3_BUCKET ?? 'portfolio-test';
/** Everything this run writes lives under this prefix. */
const RUN = `test-objects/${randomUUID()}`;
const KiB = 1024;
const MiB = 1024 * KiB;

const reachable = await new Promise<boolean>((resolve) => {
  const endpoint = new URL(process.env.AWS_ENDPOINT_URL_S3!);
  const socket = net.connect({ host: endpoint.hostname, port: Number(endpoint.port || (endpoint.protocol === 'https:' ? 443 : 80)), timeout: 1000 });
  socket.once('connect', () => {
    socket.destroy();
    resolve(true);
  });
  socket.once('error', () => resolve(false));
  socket.once('timeout', () => {
    socket.destroy();
    resolve(false);
  });
});

let store: S3ObjectStore;
let raw: S3Client;

before(async () => {
  if (!reachable) {
    if (process.env.CI === 'true') throw new Error(`S3 endpoint ${process.env.AWS_ENDPOINT_URL_S3} not reachable (required in CI)`);
    return;
  }
  await ensureBucket(`s3://${BUCKET}`);
  store = await createS3ObjectStore(`s3://${BUCKET}/${RUN}`);
  raw = new S3Client(s3ClientConfig());
});

after(async () => {
  if (!reachable) return;
  // Leave nothing behind, whatever the tests did.
  for (;;) {
    const page = await raw.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${RUN}/` }));
    const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length === 0) break;
    await raw.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys, Quiet: true } }));
  }
  for (const upload of await multipartUploads(`${RUN}/`)) {
    await raw.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: upload.key, UploadId: upload.id }));
  }
  await store.close();
  raw.destroy();
});

function s3test(name: string, fn: (t: TestContext) => Promise<void>): void {
  test(name, async (t) => {
    if (!reachable) {
      t.skip('S3 not reachable');
      return;
    }
    await fn(t);
  });
}

// ---- helpers ---------------------------------------------------------------------------------

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A stream of `data` in chunks of `chunk` bytes, produced lazily like a request body. */
function bodyOf(data: Buffer, chunk = 64 * KiB): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
    })(),
    { objectMode: false },
  );
}

/** A body that sends `data` and then fails, like a client that disconnects mid-chunk. */
function failingBody(data: Buffer, chunk = 64 * KiB): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw Object.assign(new Error('client went away'), { code: 'ECONNRESET' });
    })(),
    { objectMode: false },
  );
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function keyFor(name: string): string {
  return `blobs/${name}-${randomUUID()}`;
}

interface Upload {
  key: string;
  state: string;
  size: number;
  sent: Buffer[];
}

async function begin(name: string): Promise<Upload> {
  const key = keyFor(name);
  return { key, state: await store.beginUpload(key), size: 0, sent: [] };
}

async function append(upload: Upload, data: Buffer, chunk?: number): Promise<void> {
  const result = await store.appendUpload(upload.key, upload.state, upload.size, bodyOf(data, chunk));
  assert.equal(result.size, upload.size + data.length);
  upload.state = result.state;
  upload.size = result.size;
  upload.sent.push(data);
}

async function assertReadUpload(upload: Upload): Promise<void> {
  const got = await collect(await store.readUpload(upload.key, upload.state, upload.size));
  const want = Buffer.concat(upload.sent);
  assert.equal(got.length, want.length, 'readUpload length');
  assert.ok(got.equals(want), 'readUpload returns exactly the bytes so far');
}

/** Completes the upload and checks the object's bytes, digest and that no staging is left. */
async function completeAndVerify(upload: Upload): Promise<void> {
  await store.completeUpload(upload.key, upload.state, upload.size);
  const want = Buffer.concat(upload.sent);
  const info = await store.stat(upload.key);
  assert.equal(info?.size, want.length);
  const got = await collect(await store.read(upload.key));
  assert.equal(got.length, want.length);
  assert.equal(sha256(got), sha256(want));
  assert.deepEqual(await stagingObjects(upload.key), [], 'no staging objects remain');
  assert.deepEqual(await multipartUploads(`${RUN}/`), [], 'no multipart uploads remain');
}

/** Every raw S3 key of the upload's staging folder. */
async function stagingObjects(key: string): Promise<string[]> {
  const page = await raw.send(
    new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${RUN}/.staging/${Buffer.from(key).toString('base64url')}/` }),
  );
  return (page.Contents ?? []).map((o) => o.Key!);
}

async function multipartUploads(prefix: string): Promise<{ key: string; id: string }[]> {
  const page = await raw.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
  return (page.Uploads ?? []).map((u) => ({ key: u.Key!, id: u.UploadId! }));
}

function segments(state: string): number {
  return (JSON.parse(state) as { s: unknown[] }).s.length;
}

// ---- tests -----------------------------------------------------------------------------------

s3test('factory: a missing bucket is a readable one-line error', async () => {
  await assert.rejects(createS3ObjectStore(`s3://portfolio-missing-${randomUUID().slice(0, 8)}/x`), (err: Error) => {
    assert.match(err.message, /^S3 bucket "portfolio-missing-[0-9a-f]+" does not exist/);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
});

s3test('factory: an unreachable endpoint is a readable one-line error', async () => {
  await assert.rejects(
    createS3ObjectStore(`s3://${BUCKET}`, { client: { endpoint: 'http://127.0.0.1:9', maxAttempts: 1 } }),
    (err: Error) => {
      assert.match(err.message, /^cannot reach S3 bucket "[^"]+" \(s3:\/\/\S+ at http:\/\/127\.0\.0\.1:9\): .*ECONNREFUSED/);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    },
  );
});

s3test('factory: rejects malformed URLs', async () => {
  await assert.rejects(createS3ObjectStore('file:///tmp/x'), /invalid S3 storage URL/);
  await assert.rejects(createS3ObjectStore('s3://'), /invalid S3 storage URL/);
});

s3test('upload of 0 bytes, and empty appends change nothing', async () => {
  const upload = await begin('empty');
  const again = await store.appendUpload(upload.key, upload.state, 0, bodyOf(Buffer.alloc(0)));
  assert.deepEqual(again, { state: upload.state, size: 0 });
  await assertReadUpload(upload);
  await completeAndVerify(upload);
  assert.equal((await store.stat(upload.key))?.size, 0);
});

s3test('upload of 1 KiB', async () => {
  const upload = await begin('one-kib');
  await append(upload, randomBytes(KiB));
  await assertReadUpload(upload);
  await completeAndVerify(upload);
});

s3test('upload of many 1 KiB appends keeps a short state', async () => {
  const upload = await begin('many-kib');
  let most = 0;
  for (let i = 0; i < 200; i++) {
    await append(upload, randomBytes(KiB));
    most = Math.max(most, segments(upload.state));
    if (i % 50 === 49) await assertReadUpload(upload);
  }
  // Size-tiered merging: about log2(appends) segments, not one per append.
  assert.ok(most <= 10, `at most 10 segments, saw ${most}`);
  assert.ok(upload.state.length < 400, `state stays compact (${upload.state.length} chars)`);
  await completeAndVerify(upload);
});

s3test('upload of 256 KiB appends crossing the 5 MiB part minimum', async () => {
  const upload = await begin('quarter-mib');
  for (let i = 0; i < 26; i++) await append(upload, randomBytes(256 * KiB));
  await assertReadUpload(upload);
  await completeAndVerify(upload);
});

s3test('upload of 20 MiB in one streamed append, then ranged reads', async () => {
  const upload = await begin('twenty');
  await append(upload, randomBytes(20 * MiB), 16 * KiB + 3);
  assert.equal(segments(upload.state), 1);
  await assertReadUpload(upload);
  await completeAndVerify(upload);

  const data = Buffer.concat(upload.sent);
  for (const [start, end] of [
    [0, 0],
    [0, 99],
    [8 * MiB - 10, 8 * MiB + 10],
    [16 * MiB - 1, 16 * MiB],
    [12345, 12345 + 3 * MiB],
    [data.length - 1, data.length - 1],
    [data.length - 1000, data.length - 1],
  ] as const) {
    const got = await collect(await store.read(upload.key, { start, end }));
    assert.ok(got.equals(data.subarray(start, end + 1)), `range ${start}-${end}`);
  }
});

s3test('upload of mixed appends starting small: 3 MiB, 1 KiB, 7 MiB, 1 B, 9 MiB, 5 MiB, 2 MiB', async () => {
  const upload = await begin('mixed-small-first');
  for (const size of [3 * MiB, KiB, 7 * MiB, 1, 9 * MiB, 5 * MiB, 2 * MiB]) {
    await append(upload, randomBytes(size));
    await assertReadUpload(upload);
  }
  await completeAndVerify(upload);
});

s3test('upload of mixed appends starting big: 6 MiB, 1 KiB, 1 KiB, 8 MiB + 1, 3 MiB, 1 KiB', async () => {
  const upload = await begin('mixed-big-first');
  for (const size of [6 * MiB, KiB, KiB, 8 * MiB + 1, 3 * MiB, KiB]) {
    await append(upload, randomBytes(size));
  }
  await assertReadUpload(upload);
  await completeAndVerify(upload);
});

s3test('upload of 8 MiB chunks (docker-style chunked push)', async () => {
  const upload = await begin('chunked');
  for (let i = 0; i < 4; i++) await append(upload, randomBytes(8 * MiB));
  await append(upload, randomBytes(300 * KiB));
  await assertReadUpload(upload);
  await completeAndVerify(upload);
});

s3test('upload of one small segment after a big one completes by copy', async () => {
  const upload = await begin('small-then-big');
  await append(upload, randomBytes(2 * MiB));
  await append(upload, randomBytes(4 * MiB));
  assert.equal(segments(upload.state), 1, 'the small first segment was merged');
  await completeAndVerify(upload);
});

s3test('an append longer than S3 allows in one multipart upload goes on in new objects', async () => {
  // With 2 parts of 5 MiB per multipart upload, 23 MiB (sent as one 23 MiB chunk) needs three.
  const limited = await createS3ObjectStore(`s3://${BUCKET}/${RUN}`, { partSize: 5 * MiB, maxParts: 2 });
  try {
    const key = keyFor('rollover');
    const upload: Upload = { key, state: await limited.beginUpload(key), size: 0, sent: [] };
    const data = randomBytes(23 * MiB);
    const first = await limited.appendUpload(key, upload.state, 0, bodyOf(data, data.length));
    Object.assign(upload, first, { sent: [data] });
    assert.deepEqual(
      (JSON.parse(upload.state) as { s: [string, number][] }).s.map(([, size]) => size),
      [10 * MiB, 10 * MiB, 3 * MiB],
    );
    await append(upload, randomBytes(KiB));
    await assertReadUpload(upload);
    await completeAndVerify(upload);
  } finally {
    await limited.close();
  }
});

s3test('a failed append leaves the previous state usable', async () => {
  const upload = await begin('failing');
  // The first append fails after two parts went out to a multipart upload at the key.
  await assert.rejects(store.appendUpload(upload.key, upload.state, 0, failingBody(randomBytes(17 * MiB))), /client went away/);
  assert.deepEqual(await multipartUploads(`${RUN}/${upload.key}`), [], 'the failed multipart upload was aborted');
  await assertReadUpload(upload);

  await append(upload, randomBytes(3 * MiB));
  const before = upload.state;
  // A later append fails while small, then after parts went out, then a retry succeeds.
  await assert.rejects(store.appendUpload(upload.key, upload.state, upload.size, failingBody(randomBytes(KiB))), /client went away/);
  await assert.rejects(store.appendUpload(upload.key, upload.state, upload.size, failingBody(randomBytes(20 * MiB))), /client went away/);
  assert.equal(upload.state, before);
  await assertReadUpload(upload);
  await append(upload, randomBytes(9 * MiB));
  await assertReadUpload(upload);

  // An append whose offset is not the state's size is refused.
  await assert.rejects(store.appendUpload(upload.key, upload.state, upload.size - 1, bodyOf(randomBytes(10))), /offset/);
  await completeAndVerify(upload);
});

s3test('a successful append whose state was never saved does not disturb the saved one', async () => {
  const upload = await begin('lost-state');
  await append(upload, randomBytes(6 * MiB));
  const saved = { ...upload, sent: [...upload.sent] };
  // This append's result is "lost" (the metadata did not commit it); the client retries.
  await store.appendUpload(upload.key, upload.state, upload.size, bodyOf(randomBytes(2 * MiB)));
  await append(saved, randomBytes(7 * MiB));
  await assertReadUpload(saved);
  await completeAndVerify(saved);
});

s3test('completing the same state twice is a no-op the second time', async () => {
  const upload = await begin('twice');
  await append(upload, randomBytes(6 * MiB));
  await append(upload, randomBytes(KiB));
  await completeAndVerify(upload);
  await completeAndVerify(upload);
});

s3test('abort removes every object of the upload', async () => {
  const upload = await begin('abort');
  await append(upload, randomBytes(6 * MiB));
  await append(upload, randomBytes(KiB));
  await append(upload, randomBytes(9 * MiB));
  await append(upload, randomBytes(KiB));
  // And a multipart upload left behind by a crashed append.
  const crashed = store.appendUpload(upload.key, upload.state, upload.size, failingBody(randomBytes(12 * MiB)));
  await assert.rejects(crashed);
  assert.ok((await stagingObjects(upload.key)).length > 0);
  assert.ok(await store.stat(upload.key));

  await store.abortUpload(upload.key, upload.state);
  assert.equal(await store.stat(upload.key), null);
  assert.deepEqual(await stagingObjects(upload.key), []);
  const page = await raw.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${RUN}/` }));
  assert.deepEqual(
    (page.Contents ?? []).map((o) => o.Key!).filter((k) => k.includes(upload.key) || k.includes(Buffer.from(upload.key).toString('base64url'))),
    [],
  );
  assert.deepEqual(await multipartUploads(`${RUN}/`), []);
  await store.abortUpload(upload.key, upload.state);
});

/** A complete object of `data` at a new key. */
async function stored(name: string, data: Buffer): Promise<string> {
  const upload = await begin(name);
  if (data.length > 0) await append(upload, data);
  await store.completeUpload(upload.key, upload.state, upload.size);
  return upload.key;
}

/**
 * A sink that takes its time, and reads each chunk only when it is about to acknowledge it: a
 * buffer reused before its write was acknowledged shows up as wrong bytes.
 */
function slowSink(): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 64 * KiB,
    write(chunk: Buffer, _encoding, done) {
      setTimeout(() => {
        chunks.push(Buffer.from(chunk));
        done();
      }, 1);
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

s3test('reads over a plain socket: whole, ranged and empty objects, streamed or sent to a slow sink', async () => {
  const data = randomBytes(3 * MiB + 1);
  const key = await stored('direct', data);
  const whole = await store.read(key);
  assert.equal(typeof whole.sendTo, 'function', 'an http:// endpoint is read over a plain socket, not through the SDK');
  assert.ok((await collect(whole)).equals(data), 'streamed');

  const sent = slowSink();
  await (await store.read(key)).sendTo!(sent.sink);
  assert.ok(sent.sink.writableFinished, 'the sink was ended');
  assert.ok(sent.bytes().equals(data), 'sent through reused buffers, none overwritten while a write held it');

  for (const [start, end] of [
    [0, 0],
    [1, 256 * KiB],
    [MiB - 7, 2 * MiB + 7],
    [data.length - 1, data.length - 1],
  ] as const) {
    assert.ok((await collect(await store.read(key, { start, end }))).equals(data.subarray(start, end + 1)), `streamed range ${start}-${end}`);
    const part = slowSink();
    await (await store.read(key, { start, end })).sendTo!(part.sink);
    assert.ok(part.bytes().equals(data.subarray(start, end + 1)), `sent range ${start}-${end}`);
  }

  const empty = await stored('direct-empty', Buffer.alloc(0));
  assert.equal((await collect(await store.read(empty))).length, 0);
  const none = slowSink();
  await (await store.read(empty)).sendTo!(none.sink);
  assert.ok(none.sink.writableFinished && none.bytes().length === 0);
});

s3test('direct reads running at once each get their own bytes', async () => {
  const objects = await Promise.all(
    Array.from({ length: 4 }, async (_, i) => {
      const data = randomBytes(MiB + i * 4097);
      return { data, key: await stored(`direct-many-${i}`, data) };
    }),
  );
  await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const { data, key } = objects[i % objects.length]!;
      const sink = slowSink();
      await (await store.read(key)).sendTo!(sink.sink);
      assert.ok(sink.bytes().equals(data), `read ${i}`);
    }),
  );
});

s3test('direct reads reuse a presigned URL per key, and sign anew once it fails', async () => {
  const reuse = await createS3ObjectStore(`s3://${BUCKET}/${RUN}`);
  try {
    let signed = 0;
    const presign = reuse.presignRead.bind(reuse);
    reuse.presignRead = (key, seconds) => {
      signed++;
      return presign(key, seconds);
    };
    const first = randomBytes(300 * KiB);
    const key = keyFor('direct-reuse');
    const put = async (data: Buffer) => {
      const { state } = await reuse.appendUpload(key, await reuse.beginUpload(key), 0, bodyOf(data));
      await reuse.completeUpload(key, state, data.length);
    };
    await put(first);
    assert.ok((await collect(await reuse.read(key))).equals(first));
    assert.ok((await collect(await reuse.read(key, { start: 10, end: 20 }))).equals(first.subarray(10, 21)));
    assert.equal(signed, 1, 'the second read of the key reused the first one\'s URL');

    // Gone: the kept URL is refused, the SDK reports the missing object, and the URL is dropped.
    await raw.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: `${RUN}/${key}` }] } }));
    await assert.rejects(reuse.read(key), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
    const second = randomBytes(200 * KiB);
    await put(second);
    assert.ok((await collect(await reuse.read(key))).equals(second), 'the new object, through a new URL');
    assert.equal(signed, 2, 'one new signature, after the refused one was dropped');
  } finally {
    await reuse.close();
  }
});

s3test('a direct read whose client goes away rejects; the next read gets the whole object', async () => {
  const key = await stored('direct-gone', randomBytes(4 * MiB));
  let written = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      written += chunk.length;
      if (written > MiB) this.destroy();
      else setImmediate(done);
    },
  });
  await assert.rejects((await store.read(key)).sendTo!(sink), (err: NodeJS.ErrnoException) => err.code === 'ERR_STREAM_PREMATURE_CLOSE');
  // The object is still whole for the next reader.
  assert.equal((await collect(await store.read(key))).length, 4 * MiB);
});

s3test('list, stat and delete use the caller keys and hide staging objects', async () => {
  const dir = `list-${randomUUID()}`;
  const keys = [`${dir}/a`, `${dir}/b/c`, `${dir}/b/d`, `${dir}x/e`];
  for (const key of keys) {
    const state = await store.beginUpload(key);
    const data = Buffer.from(key);
    const { state: done } = await store.appendUpload(key, state, 0, bodyOf(data));
    await store.completeUpload(key, done, data.length);
  }
  // An unfinished upload with staging objects under the same folder.
  const pending = `${dir}/pending`;
  let state = await store.beginUpload(pending);
  ({ state } = await store.appendUpload(pending, state, 0, bodyOf(randomBytes(KiB))));
  ({ state } = await store.appendUpload(pending, state, KiB, bodyOf(randomBytes(KiB))));
  assert.ok((await stagingObjects(pending)).length > 0);

  const listed: string[] = [];
  for await (const info of store.list(`${dir}/`)) {
    listed.push(info.key);
    assert.ok(info.modified instanceof Date);
    if (info.key !== pending) assert.equal(info.size, Buffer.byteLength(info.key));
  }
  assert.deepEqual(listed.sort(), [`${dir}/a`, `${dir}/b/c`, `${dir}/b/d`, pending].sort());
  const all: string[] = [];
  for await (const info of store.list('')) all.push(info.key);
  assert.ok(all.every((k) => !k.startsWith('.staging/')), 'staging objects are hidden');
  assert.ok(all.includes(`${dir}x/e`));
  const staged: string[] = [];
  for await (const upload of store.listStagedUploads()) staged.push(upload.key);
  assert.ok(staged.includes(pending), 'listStagedUploads names the unfinished upload');

  assert.equal((await store.stat(`${dir}/a`))?.size, `${dir}/a`.length);
  await store.delete(`${dir}/a`);
  await store.delete(`${dir}/a`);
  assert.equal(await store.stat(`${dir}/a`), null);
  await assert.rejects(store.read(`${dir}/a`), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  await store.abortUpload(pending, state);
});

s3test('list pages through more than one page of results', async () => {
  const dir = `paged-${randomUUID()}`;
  const small = await createS3ObjectStore(`s3://${BUCKET}/${RUN}`);
  try {
    const n = 25;
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const key = `${dir}/k${String(i).padStart(3, '0')}`;
        const { state } = await small.appendUpload(key, await small.beginUpload(key), 0, bodyOf(Buffer.from('x')));
        await small.completeUpload(key, state, 1);
      }),
    );
    // The store asks for the server's default page size (1000); make pages small to test paging.
    const paging = small as unknown as { client: S3Client };
    const original = paging.client.send.bind(paging.client);
    let pages = 0;
    paging.client.send = ((command: { input: { MaxKeys?: number } }, ...rest: unknown[]) => {
      if (command instanceof ListObjectsV2Command) {
        command.input.MaxKeys = 10;
        pages++;
      }
      return (original as (...args: unknown[]) => unknown)(command, ...rest);
    }) as typeof paging.client.send;
    const listed: string[] = [];
    for await (const info of small.list(`${dir}/`)) listed.push(info.key);
    assert.equal(listed.length, n);
    assert.deepEqual(listed, [...listed].sort());
    assert.equal(pages, 3);
  } finally {
    await small.close();
  }
});
