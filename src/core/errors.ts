/**
 * Distribution error codes (OCI distribution-spec v1.1.1, "Error Codes") plus the few
 * Portfolio adds. Every failure that reaches a client is a RegistryError; the http layer
 * turns it into the spec's JSON envelope.
 */
export const ErrorCode = {
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
  TAG_INVALID: 'TAG_INVALID',
  UNAUTHORIZED: 'UNAUTHORIZED',
  DENIED: 'DENIED',
  UNSUPPORTED: 'UNSUPPORTED',
  TOOMANYREQUESTS: 'TOOMANYREQUESTS',
  RANGE_INVALID: 'RANGE_INVALID',
  PAGINATION_NUMBER_INVALID: 'PAGINATION_NUMBER_INVALID',
  MANIFEST_REFERENCED: 'MANIFEST_REFERENCED',
  BLOB_REFERENCED: 'BLOB_REFERENCED',
  TOO_LARGE: 'SIZE_INVALID',
  INTERNAL: 'INTERNAL_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
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
  manifestUnknown: (reference: string) => new RegistryError(404, ErrorCode.MANIFEST_UNKNOWN, 'manifest unknown', { reference }),
  manifestInvalid: (message: string, detail?: unknown) => new RegistryError(400, ErrorCode.MANIFEST_INVALID, message, detail),
  manifestBlobUnknown: (digest: string) =>
    new RegistryError(400, ErrorCode.MANIFEST_BLOB_UNKNOWN, 'manifest references a blob or manifest unknown to the repository', { digest }),
  tooLarge: (what: string, limit: number) => new RegistryError(413, ErrorCode.SIZE_INVALID, `${what} exceeds the limit of ${limit} bytes`, { limit }),
  sizeInvalid: (message: string) => new RegistryError(400, ErrorCode.SIZE_INVALID, message),
  unsupported: (message: string) => new RegistryError(405, ErrorCode.UNSUPPORTED, message),
  endpointUnknown: () => new RegistryError(404, ErrorCode.UNSUPPORTED, 'no such endpoint'),
  paginationInvalid: (message: string) => new RegistryError(400, ErrorCode.PAGINATION_NUMBER_INVALID, message),
  conflict: (code: ErrorCode, message: string, detail?: unknown) => new RegistryError(409, code, message, detail),
};
