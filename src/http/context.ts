import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from '../core/interfaces.js';
import type { Maintenance } from '../core/maintenance.js';
import type { RepositoryName } from '../core/names.js';
import type { Grant } from './auth/authorizer.js';

export interface HttpOptions {
  /** Hint sent to clients on upload start (S3-backed stores want large chunks). */
  chunkMinLength?: number;
  /** Storage management behind the admin routes (`/_portfolio/…`), when the backend offers it. */
  maintenance?: Maintenance;
}

/** Everything a handler needs for one request. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  registry: Registry;
  options: HttpOptions;
  query: URLSearchParams;
  /** The repository name from the path, validated. */
  name: RepositoryName;
  /** The path segment after the endpoint (a digest, reference or upload id), when the route has one. */
  param: string;
  /** What the caller may do beyond this route's own need (auth on); absent: anonymous full access. */
  access?: Grant;
}

export type Handler = (ctx: RequestContext) => Promise<void>;
