import { createHash, type Hash } from 'node:crypto';
import { errors } from './errors.js';

/** Digest algorithms the registry computes and verifies. */
export type DigestAlgorithm = 'sha256' | 'sha512';
const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

/** A validated `algorithm:hex` content digest. */
export type Digest = string & { readonly __digest: unique symbol };

// The grammar of image-spec descriptor.md: algorithm-component (separator component)* ":" encoded.
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isDigestLike(value: string): boolean {
  return DIGEST_GRAMMAR.test(value);
}

/** Parses a digest a client sent; anything the registry cannot verify is DIGEST_INVALID. */
export function parseDigest(value: string | null | undefined): Digest {
  if (!value || !DIGEST_GRAMMAR.test(value)) throw errors.digestInvalid('invalid digest', { digest: value ?? '' });
  const colon = value.indexOf(':');
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw errors.digestInvalid(`unsupported digest algorithm ${algorithm}`, { digest: value });
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw errors.digestInvalid('digest encoding does not match its algorithm', { digest: value });
  }
  return value as Digest;
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

export function createHasher(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function finishDigest(algorithm: DigestAlgorithm, hash: Hash): Digest {
  return `${algorithm}:${hash.digest('hex')}` as Digest;
}

export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest;
}
