import { digestAlgorithm, digestOf } from '../../core/digest.js';
import { errors } from '../../core/errors.js';
import { MAX_MANIFEST_BYTES, parseManifest } from '../../core/manifest.js';
import { parseReference } from '../../core/names.js';
import type { RequestContext } from '../context.js';
import type { MethodTable } from '../router.js';
import { readBody } from '../request.js';
import { sendEmpty } from '../respond.js';

/** `GET|HEAD /v2/<name>/manifests/<reference>`: verbatim bytes with the pushed media type. */
async function getManifest({ registry, name, origin, param, req, res }: RequestContext): Promise<void> {
  const reference = parseReference(param);
  const manifests = registry.repository(name, origin).manifests;
  const head = req.method === 'HEAD';
  const found = head ? await manifests.head(reference) : await manifests.get(reference);
  if (!found) throw errors.manifestUnknown(param);
  const etag = `"${found.digest}"`;
  const headers: Record<string, string> = {
    'Content-Type': found.mediaType,
    'Docker-Content-Digest': found.digest,
    'Content-Length': String(found.size),
    ETag: etag,
  };
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    delete headers['Content-Length'];
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, headers);
  res.end('bytes' in found ? found.bytes : undefined);
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((candidate) => {
    const value = candidate.trim().replace(/^W\//, '');
    return value === '*' || value === etag;
  });
}

/** `PUT /v2/<name>/manifests/<reference>`: validate, check references, store, tag. */
async function putManifest({ registry, name, origin, param, req, res }: RequestContext): Promise<void> {
  const reference = parseReference(param);
  const bytes = await readBody(req, MAX_MANIFEST_BYTES, 'manifest');
  if (reference.kind === 'digest' && digestOf(bytes, digestAlgorithm(reference.digest)) !== reference.digest) {
    throw errors.digestInvalid('manifest digest does not match the reference', { reference: reference.digest });
  }
  const manifest = parseManifest(bytes, req.headers['content-type']);
  const result = await registry.repository(name, origin).manifests.put(reference, bytes, manifest);
  const headers: Record<string, string> = {
    Location: `/v2/${name}/manifests/${result.digest}`,
    'Docker-Content-Digest': result.digest,
  };
  if (result.subject) headers['OCI-Subject'] = result.subject;
  sendEmpty(res, 201, headers);
}

/** `DELETE /v2/<name>/manifests/<reference>`: a tag, or a manifest with its tags. */
async function deleteManifest({ registry, name, origin, param, res }: RequestContext): Promise<void> {
  await registry.repository(name, origin).manifests.delete(parseReference(param));
  sendEmpty(res, 202);
}

export const manifestHandlers: MethodTable = { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest };
