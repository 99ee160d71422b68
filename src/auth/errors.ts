/**
 * Failures of the auth layer that are not about who the caller is. The HTTP edge maps them to
 * the spec's answer (429 TOOMANYREQUESTS with Retry-After).
 */

/** Too many failed logins from a client or for a user name, or too many checks waiting. */
export class LoginThrottled extends Error {
  constructor(
    message: string,
    /** Whole seconds after which a new attempt may be admitted. */
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.name = 'LoginThrottled';
  }
}
