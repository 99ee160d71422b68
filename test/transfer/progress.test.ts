/** Progress output: a line redrawn in place on a terminal (with time left once the total is known), plain lines otherwise. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createProgress } from '../../src/cli/transfer/progress.js';

function stream(tty: boolean): { out: NodeJS.WriteStream; text: () => string } {
  const out = new PassThrough() as unknown as NodeJS.WriteStream & { isTTY?: boolean };
  out.isTTY = tty;
  let text = '';
  (out as unknown as PassThrough).on('data', (d: Buffer) => (text += d.toString()));
  return { out, text: () => text };
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}

describe('progress', () => {
  it('redraws one line on a terminal with items, bytes, rate and time left', async () => {
    const { out, text } = stream(true);
    const p = createProgress('import', out, 5);
    p.expect(10 * 1024 * 1024);
    p.item();
    p.bytes(3 * 1024 * 1024);
    p.skipped(1024 * 1024);
    await until(() => text().includes('left'));
    p.log('error: something');
    p.stop();
    const t = text();
    assert.match(t, /\r\x1b\[Kimport: 1 items, 3\.0 MiB copied, 1\.0 MiB skipped, [\d.]+ (B|KiB|MiB|GiB)\/s, about \S+ left/);
    assert.match(t, /\r\x1b\[Kerror: something\n/);
    assert.ok(t.endsWith('\r\x1b[K'), 'stop clears the progress line');
  });

  it('prints plain lines when not on a terminal', async () => {
    const { out, text } = stream(false);
    const p = createProgress('backup', out, 5);
    p.item();
    p.bytes(2048);
    await until(() => text().includes('\n'));
    p.stop();
    const first = text().split('\n')[0]!;
    assert.match(first, /^backup: 1 items, 2\.0 KiB copied, 0 B skipped, /);
    assert.ok(!text().includes('\r') && !text().includes('\x1b'), 'no terminal control codes in plain output');
  });
});
