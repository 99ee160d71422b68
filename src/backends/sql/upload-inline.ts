/**
 * The inline policy: while a session holds no more than `inlineBlobBytes`, its chunks are read
 * into memory and kept in the database (no object, no file sync; the blob row takes the bytes
 * over at completion). The first chunk that outgrows the limit moves the session to the object
 * store: its inline bytes, the part of the chunk already read, then the rest, as one append
 * from offset 0.
 */
import { Readable } from 'node:stream';
import { errors, RegistryError } from '../../core/errors.js';

/** The start of a chunk read into memory; `rest` continues the body when it held more than asked for. */
export interface Head {
  chunks: Buffer[];
  bytes: number;
  rest: AsyncIterator<Buffer> | null;
}

/** Reads `body` until it ends or carries more than `room` bytes. */
export async function readUpTo(body: Readable, room: number): Promise<Head> {
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for (;;) {
      const next = await it.next();
      if (next.done) return { chunks, bytes, rest: null };
      chunks.push(next.value);
      bytes += next.value.length;
      if (bytes > room) return { chunks, bytes, rest: it };
    }
  } catch (err) {
    throw toClientError(err);
  }
}

/** The session's inline bytes, the part of the chunk already read, then the rest of it. */
export function spill(prefix: Buffer, head: Head | null, body: Readable): Readable {
  if (!head && prefix.length === 0) return body;
  return Readable.from(
    (async function* () {
      if (prefix.length > 0) yield prefix;
      if (!head) {
        yield* body;
        return;
      }
      yield* head.chunks;
      const rest = head.rest!;
      for (;;) {
        const next = await rest.next();
        if (next.done) return;
        yield next.value;
      }
    })(),
    { objectMode: false },
  );
}

export function toClientError(err: unknown): Error {
  if (err instanceof RegistryError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'ABORT_ERR') {
    return errors.uploadInvalid('the request body ended before it was complete');
  }
  return err as Error;
}
