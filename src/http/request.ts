/** Parsing of request headers and query parameters shared by the handlers. */
import type { IncomingMessage } from 'node:http';
import { errors } from '../core/errors.js';
import type { ByteRange, PageRequest } from '../core/interfaces.js';
import { bodyTimeLeft, ClientTooSlow } from './limits.js';

/** True when the request carries a body (a non-zero Content-Length or chunked encoding). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

export function contentLength(req: IncomingMessage): number | undefined {
  const value = req.headers['content-length'];
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value)) throw errors.sizeInvalid('invalid Content-Length');
  return Number(value);
}

/**
 * Reads a small body whole, refusing it with 413 past `limit` bytes. Bytes are kept as they
 * arrive (nothing is reserved for the declared length), and the body must arrive within the
 * body timeout (src/http/limits.ts): past it the connection is closed.
 */
export async function readBody(req: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) throw errors.tooLarge(what, limit);
  const left = bodyTimeLeft(req);
  const timer =
    left === undefined || req.complete
      ? undefined
      : setTimeout(() => req.destroy(new ClientTooSlow(`${what} did not arrive within the body timeout`)), Math.max(0, left));
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) throw errors.tooLarge(what, limit);
      chunks.push(chunk as Buffer);
    }
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks, size);
}

/**
 * Resolves a `Range: bytes=…` header against a blob size (RFC 9110 §14.1.2): undefined for no
 * range or one the server may ignore (malformed, several ranges), 'unsatisfiable' for 416.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

/** `Content-Range: <start>-<end>` of an upload chunk (a `bytes ` or `bytes=` prefix is tolerated). */
export function parseContentRange(header: string | undefined): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m) throw errors.rangeInvalid('invalid Content-Range', { contentRange: header });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw errors.rangeInvalid('Content-Range ends before it starts', { contentRange: header });
  return { start, end };
}

/** The `n` and `last` query parameters of tag and catalog listings. */
export function parsePage(query: URLSearchParams): PageRequest {
  const page: PageRequest = {};
  const n = query.get('n');
  if (n !== null) {
    if (!/^\d+$/.test(n)) throw errors.paginationInvalid('n must be a non-negative integer');
    // Backends cap the page anyway; clamp absurd values instead of refusing them.
    page.n = Math.min(Number(n), 2 ** 31 - 1);
  }
  const last = query.get('last');
  // Names and tags hold no NUL, so the entries after `x\0…` are exactly those after `x`; and a
  // NUL is a byte PostgreSQL refuses in a query.
  if (last !== null) page.last = last.split('\0', 1)[0]!;
  return page;
}
