/**
 * Policies as a real client sees them: skopeo may push the same digest to an immutable tag again,
 * is refused another digest and the tag's deletion, and prints the registry's message; a copy
 * over a quota fails with the quota message.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blob, image, pushImage } from '../helpers/oci.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

const SKOPEO = process.env.SKOPEO ?? 'skopeo';

function skopeo(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(SKOPEO, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('policies through skopeo', { timeout: 120_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  let host: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-skopeo-policies-'));
    const config = join(dir, 'portfolio.yaml');
    await writeFile(
      config,
      'policies:\n  immutableTags:\n    - repositories: "app/**"\n      tags: "v*"\n  quotas:\n    - scope: "small/**"\n      limit: 100KiB\n',
    );
    registry = await startRegistry({ args: ['--config', config] });
    host = new URL(registry.url).host;
    // Source images, outside every rule.
    for (const [tag, img] of [
      ['a', image()],
      ['b', image()],
      ['big', image({ layers: [blob(Buffer.alloc(200 * 1024, 7))] })],
    ] as const) {
      const res = await pushImage(registry.url, 'src/app', img, tag);
      assert.equal(res.status, 201);
    }
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const copy = (from: string, to: string) =>
    skopeo(['copy', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${host}/${from}`, `docker://${host}/${to}`]);

  it('re-pushes the same digest, refuses another one and the delete, and prints why', async () => {
    const first = await copy('src/app:a', 'app/web:v1');
    assert.equal(first.code, 0, first.stderr);
    const again = await copy('src/app:a', 'app/web:v1');
    assert.equal(again.code, 0, again.stderr);
    const moved = await copy('src/app:b', 'app/web:v1');
    assert.notEqual(moved.code, 0);
    assert.match(moved.stderr, /tag v1 of app\/web is immutable \(rule: repositories app\/\*\*, tags v\*\)/);
    const deleted = await skopeo(['delete', '--tls-verify=false', `docker://${host}/app/web:v1`]);
    assert.notEqual(deleted.code, 0);
    assert.match(deleted.stderr, /is immutable/);
    const inspect = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/app/web:v1`]);
    assert.equal(inspect.code, 0, inspect.stderr);
  });

  it('fails a copy over the quota with the quota message', async () => {
    const over = await copy('src/app:big', 'small/x:1');
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /quota exceeded for small\/\*\*: \S+ (B|KiB) of 100 KiB used, this push needs 200 KiB/);
  });
});
