import { pipeline } from 'node:stream/promises';
import { parseDigest, type Digest } from '../../core/digest.js';
import { errors } from '../../core/errors.js';
import type { RequestContext } from '../context.js';
import type { MethodTable } from '../router.js';
import { parseRange } from '../request.js';
import { sendEmpty, sendError } from '../respond.js';

/**
 * The blob a lookup names: a path part that is no digest at all names no blob (404); one that
 * means to be a digest (`algorithm:…`) but is malformed or of an unknown algorithm is
 * DIGEST_INVALID (400), as for manifest references.
 */
function blobDigest(param: string): Digest {
  if (!param.includes(':')) throw errors.blobUnknown(param);
  return parseDigest(param);
}

/** `GET|HEAD /v2/<name>/blobs/<digest>`, with single byte ranges. */
async function getBlob({ registry, name, origin, param, req, res }: RequestContext): Promise<void> {
  const digest = blobDigest(param);
  const blobs = registry.repository(name, origin).blobs;
  const head = req.method === 'HEAD';
  const handle = head ? null : await blobs.open(digest);
  const info = head ? await blobs.stat(digest) : handle?.info;
  // Answered here rather than thrown: a push asks for every blob it is about to send, so this
  // 404 is as common as any answer, and a rejection travelling up the handler chain costs more.
  if (!info) return sendError(res, errors.blobUnknown(digest));
  if (handle?.directUrl) {
    // The spec allows a redirect for blob GETs: the bytes then flow from the object store.
    return sendEmpty(res, 307, { Location: await handle.directUrl(), 'Docker-Content-Digest': digest });
  }
  const headers: Record<string, string> = {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
    'Cache-Control': 'max-age=31536000',
  };
  const range = parseRange(req.headers.range, info.size);
  if (range === 'unsatisfiable') {
    return sendError(res, errors.rangeNotSatisfiable(info.size), { 'Content-Range': `bytes */${info.size}` });
  }
  if (range) {
    headers['Content-Range'] = `bytes ${range.start}-${range.end}/${info.size}`;
    headers['Content-Length'] = String(range.end - range.start + 1);
  } else {
    headers['Content-Length'] = String(info.size);
  }
  const status = range ? 206 : 200;
  if (!handle) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  // Open the bytes before answering, so that a storage failure is still a clean error response.
  const body = await handle.read(range);
  res.writeHead(status, headers);
  await (body.sendTo ? body.sendTo(res) : pipeline(body, res));
}

/** `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from the repository. */
async function deleteBlob({ registry, name, origin, param, res }: RequestContext): Promise<void> {
  await registry.repository(name, origin).blobs.delete(blobDigest(param));
  sendEmpty(res, 202);
}

export const blobHandlers: MethodTable = { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob };
