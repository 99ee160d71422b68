import { parseDigest } from '../../core/digest.js';
import { isMediaType, MAX_MANIFEST_BYTES, MediaType, type Descriptor } from '../../core/manifest.js';
import type { RequestContext } from '../context.js';
import type { MethodTable } from '../router.js';
import { sendJson } from '../respond.js';

/**
 * `GET /v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is `digest`.
 * Clients read it as a manifest, so a response stays within the manifest size limit; past it the
 * list continues on the page a `Link: <…?last=<digest>>; rel="next"` header names.
 */
async function listReferrers({ registry, name, param, query, res }: RequestContext): Promise<void> {
  const subject = parseDigest(param);
  const artifactType = query.get('artifactType') ?? undefined;
  const last = query.get('last');
  // A filter that is no media type matches nothing stored (and may hold bytes, such as NUL, that
  // a database refuses in a query).
  const all = artifactType !== undefined && !isMediaType(artifactType) ? [] : await registry.repository(name).manifests.referrers(subject, artifactType);
  // Pages are cut in digest order, compared here so that the cursor does not depend on a collation.
  const rest = all.filter((d) => last === null || d.digest > last).sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  const manifests = pageOf(rest, MAX_MANIFEST_BYTES);
  const headers: Record<string, string> = artifactType !== undefined ? { 'OCI-Filters-Applied': 'artifactType' } : {};
  const end = manifests[manifests.length - 1];
  if (manifests.length < rest.length && end) {
    const next = new URLSearchParams({ ...(artifactType !== undefined ? { artifactType } : {}), last: end.digest });
    headers.Link = `</v2/${name}/referrers/${subject}?${next.toString()}>; rel="next"`;
  }
  sendJson(res, 200, { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests }, headers, MediaType.OCI_INDEX);
}

/** The leading descriptors whose index fits in `limit` bytes (at least one, so paging always advances). */
function pageOf(descriptors: Descriptor[], limit: number): Descriptor[] {
  let bytes = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: [] }).length;
  let count = 0;
  for (const d of descriptors) {
    bytes += Buffer.byteLength(JSON.stringify(d)) + 1;
    if (count > 0 && bytes > limit) break;
    count++;
  }
  return descriptors.slice(0, count);
}

export const referrersHandlers: MethodTable = { GET: listReferrers };
