/** Image references as archives record them: `tag`, `name:tag`, `host:port/name:tag`. */
import { isValidTag } from '../../core/names.js';

/**
 * Splits a reference into repository (registry host removed) and tag. A bare tag has no repository;
 * a name without a tag has no tag.
 */
export function splitReference(ref: string): { repository?: string; tag?: string } {
  const at = ref.indexOf('@');
  const withoutDigest = at === -1 ? ref : ref.slice(0, at);
  const slash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  let name = withoutDigest;
  let tag: string | undefined;
  if (colon > slash) {
    name = withoutDigest.slice(0, colon);
    tag = withoutDigest.slice(colon + 1);
  } else if (slash === -1 && isValidTag(withoutDigest)) {
    return { tag: withoutDigest };
  }
  if (tag !== undefined && !isValidTag(tag)) throw new Error(`invalid tag in reference ${JSON.stringify(ref)}`);
  const parts = name.split('/');
  // A first component with a dot or a port, or `localhost`, is a registry host.
  if (parts.length > 1 && (/[.:]/.test(parts[0]!) || parts[0] === 'localhost')) parts.shift();
  return { repository: parts.join('/') || undefined, tag };
}
