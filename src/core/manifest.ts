import { z } from 'zod';
import { errors } from './errors.js';
import { isDigestLike, parseDigest, type Digest } from './digest.js';

export const MediaType = {
  OCI_MANIFEST: 'application/vnd.oci.image.manifest.v1+json',
  OCI_INDEX: 'application/vnd.oci.image.index.v1+json',
  DOCKER_MANIFEST: 'application/vnd.docker.distribution.manifest.v2+json',
  DOCKER_MANIFEST_LIST: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** Manifest bodies above this size are refused with 413 (the spec's suggested 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * The most descriptors (config, layers, index entries, subject) one manifest may reference. Real
 * images have tens; a 4 MiB manifest could list about 30,000 minimal descriptors, each a row the
 * push must check and store in one transaction.
 */
export const MAX_MANIFEST_REFERENCES = 10_000;

const IMAGE_TYPES = new Set<string>([MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST]);
const INDEX_TYPES = new Set<string>([MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST]);
export const MANIFEST_MEDIA_TYPES: readonly string[] = [...IMAGE_TYPES, ...INDEX_TYPES];

/**
 * Layers a client may leave out of the registry: non-distributable (foreign) layers, fetched
 * from their `urls`. Every other descriptor must be present, `urls` or not.
 */
const FOREIGN_LAYER_TYPES = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

/** RFC 6838 type/subtype, the form of every media type a manifest may carry. */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
const mediaTypeString = z.string().regex(MEDIA_TYPE);

/** True for a string of a media type's form (RFC 6838): nothing else is ever stored as one. */
export function isMediaType(value: string): boolean {
  return MEDIA_TYPE.test(value);
}
const annotations = z.record(z.string(), z.string());
const descriptor = z.object({
  mediaType: mediaTypeString,
  digest: z.string().refine(isDigestLike, 'invalid digest'),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  annotations: annotations.optional(),
  artifactType: mediaTypeString.optional(),
  data: z.string().optional(),
  platform: z.object({}).passthrough().optional(),
});
export type Descriptor = z.infer<typeof descriptor>;

const imageManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: mediaTypeString.optional(),
  config: descriptor,
  layers: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: annotations.optional(),
});
const imageIndex = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: mediaTypeString.optional(),
  manifests: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: annotations.optional(),
});

/** What the registry needs to know about a manifest beyond its verbatim bytes. */
export interface ParsedManifest {
  mediaType: string;
  kind: 'image' | 'index';
  /** The referrers API's artifactType: the manifest's own, else the config media type. */
  artifactType: string | null;
  subject: Digest | null;
  /** Config and layer blobs that must be present in the repository. */
  blobs: Digest[];
  /** Child manifests (index entries) that must be present in the repository. */
  children: Digest[];
  annotations: Record<string, string> | null;
}

/**
 * Validates a pushed manifest against its declared media type and extracts its references.
 * `contentType` is the request's Content-Type; when the body names a mediaType they must agree.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw errors.manifestInvalid('manifest is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw errors.manifestInvalid('manifest is not a JSON object');
  const declared = (json as { mediaType?: unknown }).mediaType;
  if (declared !== undefined && typeof declared !== 'string') throw errors.manifestInvalid('mediaType must be a string');
  const requested = normalizeContentType(contentType);
  let mediaType: string;
  if (requested && MANIFEST_MEDIA_TYPES.includes(requested)) {
    if (declared !== undefined && declared !== requested) {
      throw errors.manifestInvalid('Content-Type does not match the manifest mediaType', { contentType: requested, mediaType: declared });
    }
    mediaType = requested;
  } else if (declared !== undefined) {
    mediaType = declared;
  } else {
    mediaType = 'manifests' in json ? MediaType.OCI_INDEX : MediaType.OCI_MANIFEST;
  }
  if (IMAGE_TYPES.has(mediaType)) return parseImage(json, mediaType);
  if (INDEX_TYPES.has(mediaType)) return parseIndex(json, mediaType);
  throw errors.manifestInvalid(`unsupported manifest media type ${mediaType}`);
}

function parseImage(json: unknown, mediaType: string): ParsedManifest {
  const result = imageManifest.safeParse(json);
  if (!result.success) throw errors.manifestInvalid('invalid image manifest', { issues: summarize(result.error) });
  const m = result.data;
  limitReferences(1 + m.layers.length + (m.subject ? 1 : 0));
  const blobs = [descriptorDigest(m.config), ...m.layers.filter((d) => !isForeign(d)).map((d) => descriptorDigest(d))];
  return {
    mediaType,
    kind: 'image',
    artifactType: m.artifactType ?? m.config.mediaType,
    subject: m.subject ? descriptorDigest(m.subject) : null,
    blobs: unique(blobs),
    children: [],
    annotations: m.annotations ?? null,
  };
}

function parseIndex(json: unknown, mediaType: string): ParsedManifest {
  const result = imageIndex.safeParse(json);
  if (!result.success) throw errors.manifestInvalid('invalid image index', { issues: summarize(result.error) });
  const m = result.data;
  limitReferences(m.manifests.length + (m.subject ? 1 : 0));
  return {
    mediaType,
    kind: 'index',
    artifactType: m.artifactType ?? null,
    subject: m.subject ? descriptorDigest(m.subject) : null,
    blobs: [],
    children: unique(m.manifests.map((d) => descriptorDigest(d))),
    annotations: m.annotations ?? null,
  };
}

/** A foreign layer with somewhere else to fetch it from (distribution requires the `urls`). */
function isForeign(layer: Descriptor): boolean {
  return FOREIGN_LAYER_TYPES.has(layer.mediaType) && layer.urls !== undefined && layer.urls.length > 0;
}

function limitReferences(count: number): void {
  if (count > MAX_MANIFEST_REFERENCES) {
    throw errors.manifestInvalid(`manifest references ${count} descriptors; the limit is ${MAX_MANIFEST_REFERENCES}`, {
      references: count,
      limit: MAX_MANIFEST_REFERENCES,
    });
  }
}

function descriptorDigest(d: Descriptor): Digest {
  try {
    return parseDigest(d.digest);
  } catch {
    throw errors.manifestInvalid('descriptor digest is invalid or uses an unsupported algorithm', { digest: d.digest });
  }
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

function summarize(error: z.ZodError): string[] {
  return error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
}

/** `application/foo+json; charset=utf-8` → `application/foo+json`. */
export function normalizeContentType(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const semi = value.indexOf(';');
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase() || undefined;
}
