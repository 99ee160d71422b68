import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/registry.js';

const run = promisify(execFile);
const CHECK = join(ROOT, 'scripts/check-layers.mjs');

async function tree(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'layers-'));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

test('the project source keeps http → core ← backends', async () => {
  const { stdout } = await run(process.execPath, [CHECK, join(ROOT, 'src')]);
  assert.match(stdout, /holds/);
});

for (const [from, to] of [
  ['http/a.ts', 'backends/b.ts'],
  ['backends/a.ts', 'http/b.ts'],
  ['core/a.ts', 'backends/b.ts'],
  ['backends/x/a.ts', 'cli/b.ts'],
] as const) {
  test(`an import from ${from.split('/')[0]} into ${to.split('/')[0]} fails the check`, async () => {
    const depth = from.split('/').length - 1;
    const spec = `${'../'.repeat(depth)}${to.replace(/\.ts$/, '.js')}`;
    const dir = await tree({ [from]: `import { b } from '${spec}';\nexport const a = b;\n`, [to]: 'export const b = 1;\n', 'core/ok.ts': '' });
    try {
      await assert.rejects(run(process.execPath, [CHECK, dir]), (err: { code?: number; stderr?: string }) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr ?? '', /must not import/);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
