import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventOrigin } from '../core/events.js';
import type { Registry } from '../core/interfaces.js';
import type { Maintenance } from '../core/maintenance.js';
import type { RepositoryName } from '../core/names.js';
import type { PolicyAdmin } from '../core/policies.js';

export interface HttpOptions {
  /** Hint sent to clients on upload start (S3-backed stores want large chunks). */
  chunkMinLength?: number;
  /** Storage management behind the admin routes (`/_portfolio/…`), when the backend offers it. */
  maintenance?: Maintenance;
  /** Quotas and immutable tags: the admin routes under `/_portfolio/policies` and the upload's early quota check. */
  policies?: PolicyAdmin;
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
  /** Whether the cross-repository mount the request asks for may be tried (decided by the access check). */
  mountAllowed: boolean;
  /** Who asks and through which request, for the events of the changes it makes. */
  origin: EventOrigin;
}

export type Handler = (ctx: RequestContext) => Promise<void>;
