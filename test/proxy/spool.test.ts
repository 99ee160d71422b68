/**
 * The spool of a blob fill on real files: readers along get exactly the bytes written, never the
 * last one before verification, fail when the fill does, and keep reading after the file is
 * removed; a reader that does not read never holds up the writer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Spool } from '../../src/proxy/spool.js';

const MiB = 1024 * 1024;

/** Collects a reader's bytes; `until(n)` resolves once it has at least n of them. */
function collect(reader: Readable) {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const waiting: { n: number; resolve: () => void }[] = [];
  reader.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    bytes += chunk.length;
    for (const w of waiting.splice(0)) if (bytes >= w.n) w.resolve();
    else waiting.push(w);
  });
  const ended = new Promise<Buffer>((resolve, reject) => {
    reader.on('end', () => resolve(Buffer.concat(chunks)));
    reader.on('error', reject);
  });
  ended.catch(() => undefined);
  return {
    ended,
    get bytes() {
      return bytes;
    },
    until: (n: number) => (bytes >= n ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ n, resolve }))),
  };
}

describe('blob fill spool', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-spool-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('gives readers along the written bytes but their last one until release, ranges too', async () => {
    const bytes = randomBytes(5 * MiB + 123);
    const spool = await Spool.create(dir, bytes.length);
    const early = collect(spool.reader()!);
    await spool.write([bytes.subarray(0, 2 * MiB)]);
    await early.until(2 * MiB);
    // Joins midway, and asks for a range that ends at the last byte.
    const late = collect(spool.reader()!);
    const range = collect(spool.reader(1000, bytes.length)!);
    const middle = collect(spool.reader(1000, 2000)!);
    await spool.write([bytes.subarray(2 * MiB, 4 * MiB), bytes.subarray(4 * MiB)]);
    await Promise.all([early.until(bytes.length - 1), late.until(bytes.length - 1), range.until(bytes.length - 1001)]);
    assert.equal(spool.available, bytes.length - 1, 'the last byte waits for verification');
    assert.equal(early.bytes, bytes.length - 1);
    await middle.until(999);
    assert.equal(middle.bytes, 999, "a range's last byte waits for verification too");
    spool.release();
    assert.deepEqual(await early.ended, bytes);
    assert.deepEqual(await late.ended, bytes);
    assert.deepEqual(await range.ended, bytes.subarray(1000));
    assert.deepEqual(await middle.ended, bytes.subarray(1000, 2000));
    await spool.remove();
    assert.equal(existsSync(spool.path), false);
  });

  it('fails readers with the fill, lets no new one in, and removes the file', async () => {
    const spool = await Spool.create(dir, 3 * MiB);
    const reader = collect(spool.reader()!);
    await spool.write([randomBytes(2 * MiB)]);
    await reader.until(2 * MiB);
    spool.fail(new Error('digest mismatch'));
    await assert.rejects(reader.ended, /digest mismatch/);
    assert.equal(spool.reader(), null);
    await spool.remove();
    assert.equal(existsSync(spool.path), false);
  });

  it('ends an empty body only after release', async () => {
    const spool = await Spool.create(dir, 0);
    const reader = collect(spool.reader()!);
    const lied = await Spool.create(dir, 0);
    const other = collect(lied.reader()!);
    lied.fail(new Error('not the empty blob'));
    await assert.rejects(other.ended, /not the empty blob/);
    spool.release();
    assert.deepEqual(await reader.ended, Buffer.alloc(0));
    await spool.remove();
    await lied.remove();
  });

  it('never waits for a reader that does not read, which still gets every byte after removal', async () => {
    const bytes = randomBytes(16 * MiB);
    const spool = await Spool.create(dir, bytes.length);
    const idle = spool.reader()!;
    // Far more than the reader buffers: the writes complete although nobody consumes.
    for (let at = 0; at < bytes.length; at += MiB) await spool.write([bytes.subarray(at, at + MiB)]);
    spool.release();
    await spool.remove();
    assert.equal(existsSync(spool.path), false);
    assert.deepEqual(await collect(idle).ended, bytes, 'an open reader reads on from the removed file');
    assert.equal(spool.reader(), null, 'no reader after the spool is gone: read the store');
  });
});
