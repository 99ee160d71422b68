/**
 * Bearer tokens of the Docker token-auth scheme (docker-registry-auth jwt.md, scope.md): JWTs
 * signed ES256 whose `access` claim lists what they grant, and the refresh tokens of the OAuth2
 * flow. Verification accepts Portfolio's own tokens (its public key) and, when configured, the
 * tokens of an external issuer (its JWKS, from a file or a URL).
 */
import { createHash, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ACTIONS } from './actions.js';

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/**
 * Parses one resource scope, `type[(class)]:name:action[,action]` (scope.md). The name may hold
 * one `:` (a registry host with a port), so the type ends at the first `:` and the actions
 * start after the last. Returns null for anything else.
 */
export function parseScope(scope: string): AccessEntry | null {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return null;
  const type = scope.slice(0, first).replace(/\([a-z0-9]+\)$/, '');
  if (!/^[a-z0-9]+$/.test(type)) return null;
  const name = scope.slice(first + 1, last);
  if (name === '') return null;
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((a) => /^[a-z*]+$/.test(a));
  return { type, name, actions: [...new Set(actions)] };
}

/** Every scope in a list of `scope` parameters, each of which may be a space-separated list. */
export function parseScopes(values: string[]): AccessEntry[] {
  return values.flatMap((v) => v.split(' ')).flatMap((s) => {
    const entry = s ? parseScope(s) : null;
    return entry ? [entry] : [];
  });
}

export function formatScope(entry: AccessEntry): string {
  return `${entry.type}:${entry.name}:${entry.actions.join(',')}`;
}

/** True when the access list grants `action` on the resource (`*` grants every action). */
export function accessAllows(access: AccessEntry[], type: string, name: string, action: string): boolean {
  return access.some((e) => e.type === type && e.name === name && (e.actions.includes(action) || e.actions.includes('*')));
}

/** The libtrust key ID distribution uses: SHA-256 of the DER public key, 240 bits in base32, groups of 4. */
export function keyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const byte of digest) bits += byte.toString(2).padStart(8, '0');
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return out.match(/.{4}/g)!.join(':');
}

export interface IssuerOptions {
  /** `iss` of issued tokens. */
  issuer: string;
  /** The registry's service name: `aud` of issued tokens. */
  service: string;
  ttlSeconds: number;
}

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: Date;
}

const REFRESH_CLAIM = 'portfolio_refresh';

export class TokenIssuer {
  readonly kid: string;
  readonly publicKey: KeyObject;

  constructor(
    private readonly privateKey: KeyObject,
    readonly options: IssuerOptions,
  ) {
    if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('the token signing key must be an EC P-256 private key (ES256)');
    }
    this.publicKey = createPublicKey(privateKey);
    this.kid = keyId(this.publicKey);
  }

  async issue(subject: string, access: AccessEntry[], ttlSeconds = this.options.ttlSeconds): Promise<IssuedToken> {
    const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const iat = issuedAt.getTime() / 1000;
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: this.kid })
      .setIssuer(this.options.issuer)
      .setSubject(subject)
      .setAudience(this.options.service)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + ttlSeconds)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(this.privateKey);
    return { token, expiresIn: ttlSeconds, issuedAt };
  }

  /**
   * A refresh token for `subject`: good only at this token endpoint, for this service, and only
   * while `binding` (derived from the user's password entry) is unchanged. It has no expiry
   * (token.md); changing the password or removing the user revokes it.
   */
  async issueRefresh(subject: string, binding: string): Promise<string> {
    return new SignJWT({ [REFRESH_CLAIM]: binding })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: this.kid })
      .setIssuer(this.options.issuer)
      .setSubject(subject)
      .setAudience(this.options.service)
      .setIssuedAt()
      .setJti(randomBytes(16).toString('base64url'))
      .sign(this.privateKey);
  }

  /** The subject and binding of a valid refresh token, or null. */
  async verifyRefresh(token: string): Promise<{ subject: string; binding: string } | null> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, {
        algorithms: ['ES256'],
        issuer: this.options.issuer,
        audience: this.options.service,
      });
      const binding = payload[REFRESH_CLAIM];
      if (typeof binding !== 'string' || typeof payload.sub !== 'string') return null;
      return { subject: payload.sub, binding };
    } catch {
      return null;
    }
  }
}

/** Derives a refresh token's binding from a password entry (a hash of the hash). */
export function refreshBinding(passwordHash: string): string {
  return createHash('sha256').update('portfolio-refresh\0').update(passwordHash).digest('base64url').slice(0, 22);
}

export interface VerifiedToken {
  subject: string;
  access: AccessEntry[];
  /** True for Portfolio's own tokens (the access policy knows their subjects). */
  ours: boolean;
  expiresAt: number;
}

export interface ExternalIssuer {
  issuer: string;
  audience: string;
  keys: JWTVerifyGetKey;
}

export class TokenVerifier {
  private readonly cache = new Map<string, VerifiedToken>();

  constructor(
    private readonly own: { publicKey: KeyObject; issuer: string; audience: string } | null,
    private readonly external: ExternalIssuer | null,
  ) {}

  /** The token's subject and access, or a reason it is not valid. Verified tokens are cached until they expire. */
  async verify(token: string): Promise<VerifiedToken | { error: string }> {
    const now = Date.now();
    const hit = this.cache.get(token);
    if (hit && hit.expiresAt > now) return hit;
    if (hit) this.cache.delete(token);
    let payload: JWTPayload;
    let ours: boolean;
    try {
      const unverifiedIssuer = issuerOf(token);
      if (this.own && unverifiedIssuer === this.own.issuer) {
        ({ payload } = await jwtVerify(token, this.own.publicKey, {
          algorithms: ['ES256'],
          issuer: this.own.issuer,
          audience: this.own.audience,
          requiredClaims: ['exp'],
          clockTolerance: 30,
        }));
        ours = true;
      } else if (this.external && unverifiedIssuer === this.external.issuer) {
        ({ payload } = await jwtVerify(token, this.external.keys, {
          issuer: this.external.issuer,
          audience: this.external.audience,
          requiredClaims: ['exp'],
          clockTolerance: 30,
        }));
        ours = false;
      } else {
        return { error: 'token from an untrusted issuer' };
      }
    } catch (err) {
      return { error: (err as Error).message || 'invalid token' };
    }
    if (payload[REFRESH_CLAIM] !== undefined) return { error: 'a refresh token is not an access token' };
    const access = normaliseAccess(payload.access);
    if (access === null) return { error: 'malformed access claim' };
    const verified: VerifiedToken = { subject: typeof payload.sub === 'string' ? payload.sub : '', access, ours, expiresAt: payload.exp! * 1000 };
    if (this.cache.size >= 10_000) {
      for (const [k, v] of this.cache) if (v.expiresAt <= now) this.cache.delete(k);
      if (this.cache.size >= 10_000) this.cache.clear();
    }
    this.cache.set(token, verified);
    return verified;
  }
}

function issuerOf(token: string): string | undefined {
  const part = token.split('.')[1];
  if (!part || part.length > 64 * 1024) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { iss?: unknown };
    return typeof claims.iss === 'string' ? claims.iss : undefined;
  } catch {
    return undefined;
  }
}

function normaliseAccess(value: unknown): AccessEntry[] | null {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return null;
  const out: AccessEntry[] = [];
  for (const item of value) {
    if (typeof item !== 'object' || item === null) return null;
    const { type, name, actions } = item as Record<string, unknown>;
    if (typeof type !== 'string' || typeof name !== 'string' || !Array.isArray(actions)) return null;
    out.push({ type, name, actions: actions.filter((a): a is string => typeof a === 'string') });
  }
  return out;
}

/** Actions a token request may ask for on a repository; `*` stands for all of them. */
export function requestedActions(actions: string[]): string[] {
  return actions.includes('*') ? [...ACTIONS] : actions;
}
