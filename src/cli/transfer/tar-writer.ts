/**
 * Writes a tar archive as a stream: each file's header, then its bytes piped from their source,
 * never held whole. Names longer than ustar allows get a PAX `path` record.
 */
import type { Readable, Writable } from 'node:stream';
import { once } from 'node:events';

const BLOCK = 512;

export class TarWriter {
  constructor(private readonly out: Writable) {}

  async directory(name: string): Promise<void> {
    await this.write(header(name.endsWith('/') ? name : `${name}/`, 0, '5'));
  }

  async file(name: string, content: Buffer | { size: number; stream: Readable }): Promise<void> {
    const size = Buffer.isBuffer(content) ? content.length : content.size;
    await this.write(header(name, size, '0'));
    if (Buffer.isBuffer(content)) {
      await this.write(content);
    } else {
      let written = 0;
      for await (const chunk of content.stream) {
        written += (chunk as Buffer).length;
        if (written > size) throw new Error(`${name}: more than the ${size} bytes expected`);
        await this.write(chunk as Buffer);
      }
      if (written !== size) throw new Error(`${name}: ${written} bytes, expected ${size}`);
    }
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad) await this.write(Buffer.alloc(pad));
  }

  /** The end-of-archive marker; then ends the stream. */
  async finish(): Promise<void> {
    await this.write(Buffer.alloc(2 * BLOCK));
    this.out.end();
    await once(this.out, 'finish');
  }

  private async write(bytes: Buffer): Promise<void> {
    if (!this.out.write(bytes)) await once(this.out, 'drain');
  }
}

/** The largest size the ustar header's 11 octal digits hold (8 GiB - 1); larger sizes go in a PAX record. */
const MAX_USTAR_SIZE = 0o77777777777;

function header(name: string, size: number, type: '0' | '5'): Buffer {
  const longName = Buffer.byteLength(name) > 100;
  const bigSize = size > MAX_USTAR_SIZE;
  if (!longName && !bigSize) return block(name, size, type);
  const record = Buffer.concat([...(longName ? [paxRecord('path', name)] : []), ...(bigSize ? [paxRecord('size', String(size))] : [])]);
  const pax = block('PaxHeader', record.length, 'x');
  const padded = Buffer.alloc(Math.ceil(record.length / BLOCK) * BLOCK);
  record.copy(padded);
  return Buffer.concat([pax, padded, block(longName ? name.slice(-100).replace(/^\/+/, '') : name, bigSize ? 0 : size, type)]);
}

function block(name: string, size: number, type: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  const field = (offset: number, length: number, value: string) => h.write(value, offset, length, 'utf8');
  const octal = (offset: number, length: number, value: number) => field(offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
  field(0, 100, name);
  octal(100, 8, type === '5' ? 0o755 : 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 0);
  field(148, 8, '        ');
  field(156, 1, type);
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of h) sum += byte;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length = String(length).length + Buffer.byteLength(body);
  return Buffer.from(`${length}${body}`);
}
