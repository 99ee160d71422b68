/**
 * Portfolio's own token server (docker-registry-auth token.md and oauth.md):
 *
 * - `GET /auth/token?service=…&scope=…&scope=…[&account=…][&offline_token=true]` with optional
 *   Basic credentials; anonymous callers get a token for what anonymous callers may do.
 * - `POST /auth/token`, form-encoded, `grant_type=password` (username, password) or
 *   `grant_type=refresh_token` (refresh_token); `access_type=offline` returns a refresh token.
 *
 * Every token grants the intersection of what was asked and what the policy allows; asking for
 * more than one may have is not an error (token.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, RegistryError } from '../../core/errors.js';
import { readBody } from '../request.js';
import { sendJson } from '../respond.js';
import type { AccessControl } from './access.js';
import { decodeBasic } from './basic.js';
import { ErrorWithHeaders } from './authorizer.js';
import { formatScope, parseScopes, refreshBinding, type AccessEntry } from '../../auth/tokens.js';

export const TOKEN_PATH = '/auth/token';
const MAX_FORM_BYTES = 16 * 1024;

export async function handleTokenEndpoint(ac: AccessControl, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  res.setHeader('Cache-Control', 'no-store');
  if (req.method === 'GET') return getToken(ac, req, res, query);
  if (req.method === 'POST') return postToken(ac, req, res);
  throw new RegistryError(405, ErrorCode.UNSUPPORTED, `method ${req.method} is not allowed on ${TOKEN_PATH}`);
}

function basicChallenge(ac: AccessControl): Record<string, string> {
  return { 'WWW-Authenticate': `Basic realm="${ac.options.basicRealm ?? 'portfolio'}"` };
}

async function getToken(ac: AccessControl, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const service = query.get('service');
  if (service !== null && service !== ac.options.service) {
    throw new RegistryError(400, ErrorCode.DENIED, `this token server issues tokens for service ${JSON.stringify(ac.options.service)}`, { service });
  }
  let user: string | null = null;
  const header = req.headers.authorization;
  if (header !== undefined) {
    const credentials = /^basic /i.test(header) ? decodeBasic(header.slice(6).trim()) : null;
    if (!credentials || !(await ac.checkPassword(req, credentials.user, credentials.password))) {
      throw new ErrorWithHeaders(401, ErrorCode.UNAUTHORIZED, 'invalid username or password', null, basicChallenge(ac));
    }
    user = credentials.user;
    const account = query.get('account');
    if (account !== null && account !== '' && account !== user) {
      throw new ErrorWithHeaders(401, ErrorCode.UNAUTHORIZED, 'account does not match the credentials', { account }, basicChallenge(ac));
    }
  }
  const access = ac.grantFor(user, parseScopes(query.getAll('scope')));
  const issued = await ac.options.issuer!.issue(user ?? '', access);
  const body: Record<string, unknown> = {
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt.toISOString(),
  };
  if (user !== null && query.get('offline_token') === 'true') body.refresh_token = await refreshTokenFor(ac, user);
  sendJson(res, 200, body);
}

/** OAuth2 errors (RFC 6749 §5.2). */
function oauthError(res: ServerResponse, status: number, error: string, description: string): void {
  sendJson(res, status, { error, error_description: description });
}

async function postToken(ac: AccessControl, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    return oauthError(res, 400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
  }
  const form = new URLSearchParams((await readBody(req, MAX_FORM_BYTES, 'token request')).toString('utf8'));
  const service = form.get('service');
  if (service !== null && service !== ac.options.service) {
    return oauthError(res, 400, 'invalid_request', `this token server issues tokens for service ${JSON.stringify(ac.options.service)}`);
  }
  const grantType = form.get('grant_type');
  let user: string;
  let refreshToken: string | undefined;
  if (grantType === 'password') {
    const username = form.get('username');
    const password = form.get('password');
    if (!username || password === null) return oauthError(res, 400, 'invalid_request', 'username and password are required');
    if (!(await ac.checkPassword(req, username, password))) return oauthError(res, 401, 'invalid_grant', 'invalid username or password');
    user = username;
    if (form.get('access_type') === 'offline') refreshToken = await refreshTokenFor(ac, user);
  } else if (grantType === 'refresh_token') {
    const token = form.get('refresh_token');
    if (!token) return oauthError(res, 400, 'invalid_request', 'refresh_token is required');
    const refresh = await ac.options.issuer!.verifyRefresh(token);
    const entry = refresh ? await ac.options.users?.entry(refresh.subject) : undefined;
    // The refresh token dies with the user's password entry: changed or removed, it is refused.
    if (!refresh || entry === undefined || refreshBinding(entry) !== refresh.binding) {
      return oauthError(res, 401, 'invalid_grant', 'invalid or revoked refresh token');
    }
    user = refresh.subject;
    refreshToken = token;
  } else {
    return oauthError(res, 400, 'unsupported_grant_type', 'grant_type must be password or refresh_token');
  }
  const access = ac.grantFor(user, parseScopes(form.getAll('scope')));
  const issued = await ac.options.issuer!.issue(user, access);
  const body: Record<string, unknown> = {
    access_token: issued.token,
    token: issued.token,
    scope: scopeList(access),
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt.toISOString(),
  };
  if (refreshToken) body.refresh_token = refreshToken;
  sendJson(res, 200, body);
}

async function refreshTokenFor(ac: AccessControl, user: string): Promise<string | undefined> {
  const entry = await ac.options.users?.entry(user);
  return entry === undefined ? undefined : ac.options.issuer!.issueRefresh(user, refreshBinding(entry));
}

function scopeList(access: AccessEntry[]): string {
  return access.map(formatScope).join(' ');
}
