/**
 * Reads a tar archive on disk by seeking: one pass over the headers finds every regular file's
 * offset and size, then entries are streamed straight from the file. Layers are never buffered,
 * and an archive's entries may be read in any order (docker save lists manifest.json last).
 * Understands ustar (with its name prefix), PAX `path`/`size` records and GNU long names.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { posix } from 'node:path';

interface Entry {
  offset: number;
  size: number;
}

const BLOCK = 512;

export class TarIndex {
  private constructor(
    readonly path: string,
    private readonly entries: Map<string, Entry>,
  ) {}

  static async open(path: string): Promise<TarIndex> {
    const file = await open(path, 'r');
    const entries = new Map<string, Entry>();
    try {
      const { size: total } = await file.stat();
      const header = Buffer.alloc(BLOCK);
      let position = 0;
      let longName: string | null = null;
      let pax: Record<string, string> = {};
      while (position + BLOCK <= total) {
        const { bytesRead } = await file.read(header, 0, BLOCK, position);
        if (bytesRead < BLOCK) throw new Error(`${path}: truncated tar header at ${position}`);
        if (header.every((b) => b === 0)) break;
        if (!validChecksum(header)) throw new Error(`${path}: not a tar archive (bad header checksum at ${position})`);
        const type = String.fromCharCode(header[156] || 0x30);
        let size = parseNumber(header.subarray(124, 136));
        if (pax.size !== undefined) size = Number(pax.size);
        const dataStart = position + BLOCK;
        const next = dataStart + Math.ceil(size / BLOCK) * BLOCK;
        if (next > total) throw new Error(`${path}: truncated tar entry at ${position}`);
        if (type === 'x' || type === 'L') {
          const body = Buffer.alloc(size);
          await file.read(body, 0, size, dataStart);
          if (type === 'x') pax = parsePax(body);
          else longName = body.toString('utf8').replace(/\0+$/, '');
        } else if (type === 'g') {
          // Global PAX headers carry nothing an image archive needs.
        } else {
          const name = pax.path ?? longName ?? ustarName(header);
          if (type === '0' || type === '\0' || type === '7') entries.set(normalize(name), { offset: dataStart, size });
          longName = null;
          pax = {};
        }
        position = next;
      }
    } finally {
      await file.close();
    }
    return new TarIndex(path, entries);
  }

  has(name: string): boolean {
    return this.entries.has(normalize(name));
  }

  size(name: string): number | undefined {
    return this.entries.get(normalize(name))?.size;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Streams one entry; throws when the archive has no such file. */
  stream(name: string): Readable {
    const entry = this.entries.get(normalize(name));
    if (!entry) throw new Error(`${this.path}: no ${name} in the archive`);
    if (entry.size === 0) return Readable.from([]);
    return createReadStream(this.path, { start: entry.offset, end: entry.offset + entry.size - 1 });
  }

  async read(name: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.stream(name)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
}

function normalize(name: string): string {
  return posix.normalize(name).replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}

function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const magic = header.subarray(257, 263).toString('latin1');
  const prefix = magic.startsWith('ustar') ? cString(header.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

/** Octal, or GNU base-256 for sizes of 8 GiB and more. */
function parseNumber(field: Buffer): number {
  if (field[0]! & 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = cString(field).trim();
  return text ? parseInt(text, 8) : 0;
}

function validChecksum(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === parseNumber(header.subarray(148, 156));
}

function parsePax(body: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    if (space === -1) break;
    const length = parseInt(body.subarray(at, space).toString('ascii'), 10);
    if (!(length > 0)) break;
    const record = body.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return records;
}
