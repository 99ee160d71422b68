/**
 * Login sessions of the web interface, kept server-side: the cookie holds only a random id.
 * Each session has a CSRF token that every change made with the session must echo in the
 * `X-Portfolio-CSRF` header (the double-submit pattern: the token is also in a cookie that the
 * page's script reads; a cross-site page can send the session cookie — not with SameSite=Strict,
 * but as a second line — yet cannot read the token).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export const SESSION_COOKIE = 'portfolio_session';
export const CSRF_COOKIE = 'portfolio_csrf';
export const CSRF_HEADER = 'x-portfolio-csrf';

export interface Session {
  id: string;
  user: string;
  csrf: string;
  expiresAt: number;
}

/** A session begun or ended, for the other processes that serve the same interface (serve --workers). */
export type SessionChange = { created: Session } | { ended: string };

/** Sessions past this count push out the oldest (bounded memory whatever the login rate). */
const MAX_SESSIONS = 10_000;

export class Sessions {
  private readonly sessions = new Map<string, Session>();

  /** Told of every session this process begins or ends. */
  onChange: ((change: SessionChange) => void) | undefined;

  constructor(readonly ttlMs: number) {}

  /** A change another process made. */
  apply(change: SessionChange, now = Date.now()): void {
    if ('ended' in change) this.sessions.delete(change.ended);
    else this.add(change.created, now);
  }

  create(user: string, now = Date.now()): Session {
    const session = { id: token(), user, csrf: token(), expiresAt: now + this.ttlMs };
    this.add(session, now);
    this.onChange?.({ created: session });
    return session;
  }

  private add(session: Session, now: number): void {
    this.sweep(now);
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(session.id, session);
  }

  /** The live session the request's cookie names, or null. */
  of(req: IncomingMessage, now = Date.now()): Session | null {
    const id = cookies(req).get(SESSION_COOKIE);
    if (id === undefined) return null;
    const session = this.sessions.get(id);
    if (!session) return null;
    if (session.expiresAt <= now) {
      this.sessions.delete(id);
      return null;
    }
    return session;
  }

  end(session: Session): void {
    this.sessions.delete(session.id);
    this.onChange?.({ ended: session.id });
  }

  /** Whether the request echoes the session's CSRF token in its header. */
  csrfMatches(req: IncomingMessage, session: Session): boolean {
    const sent = req.headers[CSRF_HEADER];
    if (typeof sent !== 'string') return false;
    const a = Buffer.from(sent);
    const b = Buffer.from(session.csrf);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Set-Cookie headers for a new session (or, with null, ones that clear it). */
  cookieHeaders(req: IncomingMessage, session: Session | null): string[] {
    const secure = (req.socket as { encrypted?: boolean }).encrypted === true ? '; Secure' : '';
    const age = session ? Math.floor(this.ttlMs / 1000) : 0;
    return [
      `${SESSION_COOKIE}=${session?.id ?? ''}; Path=/; Max-Age=${age}; HttpOnly; SameSite=Strict${secure}`,
      `${CSRF_COOKIE}=${session?.csrf ?? ''}; Path=/; Max-Age=${age}; SameSite=Strict${secure}`,
    ];
  }

  private sweep(now: number): void {
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
  }
}

function token(): string {
  return randomBytes(32).toString('base64url');
}

/** The request's cookies by name (first wins). */
export function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  const header = req.headers.cookie;
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

export function setCookies(res: ServerResponse, values: string[]): void {
  res.setHeader('Set-Cookie', values);
}
