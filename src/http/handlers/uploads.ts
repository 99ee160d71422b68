/** Blob uploads: POST (start, single-request, mount), and the session's GET, PATCH, PUT, DELETE. */
import { parseDigest } from '../../core/digest.js';
import type { AppendOptions, UploadState } from '../../core/interfaces.js';
import { parseRepositoryName, type RepositoryName } from '../../core/names.js';
import type { RequestContext } from '../context.js';
import type { MethodTable } from '../router.js';
import { contentLength, hasBody, parseContentRange } from '../request.js';
import { sendEmpty } from '../respond.js';
import { errors } from '../../core/errors.js';
import { quotaExceeded } from '../../core/policies.js';

function sessionHeaders(state: UploadState): Record<string, string> {
  return {
    Location: `/v2/${state.repository}/blobs/uploads/${state.id}`,
    'Docker-Upload-UUID': state.id,
    // The spec's inclusive range of received bytes; `0-0` for an empty session, as clients expect.
    Range: `0-${Math.max(state.offset - 1, 0)}`,
  };
}

function blobCreated(ctx: RequestContext, digest: string): void {
  sendEmpty(ctx.res, 201, { Location: `/v2/${ctx.name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
}

/** Chunk position and length from Content-Range and Content-Length. */
function chunkOptions(ctx: RequestContext): AppendOptions {
  const range = parseContentRange(ctx.req.headers['content-range']);
  const length = contentLength(ctx.req);
  if (range) {
    const span = range.end - range.start + 1;
    if (length !== undefined && length !== span) throw errors.rangeInvalid('Content-Range and Content-Length disagree');
    return { start: range.start, length: span };
  }
  return length === undefined ? {} : { length };
}

/**
 * Below this declared length a body is received without the early quota check: small bodies
 * (a push's configs and small layers) cost little to receive even when the commit refuses them,
 * and the check would cost every one of them a read of the rules.
 */
const QUOTA_PRECHECK_MIN_BYTES = 64 * 1024;

/**
 * Fails fast: a body whose declared length already exceeds what the repository's tightest quota
 * has left is refused before its bytes are read. The commit checks again, atomically.
 */
async function refuseOverQuota(ctx: RequestContext, start = 0): Promise<void> {
  const length = contentLength(ctx.req);
  if (!ctx.options.policies || length === undefined || length < QUOTA_PRECHECK_MIN_BYTES) return;
  const room = await ctx.options.policies.quotaRoom(ctx.name);
  if (room && start + length > room.limit - room.used) throw quotaExceeded(room, start + length);
}

/** `POST /v2/<name>/blobs/uploads/`: start a session, upload in one request (`?digest=`), or mount. */
async function startUpload(ctx: RequestContext): Promise<void> {
  const { registry, name, query, res, options, origin } = ctx;
  const repository = registry.repository(name, origin);
  const mount = query.get('mount');
  if (mount !== null) {
    const digest = parseDigest(mount);
    const from = query.get('from');
    const source = from === null ? null : validName(from);
    // An invalid `from` cannot hold the blob, and a mount the access check refused is not tried:
    // both fall back to a new session, as for any failed mount.
    if ((from === null || source !== undefined) && ctx.mountAllowed) {
      const mounted = await repository.blobs.mount(digest, source ?? null);
      if (mounted) return blobCreated(ctx, digest);
    }
  }
  const digestParam = query.get('digest');
  if (digestParam !== null) {
    const digest = parseDigest(digestParam);
    await refuseOverQuota(ctx);
    const session = await repository.uploads.start();
    try {
      await repository.uploads.complete(session.id, digest, hasBody(ctx.req) ? ctx.req : null, chunkOptions(ctx));
    } catch (err) {
      await repository.uploads.cancel(session.id).catch(() => {});
      throw err;
    }
    return blobCreated(ctx, digest);
  }
  const session = await repository.uploads.start();
  const headers = sessionHeaders(session);
  if (options.chunkMinLength) headers['OCI-Chunk-Min-Length'] = String(options.chunkMinLength);
  sendEmpty(res, 202, headers);
}

function validName(value: string): RepositoryName | undefined {
  try {
    return parseRepositoryName(value);
  } catch {
    return undefined;
  }
}

/** `GET /v2/<name>/blobs/uploads/<id>`: the session's progress. */
async function uploadStatus(ctx: RequestContext): Promise<void> {
  const state = await ctx.registry.repository(ctx.name, ctx.origin).uploads.get(ctx.param);
  sendEmpty(ctx.res, 204, sessionHeaders(state));
}

/** `PATCH /v2/<name>/blobs/uploads/<id>`: append a chunk (ranged, or streamed without a length). */
async function appendChunk(ctx: RequestContext): Promise<void> {
  await refuseOverQuota(ctx, parseContentRange(ctx.req.headers['content-range'])?.start ?? 0);
  const state = await ctx.registry.repository(ctx.name, ctx.origin).uploads.append(ctx.param, ctx.req, chunkOptions(ctx));
  sendEmpty(ctx.res, 202, sessionHeaders(state));
}

/** `PUT /v2/<name>/blobs/uploads/<id>?digest=`: the optional last chunk, then verify and commit. */
async function completeUpload(ctx: RequestContext): Promise<void> {
  const digestParam = ctx.query.get('digest');
  if (digestParam === null) throw errors.digestInvalid('the digest query parameter is required');
  const digest = parseDigest(digestParam);
  await refuseOverQuota(ctx, parseContentRange(ctx.req.headers['content-range'])?.start ?? 0);
  const uploads = ctx.registry.repository(ctx.name, ctx.origin).uploads;
  await uploads.complete(ctx.param, digest, hasBody(ctx.req) ? ctx.req : null, chunkOptions(ctx));
  blobCreated(ctx, digest);
}

/** `DELETE /v2/<name>/blobs/uploads/<id>`: abandon the session and its bytes. */
async function cancelUpload(ctx: RequestContext): Promise<void> {
  await ctx.registry.repository(ctx.name, ctx.origin).uploads.cancel(ctx.param);
  sendEmpty(ctx.res, 204);
}

export const uploadHandlers: MethodTable = { POST: startUpload };
export const uploadSessionHandlers: MethodTable = { GET: uploadStatus, PATCH: appendChunk, PUT: completeUpload, DELETE: cancelUpload };
