/** Picks the import source a path names: a distribution storage root, an OCI layout, or a docker archive (directory or tar). */
import { stat } from 'node:fs/promises';
import { DirFiles, TarFiles, type Files } from './files.js';
import { DistributionSource, distributionRoot } from './distribution-source.js';
import { DockerArchiveSource, isDockerArchive } from './docker-archive-source.js';
import { OciLayoutSource, isOciLayout } from './oci-layout-source.js';
import type { Credentials } from './remote-client.js';
import { RemoteSource, parseRemote } from './remote-source.js';
import type { ImageSource } from './source.js';

export type SourceFormat = 'oci' | 'docker-archive' | 'distribution';

export interface SourceOptions {
  format?: SourceFormat;
  /** The destination repository (layouts and archives) or name prefix (distribution storage). */
  destination?: string;
  /** Distribution storage or a registry: only these repositories. */
  repositories?: string[];
  /** For a registry. */
  credentials?: Credentials;
}

export async function openSource(path: string, options: SourceOptions): Promise<ImageSource> {
  if (/^https?:\/\//.test(path)) {
    const { base, repository, tag } = parseRemote(path);
    const repositories = repository ? [repository, ...(options.repositories ?? [])] : (options.repositories ?? []);
    if (tag && repositories.length > 1) throw new Error(`${path}: a tag names one repository; leave out --repository`);
    return new RemoteSource({ base, repositories, tags: tag ? tag.split(',') : [], destination: options.destination, credentials: options.credentials });
  }
  const info = await stat(path).catch(() => null);
  if (!info) throw new Error(`${path}: no such file or directory`);
  if (info.isDirectory()) {
    const root = options.format === undefined || options.format === 'distribution' ? await distributionRoot(path) : null;
    if (root) return new DistributionSource(root, options.destination, options.repositories ? new Set(options.repositories) : undefined);
    if (options.format === 'distribution') throw new Error(`${path}: not a distribution storage directory (no docker/registry/v2/repositories)`);
    return fromFiles(new DirFiles(path), options);
  }
  if (options.format === 'distribution') throw new Error(`${path}: distribution storage is a directory`);
  return fromFiles(await TarFiles.open(path), options);
}

async function fromFiles(files: Files, options: SourceOptions): Promise<ImageSource> {
  // docker save (25 and later) writes both; the OCI index keeps the images' own manifests.
  if (options.format !== 'docker-archive' && (await isOciLayout(files))) return new OciLayoutSource(files, options.destination);
  if (options.format !== 'oci' && (await isDockerArchive(files))) return new DockerArchiveSource(files, options.destination);
  throw new Error(`${files.description}: neither an OCI image layout (oci-layout, index.json) nor a docker archive (manifest.json)`);
}
