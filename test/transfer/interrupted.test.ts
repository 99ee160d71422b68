/**
 * An import killed halfway (SIGKILL, while a running server serves the store) shows no tag of
 * the image it was copying, and a re-run finishes with what an uninterrupted import gives,
 * copying only what the first run had not.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, runCli, s3Env, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { expected, sampleLayout, served, writeLayout, type Layout } from './content.js';

describe('an interrupted import', () => {
  let registry: RunningRegistry;
  let work: string;
  let layout: Layout;
  let layers: string[];

  before(async () => {
    registry = await startRegistry();
    work = await mkdtemp(join(tmpdir(), 'portfolio-interrupted-'));
    layout = sampleLayout(1024 * 1024, 48);
    await writeLayout(join(work, 'layout'), layout);
    layers = (JSON.parse(layout.objects.get(layout.entries[0]!.digest)!.toString()) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
  });
  after(async () => {
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  });

  const present = async (repo: string, path: string) => (await fetch(`${registry.url}/v2/${repo}/${path}`, { method: 'HEAD' })).status === 200;

  it('re-run after SIGKILL gives the same result as an uninterrupted import', async () => {
    const child = spawn(process.execPath, [CLI, 'import', join(work, 'layout'), 'transfer/killed', '--concurrency', '1', ...registry.engineArgs], {
      env: { ...process.env, ...s3Env() },
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.once('exit', r));
    // Blobs of the first tagged image go in in manifest order, one at a time: kill once a few are in.
    while (!(await present('transfer/killed', `blobs/${layers[4]}`))) {
      assert.equal(child.exitCode, null, 'the import finished before it could be interrupted');
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await exited;
    assert.equal(await present('transfer/killed', `blobs/${layers.at(-1)}`), false, 'the import was not interrupted halfway');
    assert.equal(await present('transfer/killed', 'manifests/v1'), false, 'a tag is visible before its image is whole');

    const rerun = await runCli(['import', join(work, 'layout'), 'transfer/killed', '--json', ...registry.engineArgs]);
    assert.equal(rerun.code, 0, rerun.stderr);
    const summary = JSON.parse(rerun.stdout) as { blobs: { skipped: number }; errors: string[] };
    assert.ok(summary.blobs.skipped >= 5, `re-run skipped ${summary.blobs.skipped} blobs`);

    const whole = await runCli(['import', join(work, 'layout'), 'transfer/whole', ...registry.engineArgs]);
    assert.equal(whole.code, 0, whole.stderr);
    const killed = await served(registry.url, 'transfer/killed');
    assert.deepEqual(killed, await served(registry.url, 'transfer/whole'));
    assert.deepEqual(killed, expected(layout));
  });
});
