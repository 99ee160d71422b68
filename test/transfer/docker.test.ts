/**
 * The Docker engine (a private dockerd, test/client/dockerd.ts): `docker save` → `portfolio import`
 * → `docker pull` by the imported digest gives the same image; the same archive converted from
 * its manifest.json (`--format docker-archive`) pulls as the same image too; `portfolio export
 * --docker` → `docker load` gives it back.
 */
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Writable } from 'node:stream';
import { TarWriter } from '../../src/cli/transfer/tar-writer.js';
import { TarIndex } from '../../src/cli/transfer/tar-index.js';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startDockerd, type Dockerd } from '../client/dockerd.js';

const run = promisify(execFile);
const SKOPEO = process.env.SKOPEO ?? 'skopeo';
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A tar of the given files, in memory (small test layers). */
async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) });
  const tar = new TarWriter(sink);
  for (const [name, content] of Object.entries(files)) await tar.file(name, content);
  await tar.finish();
  return Buffer.concat(chunks);
}

/** A two-layer linux/amd64 image as an OCI layout, tagged `app`. */
async function buildLayout(dir: string): Promise<void> {
  const raws = [await tarOf({ 'etc/hello': Buffer.from(`hello ${randomBytes(8).toString('hex')}\n`) }), await tarOf({ 'app/data.bin': randomBytes(100_000) })];
  const layers = raws.map((raw) => gzipSync(raw));
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/app/run'] }, rootfs: { type: 'layers', diff_ids: raws.map(sha256) }, history: [] }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(l), size: l.length })),
    }),
  );
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  for (const b of [config, manifest, ...layers]) await writeFile(join(dir, 'blobs/sha256', sha256(b).slice(7)), b);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'app' } }],
    }),
  );
}

const work = await mkdtemp(join(tmpdir(), 'portfolio-transfer-docker-'));
let dockerd: Dockerd | undefined;
let unavailable: string | undefined;
try {
  dockerd = await startDockerd(join(work, 'dockerd'));
} catch (err) {
  unavailable = `the Docker engine transfer test cannot run: ${(err as Error).message}`;
}
after(async () => {
  await dockerd?.stop();
  await rm(work, { recursive: true, force: true });
});

if (unavailable) {
  console.error(unavailable);
  test('the Docker engine starts', { skip: process.env.CI !== 'true' && unavailable }, () => assert.fail(unavailable));
} else {
  describe('docker save / load with import and export', { timeout: 180_000 }, () => {
    const d = dockerd!;
    let registry: RunningRegistry;
    let host: string;
    let loadedId: string;
    const ok = async (args: string[]) => {
      const r = await d.docker(args);
      if (r.code !== 0) assert.fail(`${r.command}: ${r.stdout}\n${r.stderr}\n${(await d.log()).slice(-2000)}`);
      return r;
    };
    const idOf = async (name: string) => (await ok(['image', 'inspect', '--format', '{{.Id}}', name])).stdout.trim();

    before(async () => {
      registry = await startRegistry();
      host = new URL(registry.url).host;
      await buildLayout(join(work, 'layout'));
      await run(SKOPEO, ['--insecure-policy', 'copy', `oci:${join(work, 'layout')}:app`, `docker-archive:${join(work, 'built.tar')}:transfer/app:v1`]);
      await ok(['load', '-i', join(work, 'built.tar')]);
      loadedId = await idOf('transfer/app:v1');
      await ok(['save', '-o', join(work, 'saved.tar'), 'transfer/app:v1']);
    });
    after(async () => {
      const images = (await d.docker(['images', '-q'])).stdout.split('\n').filter(Boolean);
      if (images.length) await d.docker(['rmi', '-f', ...new Set(images)]);
      await registry?.stop();
    });

    it('docker save → portfolio import → docker pull by the imported digest: the same image', async () => {
      const r = await runCli(['import', join(work, 'saved.tar'), 'transfer/saved', ...registry.engineArgs]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const head = await fetch(`${registry.url}/v2/transfer/saved/manifests/v1`, {
        method: 'HEAD',
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json' },
      });
      assert.equal(head.status, 200);
      const digest = head.headers.get('docker-content-digest')!;
      await ok(['pull', `${host}/transfer/saved@${digest}`]);
      assert.equal(await idOf(`${host}/transfer/saved@${digest}`), loadedId);
      // Without DEST-REPOSITORY the archive's own name is used.
      const named = await runCli(['import', join(work, 'saved.tar'), ...registry.engineArgs]);
      assert.equal(named.code, 0, named.stdout + named.stderr);
      assert.equal((await fetch(`${registry.url}/v2/transfer/app/manifests/${digest}`, { method: 'HEAD' })).status, 200);
      const tags = (await (await fetch(`${registry.url}/v2/transfer/app/tags/list`)).json()) as { tags: string[] };
      assert.deepEqual(tags.tags, ['v1']);
    });

    it('a docker save archive converted from its manifest.json pulls as the same image', async () => {
      const r = await runCli(['import', join(work, 'saved.tar'), 'transfer/converted', '--format', 'docker-archive', ...registry.engineArgs]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await ok(['pull', `${host}/transfer/converted:v1`]);
      assert.equal(await idOf(`${host}/transfer/converted:v1`), loadedId);
    });

    it('portfolio export --docker → docker load gives the image back', async () => {
      const out = join(work, 'exported.tar');
      const r = await runCli(['export', 'transfer/converted:v1', out, '--docker', ...registry.engineArgs]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const entries = JSON.parse((await (await TarIndex.open(out)).read('manifest.json')).toString()) as { RepoTags: string[] }[];
      assert.deepEqual(entries[0]!.RepoTags, ['transfer/converted:v1']);
      await ok(['rmi', '-f', loadedId]);
      await ok(['load', '-i', out]);
      assert.equal(await idOf('transfer/converted:v1'), loadedId);
    });
  });
}

