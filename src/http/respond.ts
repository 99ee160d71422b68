/** Response helpers: the spec's error envelope, JSON bodies and the headers every response shares. */
import type { ServerResponse } from 'node:http';
import { ErrorCode, RegistryError } from '../core/errors.js';

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const API_VERSION = 'registry/2.0';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, contentType = 'application/json'): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { ...headers, 'Content-Type': contentType, 'Content-Length': String(bytes.length) });
  res.end(res.req.method === 'HEAD' ? undefined : bytes);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'Content-Length': '0' });
  res.end();
}

/** The error envelope of the distribution spec: `{"errors":[{code,message,detail}]}`. */
export function sendError(res: ServerResponse, error: RegistryError, extraHeaders: Record<string, string> = {}): void {
  const body = { errors: [{ code: error.code, message: error.message, detail: error.detail ?? null }] };
  sendJson(res, error.status, body, extraHeaders);
}

export function internalError(): RegistryError {
  return new RegistryError(500, ErrorCode.INTERNAL, 'internal server error');
}

/** Renders a `Link: <…>; rel="next"` header for keyset paging. */
export function nextLink(path: string, n: number, last: string): string {
  return `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
}
