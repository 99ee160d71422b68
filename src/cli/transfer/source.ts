/** What an import reads from: repositories, each with manifests, tags and blobs addressed by digest. */
import type { Readable } from 'node:stream';
import type { Digest } from '../../core/digest.js';

export interface SourceManifest {
  bytes: Buffer;
  /** The media type the source recorded (its descriptor or the body's own), when it did. */
  mediaType?: string;
}

/** A blob's bytes, opened: consume or destroy the stream. */
export interface SourceBlob {
  size: number;
  stream: Readable;
}

export interface SourceRepository {
  /** Destination repository name. */
  readonly name: string;
  /** Tags to set once everything they reach is in, in order. */
  readonly tags: readonly { tag: string; digest: Digest }[];
  /** Manifests to bring in besides the tagged ones: untagged revisions, referrers. */
  readonly manifests: readonly Digest[];
  manifest(digest: Digest): Promise<SourceManifest>;
  /** A blob's bytes, or null when the source does not have it. */
  blob(digest: Digest): Promise<SourceBlob | null>;
  /** Manifests whose subject is `digest`, where the source can list them (a remote's referrers API). */
  referrers?(digest: Digest): Promise<Digest[]>;
}

export interface ImageSource {
  readonly description: string;
  repositories(): AsyncIterable<SourceRepository>;
  close(): Promise<void>;
}
