/**
 * What can go wrong, in the registry's own terms. Every failure that reaches a client is a
 * RegistryError. A spec code is answered as raised; Portfolio's own reasons have no code in the
 * spec, and the http layer's table (src/http/errors.ts) answers each with a status and the spec
 * code that fits, the reason going into `detail`.
 */

/** The error codes of OCI distribution-spec v1.1.1 ("Error Codes"), plus the legacy TAG_INVALID it allows. */
export const SpecCode = {
  BLOB_UNKNOWN: 'BLOB_UNKNOWN',
  BLOB_UPLOAD_INVALID: 'BLOB_UPLOAD_INVALID',
  BLOB_UPLOAD_UNKNOWN: 'BLOB_UPLOAD_UNKNOWN',
  DIGEST_INVALID: 'DIGEST_INVALID',
  MANIFEST_BLOB_UNKNOWN: 'MANIFEST_BLOB_UNKNOWN',
  MANIFEST_INVALID: 'MANIFEST_INVALID',
  MANIFEST_UNKNOWN: 'MANIFEST_UNKNOWN',
  NAME_INVALID: 'NAME_INVALID',
  NAME_UNKNOWN: 'NAME_UNKNOWN',
  SIZE_INVALID: 'SIZE_INVALID',
  UNAUTHORIZED: 'UNAUTHORIZED',
  DENIED: 'DENIED',
  UNSUPPORTED: 'UNSUPPORTED',
  TOOMANYREQUESTS: 'TOOMANYREQUESTS',
  TAG_INVALID: 'TAG_INVALID',
} as const;
export type SpecCode = (typeof SpecCode)[keyof typeof SpecCode];

/**
 * The spec's codes plus Portfolio's own reasons, which have no code of their own in the spec
 * (the http table answers them with the spec code that fits and the reason in `detail`).
 */
export const ErrorCode = {
  ...SpecCode,
  /** An upload chunk that does not start at the session's offset, or a malformed Content-Range. */
  RANGE_INVALID: 'RANGE_INVALID',
  /** A download `Range` that lies outside the blob. */
  RANGE_NOT_SATISFIABLE: 'RANGE_NOT_SATISFIABLE',
  PAGINATION_NUMBER_INVALID: 'PAGINATION_NUMBER_INVALID',
  MANIFEST_REFERENCED: 'MANIFEST_REFERENCED',
  BLOB_REFERENCED: 'BLOB_REFERENCED',
  /** A push moving, or a delete removing, a tag an immutable-tag policy protects. */
  TAG_IMMUTABLE: 'TAG_IMMUTABLE',
  /** A manifest or blob larger than the registry accepts: the spec's SIZE_INVALID, with 413. */
  TOO_LARGE: 'SIZE_INVALID',
  /** A path no endpoint serves. */
  ENDPOINT_UNKNOWN: 'ENDPOINT_UNKNOWN',
  INTERNAL: 'INTERNAL_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class RegistryError extends Error {
  /**
   * `status` is the answer for a spec code; for Portfolio's own reasons the http table decides
   * (the factories below raise them with that same status, for code that reads `status`).
   */
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
  ) {
    // These are answers to clients (a HEAD for a blob not pushed yet is one on every push), not
    // faults: no stack trace to capture, which costs more than the rest of such a request.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = 'RegistryError';
  }
}

/** Shorthands for the errors raised in more than one place. */
export const errors = {
  nameInvalid: (name: string) => new RegistryError(400, ErrorCode.NAME_INVALID, 'invalid repository name', { name }),
  nameUnknown: (name: string) => new RegistryError(404, ErrorCode.NAME_UNKNOWN, 'repository name not known to registry', { name }),
  tagInvalid: (tag: string) => new RegistryError(400, ErrorCode.TAG_INVALID, 'invalid tag', { tag }),
  digestInvalid: (message: string, detail?: unknown) => new RegistryError(400, ErrorCode.DIGEST_INVALID, message, detail),
  blobUnknown: (digest: string) => new RegistryError(404, ErrorCode.BLOB_UNKNOWN, 'blob unknown to registry', { digest }),
  uploadUnknown: (id: string) => new RegistryError(404, ErrorCode.BLOB_UPLOAD_UNKNOWN, 'blob upload unknown to registry', { id }),
  uploadInvalid: (message: string) => new RegistryError(400, ErrorCode.BLOB_UPLOAD_INVALID, message),
  rangeInvalid: (message: string, detail?: unknown) => new RegistryError(416, ErrorCode.RANGE_INVALID, message, detail),
  rangeNotSatisfiable: (size: number) => new RegistryError(416, ErrorCode.RANGE_NOT_SATISFIABLE, 'requested range not satisfiable', { size }),
  manifestUnknown: (reference: string) => new RegistryError(404, ErrorCode.MANIFEST_UNKNOWN, 'manifest unknown', { reference }),
  manifestInvalid: (message: string, detail?: unknown) => new RegistryError(400, ErrorCode.MANIFEST_INVALID, message, detail),
  manifestBlobUnknown: (digest: string) =>
    new RegistryError(400, ErrorCode.MANIFEST_BLOB_UNKNOWN, 'manifest references a blob or manifest unknown to the repository', { digest }),
  tooLarge: (what: string, limit: number) => new RegistryError(413, ErrorCode.TOO_LARGE, `${what} exceeds the limit of ${limit} bytes`, { limit }),
  sizeInvalid: (message: string) => new RegistryError(400, ErrorCode.SIZE_INVALID, message),
  unsupported: (message: string) => new RegistryError(405, ErrorCode.UNSUPPORTED, message),
  endpointUnknown: () => new RegistryError(404, ErrorCode.ENDPOINT_UNKNOWN, 'no such endpoint'),
  paginationInvalid: (message: string) => new RegistryError(400, ErrorCode.PAGINATION_NUMBER_INVALID, message),
  conflict: (code: ErrorCode, message: string, detail?: unknown) => new RegistryError(409, code, message, detail),
  internal: () => new RegistryError(500, ErrorCode.INTERNAL, 'internal server error'),
};
