/**
 * Who calls the JSON API and what they may do. A session cookie (the web interface) speaks for
 * its user; otherwise the request's own credentials (Basic or Bearer, for scripts) go through the
 * registry's Authorizer. Refusals never carry a `WWW-Authenticate` challenge for session and
 * anonymous callers: a browser would answer one with its own login dialog.
 */
import type { IncomingMessage } from 'node:http';
import { ErrorCode, RegistryError } from '../../core/errors.js';
import { FULL_ACCESS, type Authorizer, type Decision, type Need } from '../auth/authorizer.js';
import type { Session, Sessions } from './sessions.js';

export interface Caller {
  /** The session's or credentials' user; null for anonymous callers and without auth. */
  user: string | null;
  session: Session | null;
  /** Whether access control is on at all. */
  authEnabled: boolean;
  /** The decision for `need`, or throws 401/403. */
  require(need: Need): Promise<Decision>;
  /** Whether `need` would be allowed (for showing or hiding controls). */
  may(need: Need): Promise<boolean>;
}

export function callerOf(req: IncomingMessage, authorizer: Authorizer | undefined, sessions: Sessions): Caller {
  if (!authorizer) {
    return { user: null, session: null, authEnabled: false, require: async () => FULL_ACCESS, may: async () => true };
  }
  const session = authorizer.decideFor ? sessions.of(req) : null;
  const decideFor = authorizer.decideFor?.bind(authorizer);
  if (decideFor && (session || req.headers.authorization === undefined)) {
    const user = session?.user ?? null;
    return {
      user,
      session,
      authEnabled: true,
      require: async (need) => {
        const decision = decideFor(user, need);
        if (decision) return decision;
        throw user === null
          ? new RegistryError(401, ErrorCode.UNAUTHORIZED, 'authentication required')
          : new RegistryError(403, ErrorCode.DENIED, 'requested access to the resource is denied');
      },
      may: async (need) => decideFor(user, need) !== null,
    };
  }
  // Credentials in the request: the registry's own check, challenge included.
  return {
    user: null,
    session: null,
    authEnabled: true,
    require: (need) => authorizer.authorize(req, need),
    may: (need) => authorizer.authorize(req, need).then(
      () => true,
      () => false,
    ),
  };
}
