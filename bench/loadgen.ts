/**
 * A minimal closed-loop HTTP/1.1 load generator on raw keep-alive sockets: `connections` sockets,
 * each sending one request and sending the next as soon as the response is complete.
 *
 * It exists because neither wrk 4.1 nor autocannon 8 can measure HEAD: both parse a response's
 * Content-Length as a body to wait for, and a HEAD response has none, so every connection stalls.
 * It parses just enough HTTP to find where each response ends (status line, Content-Length,
 * chunked framing, no body for HEAD/204/304) and is light on CPU, so it is used for HEAD, and as
 * the GET tool too when wrk is not installed.
 */
import net from 'node:net';

export interface LoadgenOptions {
  url: string;
  method: string;
  headers: Record<string, string>;
  connections: number;
  durationS: number;
}

export interface LoadgenResult {
  requests: number;
  /** Responses with status >= 400 plus connection errors. */
  errors: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

export async function loadgen(opts: LoadgenOptions): Promise<LoadgenResult> {
  const url = new URL(opts.url);
  if (url.protocol !== 'http:') throw new Error('loadgen: only http:// URLs');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 80);
  const lines = [`${opts.method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, 'Connection: keep-alive'];
  for (const [k, v] of Object.entries(opts.headers)) lines.push(`${k}: ${v}`);
  const request = Buffer.from(lines.join('\r\n') + '\r\n\r\n');
  const isHead = opts.method.toUpperCase() === 'HEAD';

  let requests = 0;
  let errors = 0;
  const latencies: number[] = [];
  let stopping = false;
  const start = performance.now();
  const endAt = start + opts.durationS * 1000;
  let ended = 0;

  await new Promise<void>((resolveAll) => {
    const done = () => {
      if (++ended === opts.connections) resolveAll();
    };
    for (let c = 0; c < opts.connections; c++) {
      let socket: net.Socket;
      let buf: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        socket.destroy();
        done();
      };
      const send = () => {
        if (performance.now() >= endAt) {
          stopping = true;
          finish();
          return;
        }
        sentAt = performance.now();
        socket.write(request);
      };
      const connect = () => {
        socket = net.connect({ host, port, noDelay: true });
        buf = Buffer.alloc(0);
        socket.on('connect', send);
        socket.on('data', (chunk: Buffer) => {
          buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
          for (;;) {
            const end = responseEnd(buf, isHead);
            if (end < 0) return;
            if (end === 0) {
              errors++;
              finish(); // unparseable
              return;
            }
            const status = Number(buf.toString('latin1', 9, 12));
            requests++;
            if (status >= 400 || !(status >= 100)) errors++;
            latencies.push(performance.now() - sentAt);
            buf = buf.subarray(end);
            send();
            if (finished) return;
          }
        });
        socket.on('error', () => {
          if (!stopping) errors++;
        });
        socket.on('close', () => {
          if (finished) return;
          if (!stopping && performance.now() < endAt) {
            connect(); // the server closed the connection: reconnect, as wrk does
          } else {
            finish();
          }
        });
      };
      connect();
    }
  });

  const elapsedS = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))]! : 0);
  return { requests, errors, rps: requests / elapsedS, p50Ms: pct(50), p99Ms: pct(99) };
}

/**
 * The length of the first complete response in `buf`, -1 when incomplete, 0 when unparseable.
 */
export function responseEnd(buf: Buffer, isHead: boolean): number {
  const headEnd = buf.indexOf(CRLFCRLF);
  if (headEnd < 0) return buf.length > 65536 ? 0 : -1;
  const bodyStart = headEnd + 4;
  if (!(buf[0] === 0x48 && buf[1] === 0x54)) return 0; // "HT"
  const status = Number(buf.toString('latin1', 9, 12));
  if (isHead || status === 204 || status === 304 || (status >= 100 && status < 200)) return bodyStart;
  const head = buf.toString('latin1', 0, headEnd).toLowerCase();
  const cl = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (cl) {
    const end = bodyStart + Number(cl[1]);
    return buf.length >= end ? end : -1;
  }
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    let pos = bodyStart;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos, 'latin1');
      if (lineEnd < 0) return -1;
      const size = parseInt(buf.toString('latin1', pos, lineEnd), 16);
      if (Number.isNaN(size)) return 0;
      if (size === 0) {
        // trailers end with an empty line
        const trailerEnd = buf.indexOf(CRLFCRLF, lineEnd);
        if (buf.length >= lineEnd + 4 && buf[lineEnd + 2] === 0x0d && buf[lineEnd + 3] === 0x0a) return lineEnd + 4;
        return trailerEnd < 0 ? -1 : trailerEnd + 4;
      }
      pos = lineEnd + 2 + size + 2;
      if (buf.length < pos) return -1;
    }
  }
  return 0; // a body without framing: cannot keep the connection
}
