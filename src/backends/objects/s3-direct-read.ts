/**
 * A GET of a presigned S3 URL over a plain socket, for `http://` endpoints (Ceph RGW, MinIO and
 * the like inside the cluster).
 *
 * Node's HTTP clients (node:http and undici alike) copy every body chunk out of the socket's
 * read buffer into a new one. Relaying a 256 MiB blob from radosgw through the SDK cost ~1.8 ms
 * of CPU per MB here; reading the socket into a few reused buffers (`onread`) and handing each
 * filled one to the client's socket costs 0.4–0.5, at ~2× the rate. A 200 KB blob's whole GET
 * costs half the CPU it did through the SDK (with the presigned URLs s3-store.ts keeps).
 *
 * Only the plain answer is handled here: 200 (206 for a range) with a Content-Length and no
 * transfer coding. For anything else, and for a connection that fails before the answer's head,
 * `directRead` resolves null and the caller asks through the SDK, which retries and reports
 * S3's errors as it always does.
 */
import { connect, type Socket } from 'node:net';
import { Readable, type Writable } from 'node:stream';
import { responseClosed } from '../../core/buffered-send.js';
import type { ByteRange } from '../../core/interfaces.js';

/** Reads of the head and of a streamed body: what Node's HTTP client reads at a time. */
const READ_BYTES = 64 * 1024;
/** Reads of a sent body fill at most one buffer; 256 KiB reads ran as fast as 1 MiB ones. */
const SEND_BYTES = 256 * 1024;
/**
 * Buffers per sent body: the one being read into plus up to three being written. Taken only as
 * a slow client needs them: when the client keeps up, each write is taken at once and one or
 * two buffers go round.
 */
const SEND_BUFFERS = 4;
/**
 * Buffers of finished reads are kept for the next ones, up to this many of each size. Allocated
 * per read, they cost more than the relay itself: V8 runs full collections as memory outside its
 * heap grows (a fifth of the CPU of 200 KB blob GETs went to the collector).
 */
const POOLED_BUFFERS = 16;
const MAX_HEAD_BYTES = 64 * 1024;
/** Until the answer's head arrives; after it, as through the SDK, a body may pause indefinitely. */
const HEAD_TIMEOUT_MS = 30_000;
/**
 * After the body, the connection is left for the server to close (it was asked to), so that the
 * TIME_WAIT entry is the server's and Portfolio's ephemeral ports are free again at once; a
 * server that keeps it open is cut off after this long.
 */
const CLOSE_WAIT_MS = 5_000;
const HEAD_END = Buffer.from('\r\n\r\n');
/** Read into once a body is complete (the server should send nothing more); shared, never read. */
const DRAIN = Buffer.allocUnsafeSlow(1024);

const pools = new Map<number, Buffer[]>([
  [READ_BYTES, []],
  [SEND_BYTES, []],
]);

function takeBuffer(size: number): Buffer {
  return pools.get(size)!.pop() ?? Buffer.allocUnsafeSlow(size);
}

/** Keeps `buffers` for later reads: only ones that no socket reads into and no write holds. */
function giveBack(buffers: Buffer[]): void {
  for (const buffer of buffers) {
    const pool = pools.get(buffer.length);
    if (pool && pool.length < POOLED_BUFFERS && !pool.includes(buffer)) pool.push(buffer);
  }
}

interface Head {
  length: number;
  /** Bytes of the body that arrived with the head. */
  rest: Buffer;
}

/** The head of an HTTP/1.1 answer, or null when it is not the plain answer this path handles. */
function parseHead(bytes: Buffer, end: number, range: ByteRange | undefined): Head | null {
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3}) /.exec(`${lines[0]} `);
  if (!status) return null;
  let length: number | null = null;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'transfer-encoding') return null;
    if (name === 'content-length') {
      if (!/^\d+$/.test(value) || (length !== null && length !== Number(value))) return null;
      length = Number(value);
    }
  }
  const code = Number(status[1]);
  const expected = range ? range.end - range.start + 1 : length;
  if (length === null || length !== expected || code !== (range ? 206 : 200)) return null;
  const rest = bytes.subarray(end + HEAD_END.length);
  if (rest.length > length) return null;
  return { length, rest: Buffer.from(rest) };
}

/**
 * GETs `url` (a presigned URL, so no header needs signing; Range is not signed) and resolves
 * once the head has arrived: the object's bytes, or null when the SDK should be asked instead.
 * Only `http:` URLs are read here; an `https:` endpoint's TLS settings live in the SDK's agent.
 */
export function directRead(url: URL, range?: ByteRange): Promise<DirectBody | null> {
  if (url.protocol !== 'http:') return Promise.resolve(null);
  return new Promise((resolve) => new DirectBody(url, range, resolve));
}

/**
 * The body of one answer. Read as a stream, each chunk is a copy; `sendTo` hands the read
 * buffers themselves to the sink and reads into another while the kernel takes them.
 */
export class DirectBody extends Readable {
  private readonly socket: Socket;
  /** The buffer the next socket read fills; never one a write still holds. */
  private current = takeBuffer(READ_BYTES);
  /** While sending (sendTo): buffers free to read into, and how many more may be taken. */
  private spare: { free: Buffer[]; untaken: number } | null = null;
  private headBytes: Buffer | null = Buffer.alloc(0);
  private remaining = 0;
  private pending: Buffer | null = null;
  private onChunk: (chunk: Buffer, buffer: Buffer) => boolean = () => false;
  private onHead: ((body: DirectBody | null) => void) | null;

  constructor(
    url: URL,
    private readonly range: ByteRange | undefined,
    onHead: (body: DirectBody | null) => void,
  ) {
    super({ highWaterMark: READ_BYTES });
    this.onHead = onHead;
    this.socket = connect({
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(url.port || 80),
      noDelay: true,
      onread: { buffer: () => this.nextBuffer(), callback: (n, buffer) => this.received(n, buffer as Buffer) },
    });
    const socket = this.socket;
    socket.setTimeout(HEAD_TIMEOUT_MS);
    socket.on('timeout', () => socket.destroy());
    socket.once('connect', () => {
      const rangeHeader = range ? `Range: bytes=${range.start}-${range.end}\r\n` : '';
      socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n${rangeHeader}Connection: close\r\n\r\n`);
    });
    socket.on('error', (err) => {
      if (this.onHead) this.answer(null);
      else if (this.remaining > 0) this.destroy(err);
    });
    socket.on('close', () => {
      if (this.onHead) this.answer(null);
      else if (this.remaining > 0) this.destroy(new Error(`the S3 connection closed ${this.remaining} bytes before the object's end`));
    });
  }

  private answer(body: DirectBody | null): void {
    const onHead = this.onHead!;
    this.onHead = null;
    if (body) this.socket.setTimeout(0);
    else {
      this.socket.destroy();
      giveBack([this.current]);
      this.current = DRAIN;
    }
    onHead(body);
  }

  private nextBuffer(): Buffer {
    if (this.headBytes === null && this.remaining === 0) {
      // The body is complete. A streamed body's buffer is free (its bytes were copied); a sent
      // body's last buffer is in a write and comes back through the write's callback.
      if (!this.spare) giveBack([this.current]);
      return (this.current = DRAIN);
    }
    // While sending, the buffer just filled is in a write: read into a free one (sendTo leaves
    // one, see there); when streaming, read into the same buffer again (its bytes were copied).
    const spare = this.spare;
    if (spare) {
      const free = spare.free.pop();
      if (free) this.current = free;
      else {
        spare.untaken--;
        this.current = takeBuffer(SEND_BYTES);
      }
    }
    return this.current;
  }

  /** The socket's read callback: false pauses reading. */
  private received(n: number, buffer: Buffer): boolean {
    if (this.headBytes) return this.receivedHead(buffer.subarray(0, n));
    const take = Math.min(n, this.remaining);
    // Past the body: read on until the server closes.
    if (take === 0) return true;
    this.remaining -= take;
    const more = this.onChunk(buffer.subarray(0, take), buffer);
    if (this.remaining > 0) return more;
    this.socket.setTimeout(CLOSE_WAIT_MS);
    return true;
  }

  private receivedHead(bytes: Buffer): boolean {
    const all = Buffer.concat([this.headBytes!, bytes]);
    const end = all.indexOf(HEAD_END);
    if (end < 0) {
      if (all.length <= MAX_HEAD_BYTES) {
        this.headBytes = all;
        return true;
      }
      this.answer(null);
      return false;
    }
    this.headBytes = null;
    const head = parseHead(all, end, this.range);
    if (!head) {
      this.answer(null);
      return false;
    }
    this.remaining = head.length - head.rest.length;
    this.pending = head.rest.length > 0 ? head.rest : null;
    this.answer(this);
    if (this.remaining > 0) return false; // paused until the body is read or sent
    this.socket.setTimeout(CLOSE_WAIT_MS);
    return true;
  }

  override _read(): void {
    if (this.pending) {
      const pending = this.pending;
      this.pending = null;
      if (!this.push(pending)) return;
    }
    if (this.remaining === 0) {
      this.push(null);
      return;
    }
    this.onChunk = (chunk) => {
      // The buffer is read into again: what is pushed must be a copy.
      const more = this.push(Buffer.from(chunk));
      if (this.remaining === 0) this.push(null);
      return more;
    };
    this.socket.resume();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    // A complete body's connection closes by itself (received()), reading only into DRAIN.
    if (this.remaining > 0) this.socket.destroy();
    // Buffers a write still holds (a send that failed) are left to the collector.
    giveBack(this.spare ? [this.current, ...this.spare.free] : [this.current]);
    done(err);
  }

  /**
   * Writes the body into `sink` and ends it. Rejects when the S3 connection fails or closes
   * early, a write fails, or the sink closes first (the client went away).
   */
  async sendTo(sink: Writable): Promise<void> {
    const spare = { free: [] as Buffer[], untaken: SEND_BUFFERS - 1 };
    this.spare = spare;
    let inFlight = 0;
    let paused = false;
    let settled = false;
    let fail: (err: Error) => void = () => {};
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve, reject) => {
      fail = (err) => {
        settled = true;
        reject(err);
      };
      finish = () => {
        settled = true;
        resolve();
      };
    });
    const ended = () => {
      if (this.remaining === 0 && inFlight === 0) sink.end(finish);
    };
    const write = (chunk: Buffer, buffer: Buffer | null) => {
      inFlight++;
      sink.write(chunk, (err) => {
        inFlight--;
        if (err) return fail(err);
        if (buffer) spare.free.push(buffer);
        if (paused && this.remaining > 0) {
          paused = false;
          this.socket.resume();
        }
        ended();
      });
    };
    // A response also closes after it finished: only an earlier close is the client going away.
    const gone = () => settled || fail(responseClosed());
    const broken = (err: Error) => fail(err);
    sink.once('close', gone);
    this.once('error', broken);
    this.onChunk = (chunk, buffer) => {
      write(chunk, buffer);
      // nextBuffer() takes a buffer right after this returns; reading goes on only while one
      // is left beyond that, so the buffer read into is never one a write holds.
      if (spare.free.length + spare.untaken >= 2) return true;
      paused = true;
      return false;
    };
    try {
      if (this.pending) write(this.pending, null);
      this.pending = null;
      if (this.remaining === 0) ended();
      else this.socket.resume();
      await done;
    } finally {
      sink.off('close', gone);
      this.off('error', broken);
      this.destroy();
    }
  }
}
