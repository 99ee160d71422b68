/**
 * CNCF distribution's filesystem storage (`<root>/docker/registry/v2/…`) read in place:
 * repositories are directories holding `_manifests`; `_manifests/revisions/<alg>/<hex>/link`
 * lists the manifests, `_manifests/tags/<tag>/current/link` the tags, and every blob's bytes
 * are at `blobs/<alg>/<first two hex>/<hex>/data`. What is copied is what the manifests
 * reference (a `_layers` link without a manifest using it is an unfinished or abandoned push).
 * Manifest bodies carry their own media type (distribution keeps no other record of it).
 */
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDigest, type Digest } from '../../core/digest.js';
import type { ImageSource, SourceBlob, SourceManifest, SourceRepository } from './source.js';

export async function distributionRoot(path: string): Promise<string | null> {
  for (const candidate of [path, join(path, 'docker/registry/v2')]) {
    if (await isDirectory(join(candidate, 'repositories'))) {
      if (await isDirectory(join(candidate, 'blobs'))) return candidate;
    }
  }
  return null;
}

export class DistributionSource implements ImageSource {
  constructor(
    /** The `…/docker/registry/v2` directory. */
    private readonly root: string,
    /** Prefix for every destination repository name. */
    private readonly prefix: string | undefined,
    private readonly only: ReadonlySet<string> | undefined,
  ) {}

  get description(): string {
    return `distribution storage ${this.root}`;
  }

  async *repositories(): AsyncIterable<SourceRepository> {
    for await (const name of this.walk('')) {
      if (this.only && !this.only.has(name)) continue;
      const dir = join(this.root, 'repositories', name, '_manifests');
      const manifests = await this.links(join(dir, 'revisions'));
      const tags: { tag: string; digest: Digest }[] = [];
      for (const tag of (await list(join(dir, 'tags'))).sort()) {
        const link = await readLink(join(dir, 'tags', tag, 'current', 'link'));
        if (link) tags.push({ tag, digest: link });
      }
      yield {
        name: this.prefix ? `${this.prefix}/${name}` : name,
        tags,
        manifests,
        manifest: (digest) => this.manifest(digest),
        blob: (digest) => this.blob(digest),
      };
    }
  }

  /** Repository names in byte order: directories that hold `_manifests`, at any depth. */
  private async *walk(relative: string): AsyncIterable<string> {
    const entries = (await list(join(this.root, 'repositories', relative))).sort();
    if (relative && entries.includes('_manifests')) yield relative;
    for (const entry of entries) {
      if (entry.startsWith('_')) continue;
      const child = relative ? `${relative}/${entry}` : entry;
      if (await isDirectory(join(this.root, 'repositories', child))) yield* this.walk(child);
    }
  }

  /** Digests named by `<dir>/<alg>/<hex>/link` files. */
  private async links(dir: string): Promise<Digest[]> {
    const out: Digest[] = [];
    for (const algorithm of (await list(dir)).sort()) {
      for (const hex of (await list(join(dir, algorithm))).sort()) {
        const link = await readLink(join(dir, algorithm, hex, 'link'));
        if (link) out.push(link);
      }
    }
    return out;
  }

  private dataPath(digest: Digest): string {
    const [algorithm, hex] = digest.split(':') as [string, string];
    return join(this.root, 'blobs', algorithm, hex.slice(0, 2), hex, 'data');
  }

  private async manifest(digest: Digest): Promise<SourceManifest> {
    return { bytes: await readFile(this.dataPath(digest)) };
  }

  private async blob(digest: Digest): Promise<SourceBlob | null> {
    const path = this.dataPath(digest);
    try {
      const s = await stat(path);
      return { size: s.size, stream: createReadStream(path) };
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {}
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** A link file's digest; null when absent (distribution removes links when it deletes). */
async function readLink(path: string): Promise<Digest | null> {
  let text: string;
  try {
    text = (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
  return parseDigest(text);
}
