import { parseDigest } from '../../core/digest.js';
import { MediaType } from '../../core/manifest.js';
import type { RequestContext } from '../context.js';
import type { MethodTable } from '../router.js';
import { sendJson } from '../respond.js';

/** `GET /v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is `digest`. */
async function listReferrers({ registry, name, param, query, res }: RequestContext): Promise<void> {
  const subject = parseDigest(param);
  const artifactType = query.get('artifactType') ?? undefined;
  const manifests = await registry.repository(name).manifests.referrers(subject, artifactType);
  const headers: Record<string, string> = artifactType !== undefined ? { 'OCI-Filters-Applied': 'artifactType' } : {};
  sendJson(res, 200, { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests }, headers, MediaType.OCI_INDEX);
}

export const referrersHandlers: MethodTable = { GET: listReferrers };
