/**
 * Writes tagged images of one repository, with everything they reach and their referrers, as an
 * OCI image layout (a directory or a tar stream). Tags become `org.opencontainers.image.ref.name`
 * (what `skopeo copy oci:DEST:TAG` looks up); referrers are listed untagged so an import brings
 * them back. With `docker`, a docker save `manifest.json` is added for `docker load`.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { Digest } from '../../core/digest.js';
import type { Repository } from '../../core/interfaces.js';
import { MediaType, parseManifest } from '../../core/manifest.js';
import { blobPath } from './oci-layout-source.js';
import type { Progress } from './progress.js';
import { TarWriter } from './tar-writer.js';

export interface ExportSummary {
  manifests: number;
  blobs: number;
  bytes: number;
  tags: string[];
}

interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
}

/** Where a layout's files go: a directory or a tar. */
interface Sink {
  file(name: string, content: Buffer | { size: number; stream: Readable }): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

export interface ExportOptions {
  repository: Repository;
  /** Tags to export; empty means every tag. */
  tags: string[];
  dest: string;
  tar: boolean;
  /** Also write docker save's manifest.json (tags that are images, or an index's linux/amd64 entry). */
  docker: boolean;
  progress?: Progress;
}

export async function exportRepository(options: ExportOptions): Promise<ExportSummary> {
  const { repository } = options;
  const tags = options.tags.length ? options.tags : await allTags(repository);
  if (tags.length === 0) throw new Error(`repository ${repository.name} has no tags to export`);
  const sink = options.tar ? await tarSink(options.dest) : await dirSink(options.dest);
  const summary: ExportSummary = { manifests: 0, blobs: 0, bytes: 0, tags };
  const written = new Set<Digest>();
  const index: Descriptor[] = [];
  const dockerEntries: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const manifests = new Map<Digest, { bytes: Buffer; mediaType: string }>();

  const manifest = async (digest: Digest): Promise<{ bytes: Buffer; mediaType: string }> => {
    const cached = manifests.get(digest);
    if (cached) return cached;
    const found = await repository.manifests.get({ kind: 'digest', digest });
    if (!found) throw new Error(`${repository.name}@${digest}: manifest is gone`);
    const entry = { bytes: found.bytes, mediaType: found.mediaType };
    manifests.set(digest, entry);
    return entry;
  };

  const blob = async (digest: Digest): Promise<void> => {
    if (written.has(digest)) return;
    written.add(digest);
    const handle = await repository.blobs.open(digest);
    if (!handle) throw new Error(`${repository.name}: blob ${digest} is gone`);
    const stream = await handle.read();
    const progress = options.progress;
    if (progress) stream.on('end', () => progress.bytes(handle.info.size));
    await sink.file(blobPath(digest), { size: handle.info.size, stream });
    summary.blobs++;
    summary.bytes += handle.info.size;
  };

  /** Writes a manifest and all it reaches; returns its referrers' descriptors. */
  const walk = async (digest: Digest, referrers: Descriptor[]): Promise<void> => {
    if (written.has(digest)) return;
    const { bytes, mediaType } = await manifest(digest);
    const parsed = parseManifest(bytes, mediaType);
    for (const child of parsed.children) await walk(child, referrers);
    for (const b of parsed.blobs) await blob(b);
    written.add(digest);
    await sink.file(blobPath(digest), bytes);
    summary.manifests++;
    options.progress?.item();
    for (const r of await repository.manifests.referrers(digest)) {
      if (written.has(r.digest as Digest)) continue;
      referrers.push({ mediaType: r.mediaType, digest: r.digest as Digest, size: r.size });
      await walk(r.digest as Digest, referrers);
    }
  };

  try {
    const referrers: Descriptor[] = [];
    for (const tag of tags) {
      const found = await repository.manifests.get({ kind: 'tag', tag });
      if (!found) throw new Error(`${repository.name}:${tag}: no such tag`);
      manifests.set(found.digest, { bytes: found.bytes, mediaType: found.mediaType });
      await walk(found.digest, referrers);
      index.push({ mediaType: found.mediaType, digest: found.digest, size: found.size, annotations: { 'org.opencontainers.image.ref.name': tag } });
      if (options.docker) dockerEntries.push(await dockerEntry(found.digest, `${repository.name}:${tag}`, manifest));
    }
    const listed = new Set(index.map((d) => d.digest));
    for (const r of referrers) if (!listed.has(r.digest)) index.push(r);
    await sink.file('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    await sink.file('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: index })));
    if (options.docker) await sink.file('manifest.json', Buffer.from(JSON.stringify(dockerEntries)));
    await sink.finish();
  } catch (err) {
    await sink.abort();
    throw err;
  }
  return summary;
}

/** docker save's entry for an image; for an index, its linux/amd64 image (docker load takes single images). */
async function dockerEntry(
  digest: Digest,
  repoTag: string,
  manifest: (digest: Digest) => Promise<{ bytes: Buffer; mediaType: string }>,
): Promise<{ Config: string; RepoTags: string[]; Layers: string[] }> {
  const { bytes } = await manifest(digest);
  const json = JSON.parse(bytes.toString('utf8')) as {
    config?: { digest: Digest };
    layers?: { digest: Digest }[];
    manifests?: { digest: Digest; platform?: { os?: string; architecture?: string } }[];
  };
  if (json.manifests) {
    const chosen = json.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64') ?? json.manifests[0];
    if (!chosen) throw new Error(`${repoTag}: an empty index cannot be written for docker load`);
    return dockerEntry(chosen.digest, repoTag, manifest);
  }
  if (!json.config) throw new Error(`${repoTag}: not an image`);
  return { Config: blobPath(json.config.digest), RepoTags: [repoTag], Layers: (json.layers ?? []).map((l) => blobPath(l.digest)) };
}

async function allTags(repository: Repository): Promise<string[]> {
  const tags: string[] = [];
  let last: string | undefined;
  for (;;) {
    const page = await repository.tags({ n: 1000, last });
    if (!page) throw new Error(`repository ${repository.name} does not exist`);
    tags.push(...page.items);
    if (!page.more || page.items.length === 0) return tags;
    last = page.items.at(-1);
  }
}

/** A directory that must not exist yet (or be empty); written under a temporary name, renamed when complete. */
async function dirSink(dest: string): Promise<Sink> {
  const temp = `${resolve(dest)}.partial`;
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  return {
    async file(name, content) {
      const path = join(temp, name);
      await mkdir(dirname(path), { recursive: true });
      if (Buffer.isBuffer(content)) await writeFile(path, content);
      else await pipeline(content.stream, createWriteStream(path));
    },
    async finish() {
      await rename(temp, dest).catch(async (err: NodeJS.ErrnoException) => {
        throw new Error(err.code === 'ENOTEMPTY' || err.code === 'EEXIST' ? `${dest} exists and is not empty` : err.message);
      });
    },
    abort: () => rm(temp, { recursive: true, force: true }),
  };
}

async function tarSink(dest: string): Promise<Sink> {
  const temp = `${resolve(dest)}.partial`;
  const out = createWriteStream(temp);
  const tar = new TarWriter(out);
  return {
    file: (name, content) => tar.file(name, content),
    async finish() {
      await tar.finish();
      await rename(temp, dest);
    },
    async abort() {
      out.destroy();
      await rm(temp, { force: true });
    },
  };
}
