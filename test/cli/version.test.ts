/** `portfolio --version` and `-V` print the version of package.json; an unbuilt clone says what to do. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, ROOT, runCli } from '../helpers/registry.js';

test('--version and -V print the version and exit 0', async () => {
  const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.match(version, /^\d+\.\d+\.\d+/);
  for (const flag of ['--version', '-V']) {
    const result = await runCli([flag]);
    assert.equal(result.code, 0, `${flag}: ${result.stderr}`);
    assert.equal(result.stdout, `${version}\n`, flag);
    assert.equal(result.stderr, '', flag);
  }
});

test('before the first build, bin/portfolio.js says to build, in one line', async () => {
  // The launcher alone, as in a fresh clone after `npm ci`: no dist/ beside it.
  const dir = await mkdtemp(join(tmpdir(), 'portfolio-unbuilt-'));
  try {
    await mkdir(join(dir, 'bin'));
    await copyFile(CLI, join(dir, 'bin/portfolio.js'));
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(process.execPath, [join(dir, 'bin/portfolio.js'), 'serve'], (error, _stdout, stderr) => resolve({ code: error ? (error.code as number) : 0, stderr })),
    );
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'portfolio: not built yet: run `npm run build` (or `npm start`) first\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
