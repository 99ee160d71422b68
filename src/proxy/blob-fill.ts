/**
 * Copies one blob from the upstream into the local store through the ordinary upload path
 * (start, append, complete: the store verifies the digest before the blob becomes visible),
 * optionally handing the bytes to the client that asked meanwhile. The fill belongs to no
 * client: one that hangs up is dropped and the copy goes on for those waiting on it. The last
 * chunk reaches the client only after the digest is verified, so a client never receives a
 * whole body with a wrong digest: it sees a cut-off transfer instead.
 */
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { Digest } from '../core/digest.js';
import type { UploadStore } from '../core/interfaces.js';
import { UpstreamUnavailable } from './upstream.js';

/** The upstream sent other bytes than the digest names (or fewer or more than it announced). */
export class UpstreamLied extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamLied';
  }
}

export interface FillOptions {
  body: Readable & { setTimeout?(ms: number, callback: () => void): unknown };
  digest: Digest;
  /** Announced by the upstream (Content-Length); null when it did not say. */
  size: number | null;
  uploads: UploadStore;
  /** The reading client's stream, or null for a fill nobody reads along. */
  client: PassThrough | null;
  /** The upstream body may be silent this long before the fill fails. */
  idleMs: number;
  onBytes?(bytes: number): void;
}

export async function fillBlob(options: FillOptions): Promise<void> {
  const { body, digest, size, uploads, client, idleMs } = options;
  body.setTimeout?.(idleMs, () => body.destroy(new UpstreamUnavailable(`upstream body silent for ${idleMs} ms`)));
  const session = await uploads.start();
  const sink = new PassThrough({ highWaterMark: 1 << 20 });
  let appendFailed: unknown;
  const appended = uploads.append(session.id, sink, {}).catch((err: unknown) => {
    appendFailed = err;
    body.destroy();
    throw err;
  });
  appended.catch(() => undefined); // awaited below; this only keeps an early failure from being unhandled
  let held: Buffer | null = null;
  let received = 0;
  try {
    for await (const chunk of body) {
      const bytes = chunk as Buffer;
      received += bytes.length;
      options.onBytes?.(bytes.length);
      if (size !== null && received > size) throw new UpstreamLied(`upstream sent more than the ${size} bytes it announced for ${digest}`);
      if (!sink.write(bytes)) await Promise.race([writable(sink), appended]);
      if (appendFailed) throw appendFailed;
      if (client && !client.destroyed) {
        // Only the chunk before this one is released; this one waits for the next, or for verification.
        // A client that stops reading must not stall the fill for everyone: past the idle time it is dropped.
        if (held && !client.write(held) && !(await writable(client, idleMs))) client.destroy(new Error('client stopped reading during a cache fill'));
        held = bytes;
      }
    }
    if (appendFailed) throw appendFailed;
    if (size !== null && received !== size) throw new UpstreamLied(`upstream sent ${received} of the ${size} bytes it announced for ${digest}`);
    sink.end();
    await appended;
    try {
      await uploads.complete(session.id, digest, null, {});
    } catch (err) {
      if ((err as { code?: string }).code === 'DIGEST_INVALID') throw new UpstreamLied(`upstream sent bytes whose digest is not ${digest}`);
      throw err;
    }
  } catch (err) {
    sink.destroy();
    body.destroy();
    await uploads.cancel(session.id).catch(() => undefined);
    client?.destroy(err as Error);
    throw err;
  }
  if (client && !client.destroyed) client.end(held ?? undefined);
}

/**
 * Resolves true once `stream` may take more, or is gone (a destroyed client simply stops being
 * fed); false when `timeoutMs` passed first.
 */
function writable(stream: Writable, timeoutMs = 0): Promise<boolean> {
  if (stream.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = timeoutMs > 0 ? setTimeout(() => finish(false), timeoutMs) : undefined;
    const done = () => finish(true);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve(ok);
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}
