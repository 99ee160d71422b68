/**
 * `npm start` compiles only when a source changed: its build step (the `tsc -b` part of the
 * `start` script) asks the compiler, which answers "up to date" for a current build and
 * rebuilds after any change. Run after `npm run build`, as `npm test` does.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, cp, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/registry.js';

async function buildStep(): Promise<string> {
  const { scripts } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const steps = scripts.start!.split(' && ');
  const build = steps.find((step) => step.startsWith('tsc -b'));
  assert.ok(build && steps.at(-1)?.includes('bin/portfolio.js serve'), `start script: ${scripts.start}`);
  return build;
}

/** Runs the build step as npm would (node_modules/.bin on PATH) in `cwd`; its output. */
function runStep(command: string, cwd = ROOT): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}${delimiter}${process.env.PATH}` };
    execFile('sh', ['-c', command], { cwd, env, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command}: ${error.message}\n${stdout}\n${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}

test('npm start does not compile a current build, and rebuilds after a source changes', { timeout: 180_000 }, async () => {
  const build = await buildStep();
  const current = await runStep(`${build} --verbose`);
  assert.match(current, /is up to date/, `the build step compiled a current build:\n${current}`);

  // A changed source must be compiled again. Asked of a copy of the project (sources with their
  // times, the build record), so the suite's own tree is never modified.
  const copy = await mkdtemp(join(tmpdir(), 'portfolio-start-'));
  try {
    for (const path of ['package.json', 'tsconfig.json', 'src', 'test', 'bench', 'dist/.tsbuildinfo']) {
      await cp(join(ROOT, path), join(copy, path), { recursive: true, preserveTimestamps: true });
    }
    await symlink(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
    assert.match(await runStep(`${build} --verbose --dry`, copy), /is up to date/, 'the copy is as current as the project');
    await appendFile(join(copy, 'src/cli/version.ts'), '// changed\n');
    const changed = await runStep(`${build} --verbose --dry`, copy);
    assert.match(changed, /out of date because .* older than input 'src\/cli\/version\.ts'/, changed);
    assert.match(changed, /A non-dry build would build project/, changed);
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
});
