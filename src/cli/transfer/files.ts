/** Read access to a tree of files that is either a directory or a tar archive (an image layout in either form). */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { TarIndex } from './tar-index.js';

export interface Files {
  readonly description: string;
  exists(name: string): Promise<boolean>;
  /** Size in bytes, or undefined when absent. */
  size(name: string): Promise<number | undefined>;
  read(name: string): Promise<Buffer>;
  stream(name: string): Readable;
}

export class DirFiles implements Files {
  constructor(readonly root: string) {}
  get description(): string {
    return this.root;
  }
  async exists(name: string): Promise<boolean> {
    return (await this.size(name)) !== undefined;
  }
  async size(name: string): Promise<number | undefined> {
    try {
      const s = await stat(join(this.root, name));
      return s.isFile() ? s.size : undefined;
    } catch {
      return undefined;
    }
  }
  read(name: string): Promise<Buffer> {
    return readFile(join(this.root, name));
  }
  stream(name: string): Readable {
    return createReadStream(join(this.root, name));
  }
}

export class TarFiles implements Files {
  constructor(private readonly tar: TarIndex) {}
  static async open(path: string): Promise<TarFiles> {
    return new TarFiles(await TarIndex.open(path));
  }
  get description(): string {
    return this.tar.path;
  }
  async exists(name: string): Promise<boolean> {
    return this.tar.has(name);
  }
  async size(name: string): Promise<number | undefined> {
    return this.tar.size(name);
  }
  read(name: string): Promise<Buffer> {
    return this.tar.read(name);
  }
  stream(name: string): Readable {
    return this.tar.stream(name);
  }
}
