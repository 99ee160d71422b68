/**
 * Where blob bytes live. The SQL metadata is the source of truth: an object no row points to
 * is garbage, and a row only points to an object whose upload completed.
 *
 * Uploads are written in place at their final key (no rename or copy when they finish): the
 * metadata keeps the key in the blob row. `state` is the store's own handle for an unfinished
 * upload (e.g. an S3 multipart upload id and part list), serialized so that any replica can
 * continue the upload.
 */
import type { Readable } from 'node:stream';
import type { BlobStream, ByteRange } from '../../core/interfaces.js';

export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date;
}

export interface ObjectStore {
  /** A short description for logs, e.g. `file:/var/lib/portfolio` or `s3://bucket/prefix`. */
  readonly description: string;
  /** Chunks smaller than this cost the store extra work; advertised to clients as OCI-Chunk-Min-Length. */
  readonly minChunkBytes?: number;
  /**
   * A time-limited URL from which a client may GET the object directly (S3 presigned URLs);
   * absent when the store has no such thing.
   */
  presignRead?(key: string, expiresInSeconds: number): Promise<string>;
  /** Streams a completed object, or an inclusive range of it. */
  read(key: string, range?: ByteRange): Promise<BlobStream>;
  stat(key: string): Promise<ObjectInfo | null>;
  /** Idempotent. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with `prefix` (for integrity checks and garbage collection). */
  list(prefix: string): AsyncIterable<ObjectInfo>;

  /** Starts an upload at `key`; returns the state to persist with the session. */
  beginUpload(key: string): Promise<string>;
  /**
   * Writes `body` at byte `offset` of the upload (bytes past `offset` from an earlier failed
   * append are discarded). Resolves once the bytes are durable, with the new state and size.
   */
  appendUpload(key: string, state: string, offset: number, body: Readable): Promise<{ state: string; size: number }>;
  /** Streams the bytes of an unfinished upload from the start (to recompute its digest). */
  readUpload(key: string, state: string, size: number): Promise<Readable>;
  /** Seals the upload of `size` bytes into the durable object at `key`. */
  completeUpload(key: string, state: string, size: number): Promise<void>;
  /**
   * Keys of uploads that keep auxiliary objects outside their key (S3 staging), so that those
   * of sessions that died without an abort can be found. Absent where there are none.
   */
  listStagedUploads?(): AsyncIterable<ObjectInfo>;
  /** Deletes an upload's auxiliary objects, leaving the object at its key alone. */
  discardStaged?(key: string): Promise<void>;
  /**
   * Stores a complete local file of `size` bytes as the durable object at `key` (the file is left
   * in place). The file store links it when `spoolDirectory` holds it, and copies it otherwise.
   */
  putFile(key: string, path: string, size: number): Promise<void>;
  /** A directory on the store's own filesystem for files that `putFile` then links; absent for remote stores. */
  readonly spoolDirectory?: string;
  /** Discards an unfinished upload and its bytes. Idempotent. */
  abortUpload(key: string, state: string): Promise<void>;
  close(): Promise<void>;
}
