import { errors } from './errors.js';
import { isDigestLike, parseDigest, type Digest } from './digest.js';

/** A repository name that satisfies the distribution-spec grammar. */
export type RepositoryName = string & { readonly __repository: unique symbol };

// distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
const NAME_GRAMMAR = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_GRAMMAR = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Longest accepted name; the spec asks clients to stay under 255 characters with the hostname. */
export const MAX_NAME_LENGTH = 255;

export function parseRepositoryName(value: string): RepositoryName {
  if (value.length === 0 || value.length > MAX_NAME_LENGTH || !NAME_GRAMMAR.test(value)) throw errors.nameInvalid(value);
  return value as RepositoryName;
}

export function isValidTag(value: string): boolean {
  return TAG_GRAMMAR.test(value);
}

/** A manifest reference: a tag or a digest. */
export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export function parseReference(value: string): Reference {
  if (value.includes(':')) {
    if (!isDigestLike(value)) throw errors.digestInvalid('invalid digest reference', { reference: value });
    return { kind: 'digest', digest: parseDigest(value) };
  }
  if (!isValidTag(value)) throw errors.tagInvalid(value);
  return { kind: 'tag', tag: value };
}

export function referenceString(reference: Reference): string {
  return reference.kind === 'tag' ? reference.tag : reference.digest;
}
