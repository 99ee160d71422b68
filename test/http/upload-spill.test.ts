/**
 * A session that outgrows the inline limit moves its bytes to the object store. When the chunk
 * that moves it fails (too large, cut off), the session must keep the bytes it had: the offset
 * it reports always counts bytes it holds, and the upload can continue and complete.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { sha256 } from '../helpers/oci.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

let reg: RunningRegistry;
before(async () => {
  reg = await startRegistry({ args: ['--max-blob-size', '100K', '--gc-interval', '0'] });
});
after(async () => reg?.stop());

/** A body sent with chunked transfer encoding (no Content-Length). */
function chunked(bytes: Buffer): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes.length) return controller.close();
      const piece = bytes.subarray(sent, sent + 16 * 1024);
      sent += piece.length;
      controller.enqueue(piece);
    },
  });
}

async function patch(location: string, body: Buffer, range?: string): Promise<{ status: number; range: string | null }> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (range) headers['content-range'] = range;
  try {
    const res = await fetch(new URL(location, reg.url), {
      method: 'PATCH',
      headers,
      body: range ? body : chunked(body),
      ...(range ? {} : { duplex: 'half' }),
    } as RequestInit);
    await res.arrayBuffer();
    return { status: res.status, range: res.headers.get('range') };
  } catch {
    // The server may answer and close before the whole body was sent.
    return { status: 0, range: null };
  }
}

test('a chunk that fails while moving an inline session to the store leaves the session whole', async () => {
  const bytes = randomBytes(2000);
  const post = await fetch(`${reg.url}/v2/spill/fail/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202);
  const location = post.headers.get('location')!;

  assert.equal((await patch(location, bytes.subarray(0, 1000), '0-999')).status, 202);
  const tooLarge = await patch(location, randomBytes(200 * 1024));
  assert.ok(tooLarge.status === 413 || tooLarge.status === 0, `an oversized chunk is refused (${tooLarge.status})`);

  const state = await fetch(new URL(location, reg.url));
  assert.equal(state.status, 204);
  assert.equal(state.headers.get('range'), '0-999');

  const next = await patch(location, bytes.subarray(1000), '1000-1999');
  assert.equal(next.status, 202);
  assert.equal(next.range, '0-1999');
  const put = await fetch(new URL(`${location}${location.includes('?') ? '&' : '?'}digest=${sha256(bytes)}`, reg.url), { method: 'PUT' });
  assert.equal(put.status, 201, await put.text());
  const get = await fetch(`${reg.url}/v2/spill/fail/blobs/${sha256(bytes)}`);
  assert.equal(get.status, 200);
  assert.deepEqual(Buffer.from(await get.arrayBuffer()), bytes);
});

test('a session that moved to the store keeps its bytes when a later chunk fails', async () => {
  const bytes = randomBytes(90 * 1024);
  const post = await fetch(`${reg.url}/v2/spill/later/blobs/uploads/`, { method: 'POST' });
  const location = post.headers.get('location')!;
  assert.equal((await patch(location, bytes.subarray(0, 1000), '0-999')).status, 202);
  // Past the 64 KiB inline limit: the session moves to the store.
  assert.equal((await patch(location, bytes.subarray(1000, 80 * 1024), `1000-${80 * 1024 - 1}`)).status, 202);
  const tooLarge = await patch(location, randomBytes(200 * 1024));
  assert.ok(tooLarge.status === 413 || tooLarge.status === 0, `an oversized chunk is refused (${tooLarge.status})`);
  const state = await fetch(new URL(location, reg.url));
  assert.equal(state.headers.get('range'), `0-${80 * 1024 - 1}`);
  assert.equal((await patch(location, bytes.subarray(80 * 1024), `${80 * 1024}-${bytes.length - 1}`)).status, 202);
  const put = await fetch(new URL(`${location}${location.includes('?') ? '&' : '?'}digest=${sha256(bytes)}`, reg.url), { method: 'PUT' });
  assert.equal(put.status, 201, await put.text());
});
