/** Response helpers: the spec's error envelope, JSON bodies and the headers every response shares. */
import type { ServerResponse } from 'node:http';
import { errors, type RegistryError } from '../core/errors.js';
import { answerFor } from './errors.js';

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

/** An error as the table in errors.ts answers it: the spec's envelope `{"errors":[{code,message,detail}]}`. */
export function sendError(res: ServerResponse, error: RegistryError, extraHeaders: Record<string, string> = {}): void {
  const { status, body } = answerFor(error, res.req.method);
  if (typeof body !== 'string') return sendJson(res, status, body, extraHeaders);
  const bytes = Buffer.from(body);
  res.writeHead(status, { ...extraHeaders, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(bytes.length) });
  res.end(res.req.method === 'HEAD' ? undefined : bytes);
}

export function internalError(): RegistryError {
  return errors.internal();
}

/** Renders a `Link: <…>; rel="next"` header for keyset paging. */
export function nextLink(path: string, n: number, last: string): string {
  return `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
}
