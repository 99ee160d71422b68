/**
 * The access hook of the http layer. The server only knows this interface: every route says
 * what it needs (an action on a repository, with a mount's source; the catalog; the admin
 * routes; or just a valid identity for `/v2/`), and an Authorizer, built by the cli from flags,
 * decides once for the request: it throws the spec's error (401 UNAUTHORIZED with a challenge,
 * 403 DENIED, 429 TOOMANYREQUESTS) or answers with the plain facts the handler needs. Handlers
 * never see who the caller is or what else they may do. With no Authorizer the registry is
 * anonymous with full access (`FULL_ACCESS`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError, type ErrorCode } from '../../core/errors.js';
import type { CatalogFilter } from '../../core/interfaces.js';
import type { RepositoryName } from '../../core/names.js';
import type { Action } from '../../auth/actions.js';

export { ACTIONS, type Action } from '../../auth/actions.js';

export type Need =
  /** `GET /v2/`: any valid, authenticated identity. */
  | { kind: 'login' }
  /** `GET /v2/_catalog`: the right to list; the decision says which names the caller sees. */
  | { kind: 'catalog' }
  /** Portfolio's admin routes (`/_portfolio/…`). */
  | { kind: 'admin' }
  | {
      kind: 'repository';
      name: RepositoryName;
      action: Action;
      /**
       * A cross-repository mount the request asks for: the `from` repository as sent (it may be
       * invalid), or null for a mount from any repository. Absent: no mount.
       */
      mountFrom?: string | null;
    };

/** Which repository names a caller may see in the catalog. */
export interface CatalogVisibility {
  /** A superset of the visible names that the backend narrows the listing with. */
  filter: CatalogFilter;
  /** The exact decision for one name. */
  visible(name: string): boolean;
}

/** What was decided beyond "the request may proceed". */
export interface Decision {
  /** For a repository need with `mountFrom`: whether the mount may be tried. */
  mountAllowed: boolean;
  /** For the catalog: the names the caller may see; absent, every name. */
  catalog?: CatalogVisibility;
  /** The authenticated user or token subject, for events; absent for anonymous callers. */
  actor?: string;
}

/** The decision without access control: everything is allowed and visible. */
export const FULL_ACCESS: Decision = { mountAllowed: true };

export interface Authorizer {
  /** Resolves with the decision when the request may proceed, else throws a RegistryError. */
  authorize(req: IncomingMessage, need: Need): Promise<Decision>;
  /**
   * Serves the authorizer's own endpoints outside `/v2/` (the token endpoint). Resolves false
   * for a path it does not own.
   */
  serve?(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<boolean>;
  /** Checks a user's password (throttled like Basic logins); for the web interface's login form. */
  checkPassword?(req: IncomingMessage, user: string, password: string): Promise<boolean>;
  /** The decision for a user whose login a session vouches for (null: anonymous); null when refused. */
  decideFor?(user: string | null, need: Need): Decision | null;
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
