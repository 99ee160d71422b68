/**
 * The access hook of the http layer. The server only knows this interface: every route says
 * what it needs (an action on a repository, the catalog, or just a valid identity for `/v2/`),
 * and an Authorizer, built by the cli from flags, answers with the caller's grant or throws the
 * spec's error (401 UNAUTHORIZED with a challenge, 403 DENIED). With no Authorizer the registry
 * is anonymous with full access.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError, type ErrorCode } from '../../core/errors.js';

/** What a repository request needs: pull for GET/HEAD, push for POST/PATCH/PUT, delete for DELETE. */
export type Action = 'pull' | 'push' | 'delete';
export const ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

export type Need =
  /** `GET /v2/`: any valid, authenticated identity. */
  | { kind: 'login' }
  /** `GET /v2/_catalog`: the right to list (the list is then filtered by `Grant.mayPull`). */
  | { kind: 'catalog' }
  /** Portfolio's admin routes (`/_portfolio/…`): admins only. */
  | { kind: 'admin' }
  | { kind: 'repository'; name: string; action: Action };

/** What an authorized caller may do beyond the checked need. */
export interface Grant {
  /** True when the caller may read every repository (admins; no filtering of the catalog). */
  readonly all: boolean;
  /** Whether the caller may pull `name`: catalog filtering and cross-repository mount sources. */
  mayPull(name: string): boolean;
}

export interface Authorizer {
  /** Resolves with the caller's grant when the request may proceed, else throws a RegistryError. */
  authorize(req: IncomingMessage, need: Need): Promise<Grant>;
  /**
   * Serves the authorizer's own endpoints outside `/v2/` (the token endpoint). Resolves false
   * for a path it does not own.
   */
  serve?(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<boolean>;
}

/** A RegistryError that carries response headers (`WWW-Authenticate`, `Retry-After`). */
export class ErrorWithHeaders extends RegistryError {
  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    detail: unknown,
    readonly headers: Record<string, string>,
  ) {
    super(status, code, message, detail);
  }
}

/** Headers to send with an error response. */
export function errorHeaders(err: unknown): Record<string, string> {
  return err instanceof ErrorWithHeaders ? err.headers : {};
}
