/**
 * A `docker save` archive described by its `manifest.json` (entries of Config, RepoTags, Layers),
 * converted to docker v2 schema 2 images: the config file is the config blob, each layer tar an
 * uncompressed layer whose digest is the config's matching `rootfs.diff_ids` entry (the upload
 * verifies it).
 */
import { digestOf, parseDigest, type Digest } from '../../core/digest.js';
import { MediaType } from '../../core/manifest.js';
import type { Files } from './files.js';
import { splitReference } from './references.js';
import type { ImageSource, SourceBlob, SourceManifest, SourceRepository } from './source.js';

const CONFIG_TYPE = 'application/vnd.docker.container.image.v1+json';
const LAYER_TYPE = 'application/vnd.docker.image.rootfs.diff.tar';

interface ArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

export async function isDockerArchive(files: Files): Promise<boolean> {
  return files.exists('manifest.json');
}

export class DockerArchiveSource implements ImageSource {
  /** Where each blob is in the archive. */
  private readonly paths = new Map<Digest, string>();
  private readonly manifests = new Map<Digest, Buffer>();

  constructor(
    private readonly files: Files,
    private readonly destination: string | undefined,
  ) {}

  get description(): string {
    return `docker archive ${this.files.description}`;
  }

  async *repositories(): AsyncIterable<SourceRepository> {
    const entries = JSON.parse((await this.files.read('manifest.json')).toString('utf8')) as ArchiveEntry[];
    if (!Array.isArray(entries)) throw new Error(`${this.files.description}: manifest.json is not a list`);
    const groups = new Map<string, { tags: { tag: string; digest: Digest }[]; manifests: Digest[] }>();
    for (const entry of entries) {
      const digest = await this.convert(entry);
      const refs = entry.RepoTags ?? [];
      if (refs.length === 0) {
        if (!this.destination) throw new Error(`${this.files.description}: an image without RepoTags needs DEST-REPOSITORY`);
        group(this.destination).manifests.push(digest);
      }
      for (const ref of refs) {
        const { repository, tag } = splitReference(ref);
        const name = this.destination ?? repository;
        if (!name) throw new Error(`${this.files.description}: ${JSON.stringify(ref)} names no repository; give DEST-REPOSITORY`);
        group(name).tags.push({ tag: tag ?? 'latest', digest });
      }
    }
    function group(name: string) {
      let g = groups.get(name);
      if (!g) groups.set(name, (g = { tags: [], manifests: [] }));
      return g;
    }
    for (const [name, g] of groups) {
      yield { name, tags: g.tags, manifests: g.manifests, manifest: (d) => this.manifest(d), blob: (d) => this.blob(d) };
    }
  }

  /** Builds the schema 2 manifest of one archive entry; returns its digest. */
  private async convert(entry: ArchiveEntry): Promise<Digest> {
    const config = await this.files.read(entry.Config);
    const parsed = JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
    const diffIds = parsed.rootfs?.diff_ids ?? [];
    if (diffIds.length !== entry.Layers.length) {
      throw new Error(`${this.files.description}: ${entry.Config} lists ${diffIds.length} layers, manifest.json ${entry.Layers.length}`);
    }
    const configDigest = digestOf(config);
    this.paths.set(configDigest, entry.Config);
    const layers = [];
    for (const [i, path] of entry.Layers.entries()) {
      const digest = parseDigest(diffIds[i]);
      const size = await this.files.size(path);
      if (size === undefined) throw new Error(`${this.files.description}: no ${path} in the archive`);
      this.paths.set(digest, path);
      layers.push({ mediaType: LAYER_TYPE, size, digest });
    }
    const manifest = Buffer.from(
      JSON.stringify(
        { schemaVersion: 2, mediaType: MediaType.DOCKER_MANIFEST, config: { mediaType: CONFIG_TYPE, size: config.length, digest: configDigest }, layers },
        null,
        3,
      ),
    );
    const digest = digestOf(manifest);
    this.manifests.set(digest, manifest);
    return digest;
  }

  private async manifest(digest: Digest): Promise<SourceManifest> {
    const bytes = this.manifests.get(digest);
    if (!bytes) throw new Error(`${this.files.description}: no manifest ${digest}`);
    return { bytes, mediaType: MediaType.DOCKER_MANIFEST };
  }

  private async blob(digest: Digest): Promise<SourceBlob | null> {
    const path = this.paths.get(digest);
    if (!path) return null;
    const size = await this.files.size(path);
    if (size === undefined) return null;
    return { size, stream: this.files.stream(path) };
  }

  async close(): Promise<void> {}
}
