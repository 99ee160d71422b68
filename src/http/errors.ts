/**
 * The one place that turns a RegistryError into what the client sees. The spec fixes the list of
 * error codes a JSON body may carry; Portfolio's own reasons are answered with the status and
 * spec code in REASONS, the reason itself going into `detail.reason`.
 */
import { ErrorCode, SpecCode, type RegistryError } from '../core/errors.js';

type Reason = Exclude<ErrorCode, SpecCode>;

interface Answer {
  status: number;
  /** The spec code of the JSON envelope; null: no envelope (the spec lists no code for it). */
  code: SpecCode | null;
}

const REASONS: Record<Reason, Answer> = {
  // The spec: an out-of-order chunk is 416; the upload is what is invalid.
  RANGE_INVALID: { status: 416, code: SpecCode.BLOB_UPLOAD_INVALID },
  // RFC 9110's 416 for a download range outside the blob: the range does not fit its size.
  RANGE_NOT_SATISFIABLE: { status: 416, code: SpecCode.SIZE_INVALID },
  PAGINATION_NUMBER_INVALID: { status: 400, code: SpecCode.UNSUPPORTED },
  // Deletes the registry refuses, to keep every manifest complete.
  BLOB_REFERENCED: { status: 409, code: SpecCode.DENIED },
  MANIFEST_REFERENCED: { status: 409, code: SpecCode.DENIED },
  // Harbor answers 412, Docker Hub 403; a conflict with the tag's current state fits best (docs/policies.md).
  TAG_IMMUTABLE: { status: 409, code: SpecCode.DENIED },
  // A path that is no endpoint names nothing the registry knows (UNSUPPORTED is the 405 of a method).
  ENDPOINT_UNKNOWN: { status: 404, code: SpecCode.NAME_UNKNOWN },
  // The spec's codes are all about the request; a failure of the server carries none.
  INTERNAL_ERROR: { status: 500, code: null },
};

/**
 * Path parts that cannot name anything: a lookup (GET, HEAD, DELETE) finds nothing, 404 as
 * for any unknown name; a write (POST, PUT, PATCH) is refused as invalid, 400.
 */
const NOT_FOUND_ON_LOOKUP: Partial<Record<ErrorCode, SpecCode>> = {
  [ErrorCode.NAME_INVALID]: SpecCode.NAME_UNKNOWN,
  [ErrorCode.TAG_INVALID]: SpecCode.MANIFEST_UNKNOWN,
};
const LOOKUPS = new Set(['GET', 'HEAD', 'DELETE']);

export interface ErrorAnswer {
  status: number;
  /** The spec's error envelope, or a plain message when no spec code applies. */
  body: { errors: { code: SpecCode; message: string; detail: unknown }[] } | string;
}

export function answerFor(error: RegistryError, method: string | undefined): ErrorAnswer {
  const notFound = LOOKUPS.has(method ?? 'GET') ? NOT_FOUND_ON_LOOKUP[error.code] : undefined;
  if (notFound) return envelope(404, notFound, error.message, error.detail);
  if (isSpecCode(error.code)) return envelope(error.status, error.code, error.message, error.detail);
  const answer = REASONS[error.code];
  if (answer.code === null) return { status: answer.status, body: error.message };
  return envelope(answer.status, answer.code, error.message, withReason(error.code, error.detail));
}

function envelope(status: number, code: SpecCode, message: string, detail: unknown): ErrorAnswer {
  return { status, body: { errors: [{ code, message, detail: detail ?? null }] } };
}

const SPEC_CODES = new Set<string>(Object.values(SpecCode));
function isSpecCode(code: ErrorCode): code is SpecCode {
  return SPEC_CODES.has(code);
}

function withReason(reason: Reason, detail: unknown): Record<string, unknown> {
  if (detail === undefined || detail === null) return { reason };
  if (typeof detail === 'object' && !Array.isArray(detail)) return { reason, ...(detail as Record<string, unknown>) };
  return { reason, detail };
}
