/**
 * A writer's exclusive claim on an upload session while it streams a chunk. The claim is a
 * token on the session row (see upload-sessions.ts), renewed while the chunk streams. A writer
 * whose renewal failed, or did not succeed before the claim's expiry, has lost it: another
 * request may already own the session, so the writer must not write another byte (the Meter
 * asks `valid()` before passing each piece on), and its final transition is conditional on the
 * token anyway.
 */
import { randomUUID } from 'node:crypto';
import { errors } from '../../core/errors.js';
import type { Sessions } from './upload-sessions.js';

export const UPLOAD_LEASE_MS = 60_000;
/** A claim stops counting this long before its recorded expiry: other hosts' clocks may run ahead. */
const SKEW_MARGIN_MS = 5_000;

export class UploadLease {
  private validUntil: number;
  private lost = false;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly sessions: Sessions,
    readonly id: string,
    readonly token: string,
    claimedAt: number,
  ) {
    this.validUntil = claimedAt + UPLOAD_LEASE_MS - SKEW_MARGIN_MS;
  }

  /** Claims the session at `offset`; 416 if another request holds it or moved it. */
  static async acquire(sessions: Sessions, id: string, offset: number): Promise<UploadLease> {
    const token = randomUUID();
    const now = Date.now();
    if (!(await sessions.acquire(id, offset, token, now + UPLOAD_LEASE_MS))) {
      throw errors.rangeInvalid('another request is writing this upload', { offset });
    }
    return new UploadLease(sessions, id, token, now);
  }

  /** False once another writer may hold the session. */
  valid(): boolean {
    return !this.lost && Date.now() < this.validUntil;
  }

  /** Keeps the claim alive while a chunk streams. */
  startRenewing(): void {
    this.timer ??= setInterval(() => void this.renew(), UPLOAD_LEASE_MS / 3);
  }

  async renew(): Promise<void> {
    const at = Date.now();
    try {
      if (await this.sessions.renew(this.id, this.token, at + UPLOAD_LEASE_MS)) this.validUntil = at + UPLOAD_LEASE_MS - SKEW_MARGIN_MS;
      else this.lost = true;
    } catch {
      // Outcome unknown: the claim stays valid only until its last confirmed expiry.
    }
  }

  stopRenewing(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async release(): Promise<void> {
    this.stopRenewing();
    await this.sessions.release(this.id, this.token).catch(() => {});
  }
}
