/**
 * `portfolio import` from OCI image layouts (directory and tar) into a store a running server
 * serves: every tag, manifest, blob and referrer comes out byte-identical; a re-run skips all;
 * a corrupt blob fails the import (exit 1) without tagging the image it belongs to; a layout
 * skopeo writes from the registry imports back to the same digests.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TarWriter } from '../../src/cli/transfer/tar-writer.js';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { expected, sampleLayout, served, writeLayout, type Layout } from './content.js';

const run = promisify(execFile);
const SKOPEO = process.env.SKOPEO ?? 'skopeo';

interface Summary {
  repositories: number;
  manifests: { copied: number; skipped: number };
  tags: { set: number; skipped: number };
  blobs: { copied: number; skipped: number };
  bytes: { copied: number; skipped: number };
  errors: string[];
}

/** Tars a directory's files (one level of subdirectories deep is enough for a layout). */
export async function tarDirectory(dir: string, file: string): Promise<void> {
  const tar = new TarWriter(createWriteStream(file));
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await readdir(join(dir, relative), { withFileTypes: true })) {
      const name = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        await tar.directory(name);
        await walk(name);
      } else {
        await tar.file(name, await readFile(join(dir, name)));
      }
    }
  };
  await walk('');
  await tar.finish();
}

describe('import from an OCI image layout', () => {
  let registry: RunningRegistry;
  let work: string;
  let layout: Layout;
  let layoutDir: string;
  const importCli = async (...args: string[]) => {
    const r = await runCli(['import', ...args, '--json', ...registry.engineArgs]);
    const summary = r.stdout.trim() ? (JSON.parse(r.stdout) as Summary) : undefined;
    return { ...r, summary };
  };

  before(async () => {
    registry = await startRegistry();
    work = await mkdtemp(join(tmpdir(), 'portfolio-transfer-'));
    layout = sampleLayout();
    layoutDir = join(work, 'layout');
    await writeLayout(layoutDir, layout);
  });
  after(async () => {
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('imports a layout directory while the server runs, byte for byte, tags last', async () => {
    const r = await importCli(layoutDir, 'transfer/layout');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.summary!.errors, []);
    assert.equal(r.summary!.manifests.copied, 7);
    assert.equal(r.summary!.tags.set, 4);
    assert.deepEqual(await served(registry.url, 'transfer/layout'), expected(layout));
  });

  it('skips everything on a re-run', async () => {
    const r = await importCli(layoutDir, 'transfer/layout');
    assert.equal(r.code, 0, r.stderr);
    const s = r.summary!;
    assert.deepEqual([s.manifests.copied, s.blobs.copied, s.bytes.copied, s.tags.set], [0, 0, 0, 0]);
    assert.equal(s.tags.skipped, 4);
  });

  it('imports the same layout from a tar, mounting blobs the store already has', async () => {
    const tarFile = join(work, 'layout.tar');
    await tarDirectory(layoutDir, tarFile);
    const r = await importCli(tarFile, 'transfer/tarred');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.summary!.bytes.copied, 0);
    assert.equal(r.summary!.manifests.copied, 7);
    assert.deepEqual(await served(registry.url, 'transfer/tarred'), expected(layout));
  });

  it('fails on a blob whose bytes do not match its digest and leaves that image untagged', async () => {
    const bad = sampleLayout();
    const dir = join(work, 'bad');
    await writeLayout(dir, bad);
    // Corrupt one layer of the image tagged v1 (the first layer is shared with the index's children).
    const v1 = JSON.parse(bad.objects.get(bad.entries[0]!.digest)!.toString()) as { layers: { digest: string }[] };
    const victim = v1.layers[1]!.digest;
    const bytes = Buffer.from(bad.objects.get(victim)!);
    bytes[10] = bytes[10]! ^ 0xff;
    await writeFile(join(dir, 'blobs/sha256', victim.slice(7)), bytes);
    const r = await importCli(dir, 'transfer/bad');
    assert.equal(r.code, 1);
    assert.ok(r.summary!.errors.some((e) => e.includes(victim) || e.includes('v1')), r.stdout);
    const head = await fetch(`${registry.url}/v2/transfer/bad/manifests/v1`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    const blob = await fetch(`${registry.url}/v2/transfer/bad/blobs/${victim}`, { method: 'HEAD' });
    assert.equal(blob.status, 404);
    const tags = (await (await fetch(`${registry.url}/v2/transfer/bad/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags.sort(), ['multi', 'one', 'two']);
  });

  it('imports what skopeo copies out of the registry into an oci: layout', async () => {
    const dir = join(work, 'skopeo');
    const host = registry.url.replace(/^http:\/\//, '');
    await run(SKOPEO, ['copy', '--all', '--src-tls-verify=false', `docker://${host}/transfer/layout:multi`, `oci:${dir}:multi`]);
    await run(SKOPEO, ['copy', '--src-tls-verify=false', `docker://${host}/transfer/layout:v1`, `oci:${dir}:v1`]);
    const r = await importCli(dir, 'transfer/skopeo');
    assert.equal(r.code, 0, r.stderr);
    const original = await served(registry.url, 'transfer/layout', {}, false);
    const copied = await served(registry.url, 'transfer/skopeo', {}, false);
    assert.deepEqual(copied.tags, { multi: original.tags.multi, v1: original.tags.v1 });
  });

  it('exports a repository as an OCI layout that skopeo copies and import reads back, referrers included', async () => {
    const dir = join(work, 'exported');
    const tarFile = join(work, 'exported.tar');
    const exported = await runCli(['export', 'transfer/layout', dir, ...registry.engineArgs]);
    assert.equal(exported.code, 0, exported.stderr);
    const partial = await runCli(['export', 'transfer/layout:v1,multi', tarFile, ...registry.engineArgs]);
    assert.equal(partial.code, 0, partial.stderr);
    const host = registry.url.replace(/^http:\/\//, '');
    for (const tag of ['v1', 'multi', 'one']) {
      await run(SKOPEO, ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${dir}:${tag}`, `docker://${host}/transfer/by-skopeo:${tag}`]);
    }
    const original = await served(registry.url, 'transfer/layout', {}, false);
    const copied = await served(registry.url, 'transfer/by-skopeo', {}, false);
    assert.deepEqual(copied.tags, { v1: original.tags.v1, multi: original.tags.multi, one: original.tags.one });
    const back = await importCli(dir, 'transfer/round-trip');
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(await served(registry.url, 'transfer/round-trip'), expected(layout));
    const fromTar = await importCli(tarFile, 'transfer/round-trip-tar');
    assert.equal(fromTar.code, 0, fromTar.stderr);
    assert.deepEqual((await served(registry.url, 'transfer/round-trip-tar')).tags, { v1: original.tags.v1, multi: original.tags.multi });
    const again = await runCli(['export', 'transfer/layout', dir, ...registry.engineArgs]);
    assert.equal(again.code, 1, 'export over a non-empty directory must fail');
    const missing = await runCli(['export', 'transfer/layout:nope', join(work, 'nope'), ...registry.engineArgs]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope: no such tag/);
  });
});
