/**
 * The least a registry on Node.js does for the bench's workloads: node:http, every blob byte
 * hashed; blobs up to 64 KiB kept in memory (Portfolio keeps them in its database), larger ones
 * written to a file (not fsynced) and sent back through reused buffers as Portfolio sends them;
 * manifests and tags in memory. No database, no validation beyond the digest, no limits, no
 * metrics, no logging. What this process spends (CPU, resident memory) is what Node.js itself
 * costs under the same load: the yardstick `bench:floor` puts Portfolio's figures against.
 *
 * With FLOOR_S3_BUCKET (and the SDK's AWS_* environment), larger blobs go to S3 instead, under
 * FLOOR_S3_PREFIX: a monolithic PUT becomes a multipart upload of 8 MiB parts sent one after
 * another; a GET reads a presigned URL over a plain socket into reused buffers and hands them to
 * the response (src/backends/objects/s3-direct-read.ts), as Portfolio does from an http://
 * endpoint.
 *
 *   node dist/bench/floor-registry.js PORT DIR
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { directRead } from '../src/backends/objects/s3-direct-read.js';
import { sendThroughBuffers } from '../src/core/buffered-send.js';

const [port, dir] = [Number(process.argv[2]), process.argv[3]!];
await mkdir(join(dir, 'uploads'), { recursive: true });
await mkdir(join(dir, 'blobs'), { recursive: true });

/** Bodies up to this size are taken whole into memory, as Portfolio takes them into its database. */
const INLINE_BYTES = 64 * 1024;

interface Manifest {
  bytes: Buffer;
  type: string;
  digest: string;
}
/** Where larger blobs live: files under DIR, or S3 objects. */
interface BlobStore {
  /** Stores the whole body of a monolithic PUT under `id`. */
  receive(body: Readable, id: string, length: number): Promise<void>;
  /** Makes what was received under `id` the blob `digest`. */
  commit(id: string, digest: string): Promise<void>;
  size(digest: string): Promise<number | undefined>;
  send(digest: string, res: ServerResponse): Promise<void>;
}

/** Open sessions: each one's running digest. */
const uploads = new Map<string, Hash>();
/** Small blobs, by digest. */
const inline = new Map<string, Buffer>();
/** By `repo:tag` and `repo@digest`. */
const manifests = new Map<string, Manifest>();

function files(): BlobStore {
  const path = (digest: string) => join(dir, 'blobs', digest.replace(':', '-'));
  return {
    receive: (body, id) => pipeline(body, createWriteStream(join(dir, 'uploads', id))),
    commit: (id, digest) => rename(join(dir, 'uploads', id), path(digest)),
    size: async (digest) => (await stat(path(digest)).catch(() => null))?.size,
    async send(digest, res) {
      const file = await open(path(digest));
      try {
        await sendThroughBuffers(res, async (buffer) => {
          const { bytesRead } = await file.read(buffer, 0, buffer.length);
          return bytesRead === 0 ? null : buffer.subarray(0, bytesRead);
        });
      } finally {
        await file.close();
      }
    },
  };
}

/** Loaded only in this mode: the SDK's modules would otherwise count in the files mode's memory. */
async function s3(bucket: string, prefix: string): Promise<BlobStore> {
  const { S3Client, CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');
  const { getSignedUrl } = await import('@aws-sdk/s3-request-presigner');
  const { s3ClientConfig } = await import('../src/backends/objects/s3-store.js');
  const PART = 8 * 1024 * 1024;
  const client = new S3Client(s3ClientConfig());
  const keys = new Map<string, { key: string; size: number }>();
  const received = new Map<string, { key: string; size: number }>();
  return {
    async receive(body, id, length) {
      const Key = `${prefix}/${id}`;
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }));
      const parts: { ETag?: string; PartNumber: number }[] = [];
      const sendPart = async (Body: Buffer) => {
        const PartNumber = parts.length + 1;
        const { ETag } = await client.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber, Body, ContentLength: Body.length }));
        parts.push({ ETag, PartNumber });
      };
      let pending: Buffer[] = [];
      let bytes = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        pending.push(chunk);
        bytes += chunk.length;
        if (bytes < PART) continue;
        const whole = Buffer.concat(pending, bytes);
        pending = [whole.subarray(PART)];
        bytes -= PART;
        await sendPart(whole.subarray(0, PART));
      }
      if (bytes > 0) await sendPart(Buffer.concat(pending, bytes));
      await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
      received.set(id, { key: Key, size: length });
    },
    async commit(id, digest) {
      keys.set(digest, received.get(id)!);
      received.delete(id);
    },
    size: async (digest) => keys.get(digest)?.size,
    async send(digest, res) {
      const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: keys.get(digest)!.key }), { expiresIn: 60 });
      const body = await directRead(new URL(url));
      if (!body) throw new Error(`GET ${digest} from S3 failed`);
      await body.sendTo(res);
    },
  };
}

const bucket = process.env.FLOOR_S3_BUCKET;
const store = bucket ? await s3(bucket, process.env.FLOOR_S3_PREFIX ?? 'floor') : files();

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, status: number, headers: Record<string, string | number> = {}, body?: Buffer): void {
  res.writeHead(status, headers);
  res.end(body);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://floor');
  const path = url.pathname;
  if (path === '/v2/' || path === '/v2') return send(res, 200, { 'Content-Type': 'application/json' }, Buffer.from('{}'));
  let m = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(path);
  if (m) {
    const [, repo, id] = m as unknown as [string, string, string];
    if (req.method === 'POST') {
      const newId = randomUUID();
      uploads.set(newId, createHash('sha256'));
      req.resume();
      return send(res, 202, { Location: `/v2/${repo}/blobs/uploads/${newId}`, Range: '0-0' });
    }
    const hash = uploads.get(id);
    // Monolithic uploads only: the bench's figures need no PATCH.
    if (!hash || req.method !== 'PUT') return send(res, 404);
    uploads.delete(id);
    const length = Number(req.headers['content-length'] ?? NaN);
    let small: Buffer | undefined;
    if (length <= INLINE_BYTES) {
      small = await readBody(req);
      hash.update(small);
    } else {
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await Promise.all([pipeline(req, hashing), store.receive(hashing, id, length)]);
    }
    const digest = `sha256:${hash.digest('hex')}`;
    if (digest !== url.searchParams.get('digest')) return send(res, 400);
    if (small) inline.set(digest, small);
    else await store.commit(id, digest);
    return send(res, 201, { Location: `/v2/${repo}/blobs/${digest}`, 'Docker-Content-Digest': digest });
  }
  m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(path);
  if (m) {
    const digest = m[2]!;
    const small = inline.get(digest);
    const size = small?.length ?? (await store.size(digest));
    if (size === undefined) return send(res, 404);
    const headers = { 'Content-Length': size, 'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': digest };
    if (req.method === 'HEAD' || small) return send(res, 200, headers, req.method === 'HEAD' ? undefined : small);
    res.writeHead(200, headers);
    return store.send(digest, res);
  }
  m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
  if (m) {
    const [, repo, ref] = m as unknown as [string, string, string];
    if (req.method === 'PUT') {
      const bytes = await readBody(req);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      const manifest = { bytes, type: req.headers['content-type'] ?? '', digest };
      manifests.set(`${repo}@${digest}`, manifest);
      if (!ref.includes(':')) manifests.set(`${repo}:${ref}`, manifest);
      return send(res, 201, { Location: `/v2/${repo}/manifests/${digest}`, 'Docker-Content-Digest': digest });
    }
    const manifest = manifests.get(ref.includes(':') ? `${repo}@${ref}` : `${repo}:${ref}`);
    if (!manifest) return send(res, 404);
    const headers = { 'Content-Type': manifest.type, 'Content-Length': manifest.bytes.length, 'Docker-Content-Digest': manifest.digest };
    return send(res, 200, headers, req.method === 'HEAD' ? undefined : manifest.bytes);
  }
  send(res, 404);
}

createServer((req, res) => {
  handle(req, res).catch(() => {
    if (!res.headersSent) send(res, 500);
    else res.destroy();
  });
}).listen(port, '127.0.0.1', () => console.log('ready'));
