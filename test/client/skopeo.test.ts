/**
 * Real-client test: skopeo (containers/image) pushes, pulls, inspects, lists, copies between
 * repositories and deletes against a real Portfolio server, and every manifest and blob must
 * round-trip byte for byte.
 *
 * Content is an OCI image layout built here: a 3-layer image (real tar archives, gzip-compressed
 * with node:zlib, one layer over 5 MiB) and a two-platform image index whose children share a
 * layer with the image.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, sha256 } from '../helpers/oci.js';

const SKOPEO = process.env.SKOPEO ?? 'skopeo';
const IMAGE_REPO = 'client/multi/layer';
const INDEX_REPO = 'client/multi/arch';
const COPY_IMAGE_REPO = 'client/copied/image';
const COPY_INDEX_REPO = 'client/copied/index/deep';
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Content

/** A minimal ustar writer: regular files and directories, enough for real layer tarballs. */
function tar(entries: { name: string; content?: Buffer; dir?: boolean }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const content = entry.dir ? Buffer.alloc(0) : (entry.content ?? Buffer.alloc(0));
    const header = Buffer.alloc(512);
    const field = (offset: number, length: number, value: string) => header.write(value, offset, length, 'ascii');
    const octal = (offset: number, length: number, value: number) => field(offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
    assert.ok(entry.name.length < 100, `tar name too long: ${entry.name}`);
    field(0, 100, entry.name);
    octal(100, 8, entry.dir ? 0o755 : 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, content.length);
    octal(136, 12, 1_700_000_000);
    field(148, 8, '        ');
    field(156, 1, entry.dir ? '5' : '0');
    field(257, 6, 'ustar\0');
    field(263, 2, '00');
    field(265, 32, 'root');
    field(297, 32, 'root');
    let sum = 0;
    for (const byte of header) sum += byte;
    field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
    blocks.push(header, content);
    const pad = (512 - (content.length % 512)) % 512;
    if (pad) blocks.push(Buffer.alloc(pad));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

interface Blob {
  bytes: Buffer;
  digest: string;
  size: number;
}

interface Layer extends Blob {
  diffId: string;
}

function blobOf(bytes: Buffer): Blob {
  return { bytes, digest: sha256(bytes), size: bytes.length };
}

function layer(entries: Parameters<typeof tar>[0]): Layer {
  const raw = tar(entries);
  return { ...blobOf(gzipSync(raw)), diffId: sha256(raw) };
}

interface Manifest {
  bytes: Buffer;
  digest: string;
  size: number;
  mediaType: string;
}

interface Image extends Manifest {
  config: Blob;
  layers: Layer[];
}

function imageOf(platform: { architecture: string; os: string; variant?: string }, layers: Layer[], pretty = false): Image {
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        created: '2024-01-01T00:00:00Z',
        ...platform,
        config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/app/run.sh'], Labels: { nonce: randomBytes(8).toString('hex') } },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
        history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `step ${i}` })),
      }),
    ),
  );
  const body = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
    annotations: { 'org.opencontainers.image.title': `portfolio skopeo test ${platform.architecture}` },
  };
  // One manifest is stored with unusual formatting: a registry must keep the exact bytes.
  const bytes = Buffer.from(pretty ? JSON.stringify(body, null, 3) + '\n' : JSON.stringify(body));
  return { bytes, digest: sha256(bytes), size: bytes.length, mediaType: OCI_MANIFEST, config, layers };
}

interface Index extends Manifest {
  children: Image[];
}

function indexOf(children: { image: Image; platform: Record<string, string> }[]): Index {
  const body = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: children.map((c) => ({ mediaType: c.image.mediaType, digest: c.image.digest, size: c.image.size, platform: c.platform })),
  };
  const bytes = Buffer.from(JSON.stringify(body));
  return { bytes, digest: sha256(bytes), size: bytes.length, mediaType: OCI_INDEX, children: children.map((c) => c.image) };
}

const hex = (digest: string) => digest.slice('sha256:'.length);

/** Writes an OCI image layout (image-spec image-layout.md) holding every blob and manifest. */
async function writeLayout(dir: string, blobs: Blob[], refs: { ref: string; manifest: Manifest }[]): Promise<void> {
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const b of blobs) await writeFile(join(dir, 'blobs/sha256', hex(b.digest)), b.bytes);
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: refs.map(({ ref, manifest }) => ({
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.size,
        annotations: { 'org.opencontainers.image.ref.name': ref },
      })),
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// skopeo

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
  command: string;
}

let skopeoEnv: NodeJS.ProcessEnv = process.env;

function skopeo(args: string[], timeoutMs = 30_000): Promise<Run> {
  const full = ['--insecure-policy', ...args];
  const command = `skopeo ${full.join(' ')}`;
  return new Promise((resolve) => {
    execFile(SKOPEO, full, { encoding: 'buffer', timeout: timeoutMs, maxBuffer: 64 * MiB, env: skopeoEnv }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      const why = error && typeof error.code !== 'number' ? `\n(${error.killed ? `killed by ${error.signal} after the ${timeoutMs} ms timeout; ` : ''}${error.message})` : '';
      resolve({ code, stdout, stderr: stderr.toString() + why, command });
    });
  });
}

function describeRun(r: Run, registry?: RunningRegistry): string {
  const tail = registry ? `\n--- server output (tail) ---\n${registry.output().slice(-4000)}` : '';
  return `${r.command}\nexit ${r.code}\n--- stderr ---\n${r.stderr.slice(-6000)}${tail}`;
}

/** Runs skopeo and fails the test, with its stderr and the server's recent output, unless it exits 0. */
async function ok(registry: RunningRegistry, args: string[]): Promise<Run> {
  const r = await skopeo(args);
  assert.equal(r.code, 0, `skopeo failed:\n${describeRun(r, registry)}`);
  return r;
}

function parseJson<T>(r: Run): T {
  try {
    return JSON.parse(r.stdout.toString()) as T;
  } catch (e) {
    assert.fail(`${r.command} printed no JSON (${String(e)}):\n${r.stdout.toString().slice(0, 2000)}\n${r.stderr}`);
  }
}

function assertSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  assert.equal(sha256(actual), sha256(expected), `${what}: sha256 differs (got ${actual.length} bytes, want ${expected.length})`);
  assert.ok(actual.equals(expected), `${what}: bytes differ`);
}

/** Checks a `dir:` copy: exactly the expected manifests and blobs, each byte-identical. */
async function assertDirCopy(dir: string, top: Manifest, instances: Manifest[], blobs: Blob[]): Promise<void> {
  const files = (await readdir(dir)).filter((f) => f !== 'version' && !f.startsWith('signature')).sort();
  const expected = [
    'manifest.json',
    ...instances.map((m) => `${hex(m.digest)}.manifest.json`),
    ...new Set(blobs.map((b) => hex(b.digest))),
  ].sort();
  assert.deepEqual(files, expected, `files in the dir: copy ${dir}`);
  assertSameBytes(await readFile(join(dir, 'manifest.json')), top.bytes, `${dir}/manifest.json`);
  for (const m of instances) assertSameBytes(await readFile(join(dir, `${hex(m.digest)}.manifest.json`)), m.bytes, `instance manifest ${m.digest}`);
  for (const b of blobs) assertSameBytes(await readFile(join(dir, hex(b.digest))), b.bytes, `blob ${b.digest}`);
}

// ---------------------------------------------------------------------------------------------
// The test

describe('skopeo against Portfolio', { timeout: 120_000 }, () => {
  let registry: RunningRegistry;
  let host: string;
  let work: string;
  let layout: string;

  // (a) a 3-layer image; one layer is > 5 MiB of incompressible data so uploads are streamed.
  const base = layer([
    { name: 'etc/', dir: true },
    { name: 'etc/os-release', content: Buffer.from('ID=portfolio\nVERSION_ID=1\n') },
    { name: 'bin/', dir: true },
    { name: 'bin/true', content: randomBytes(3000) },
  ]);
  const big = layer([{ name: 'data/', dir: true }, { name: 'data/big.bin', content: randomBytes(5 * MiB + 300 * 1024) }]);
  const app = layer([{ name: 'app/', dir: true }, { name: 'app/run.sh', content: Buffer.from(`#!/bin/sh\necho ${randomBytes(8).toString('hex')}\n`) }]);
  const single = imageOf({ architecture: 'amd64', os: 'linux' }, [base, big, app], true);

  // (b) a two-platform index; both children share the base layer with (a).
  const amd64 = imageOf({ architecture: 'amd64', os: 'linux' }, [base, layer([{ name: 'amd64.txt', content: randomBytes(20_000) }])]);
  const arm64 = imageOf({ architecture: 'arm64', os: 'linux', variant: 'v8' }, [base, layer([{ name: 'arm64.txt', content: randomBytes(40_000) }])]);
  const multi = indexOf([
    { image: amd64, platform: { architecture: 'amd64', os: 'linux' } },
    { image: arm64, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
  ]);

  const blobsOf = (img: Image): Blob[] => [img.config, ...img.layers];
  const indexBlobs = [...blobsOf(amd64), ...blobsOf(arm64)];

  const ref = (repo: string, tagOrDigest: string) => `docker://${host}/${repo}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;
  const manifestUrl = (repo: string, reference: string) => `${registry.url}/v2/${repo}/manifests/${reference}`;
  const accept = [OCI_MANIFEST, OCI_INDEX, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');

  before(async () => {
    assert.ok(big.size >= 5 * MiB, `big layer is ${big.size} bytes`);
    work = await mkdtemp(join(tmpdir(), 'portfolio-skopeo-'));
    // Keep skopeo away from the user's credentials and configuration.
    await mkdir(join(work, 'home'), { recursive: true });
    await writeFile(join(work, 'auth.json'), JSON.stringify({ auths: {} }));
    skopeoEnv = {
      ...process.env,
      HOME: join(work, 'home'),
      XDG_DATA_HOME: join(work, 'home/.local/share'),
      XDG_CONFIG_HOME: join(work, 'home/.config'),
      REGISTRY_AUTH_FILE: join(work, 'auth.json'),
    };
    layout = join(work, 'layout');
    await writeLayout(
      layout,
      [...blobsOf(single), ...indexBlobs, amd64, arm64, single, multi],
      [
        { ref: 'single', manifest: single },
        { ref: 'multi', manifest: multi },
      ],
    );
    registry = await startRegistry();
    host = new URL(registry.url).host;
  });

  after(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pushes a multi-layer image from an OCI layout, under two tags', async () => {
    await ok(registry, ['copy', '--dest-tls-verify=false', `oci:${layout}:single`, ref(IMAGE_REPO, 'v1')]);
    await ok(registry, ['copy', '--dest-tls-verify=false', `oci:${layout}:single`, ref(IMAGE_REPO, 'v1.1')]);
    for (const tag of ['v1', 'v1.1', single.digest]) {
      const res = await fetch(manifestUrl(IMAGE_REPO, tag), { headers: { accept } });
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(res.status, 200, `GET manifest ${tag}: ${res.status} ${body.toString()}`);
      assertSameBytes(body, single.bytes, `manifest ${tag} over HTTP`);
      assert.equal(res.headers.get('docker-content-digest'), single.digest, `Docker-Content-Digest for ${tag}`);
    }
  });

  it('pushes a multi-arch index with --all', async () => {
    await ok(registry, ['copy', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, ref(INDEX_REPO, 'multi')]);
    for (const m of [multi, amd64, arm64]) {
      const res = await fetch(manifestUrl(INDEX_REPO, m.digest), { headers: { accept } });
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(res.status, 200, `GET manifest ${m.digest}: ${res.status} ${body.toString()}`);
      assertSameBytes(body, m.bytes, `manifest ${m.digest} over HTTP`);
    }
  });

  it('pulls the image back byte for byte (dir: by tag and by digest, oci:)', async () => {
    const out = join(work, 'pull-image');
    await ok(registry, ['copy', '--all', '--src-tls-verify=false', ref(IMAGE_REPO, 'v1'), `dir:${out}`]);
    await assertDirCopy(out, single, [], blobsOf(single));

    const byDigest = join(work, 'pull-image-digest');
    await ok(registry, ['copy', '--src-tls-verify=false', ref(IMAGE_REPO, single.digest), `dir:${byDigest}`]);
    await assertDirCopy(byDigest, single, [], blobsOf(single));

    const oci = join(work, 'pull-image-oci');
    await ok(registry, ['copy', '--src-tls-verify=false', ref(IMAGE_REPO, 'v1.1'), `oci:${oci}:pulled`]);
    const names = (await readdir(join(oci, 'blobs/sha256'))).sort();
    assert.deepEqual(names, [single, ...blobsOf(single)].map((b) => hex(b.digest)).sort(), 'blobs in the oci: copy');
    for (const b of [single, ...blobsOf(single)]) assertSameBytes(await readFile(join(oci, 'blobs/sha256', hex(b.digest))), b.bytes, `oci: blob ${b.digest}`);
    const index = JSON.parse(await readFile(join(oci, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.deepEqual(index.manifests.map((m) => m.digest), [single.digest], 'index.json of the oci: copy');
  });

  it('pulls the index and every platform back byte for byte (--all)', async () => {
    const out = join(work, 'pull-index');
    await ok(registry, ['copy', '--all', '--src-tls-verify=false', ref(INDEX_REPO, 'multi'), `dir:${out}`]);
    await assertDirCopy(out, multi, [amd64, arm64], indexBlobs);

    const oci = join(work, 'pull-index-oci');
    await ok(registry, ['copy', '--all', '--src-tls-verify=false', ref(INDEX_REPO, 'multi'), `oci:${oci}:pulled`]);
    const all = [multi, amd64, arm64, ...indexBlobs];
    const names = (await readdir(join(oci, 'blobs/sha256'))).sort();
    assert.deepEqual(names, [...new Set(all.map((b) => hex(b.digest)))].sort(), 'blobs in the oci: copy of the index');
    for (const b of all) assertSameBytes(await readFile(join(oci, 'blobs/sha256', hex(b.digest))), b.bytes, `oci: blob ${b.digest}`);
  });

  it('inspects the image: digest, layers, tags, platform; --raw is the pushed manifest', async () => {
    const info = parseJson<{ Digest: string; Layers: string[]; RepoTags: string[]; Architecture: string; Os: string; Labels: Record<string, string> }>(
      await ok(registry, ['inspect', '--tls-verify=false', ref(IMAGE_REPO, 'v1')]),
    );
    assert.equal(info.Digest, single.digest, 'inspect Digest');
    assert.deepEqual(info.Layers, single.layers.map((l) => l.digest), 'inspect Layers');
    assert.deepEqual([...info.RepoTags].sort(), ['v1', 'v1.1'], 'inspect RepoTags');
    assert.equal(info.Architecture, 'amd64');
    assert.equal(info.Os, 'linux');
    // Labels come from the config blob, which skopeo fetched from the registry.
    const config = JSON.parse(single.config.bytes.toString()) as { config: { Labels: Record<string, string> } };
    assert.deepEqual(info.Labels, config.config.Labels, 'inspect Labels (from the config blob)');

    const raw = await ok(registry, ['inspect', '--raw', '--tls-verify=false', ref(IMAGE_REPO, 'v1.1')]);
    assertSameBytes(raw.stdout, single.bytes, 'inspect --raw');
    const rawConfig = await ok(registry, ['inspect', '--config', '--raw', '--tls-verify=false', ref(IMAGE_REPO, single.digest)]);
    assertSameBytes(rawConfig.stdout, single.config.bytes, 'inspect --config --raw');
  });

  it('inspects the index: --raw is the pushed index, platform selection picks the arm64 child', async () => {
    const raw = await ok(registry, ['inspect', '--raw', '--tls-verify=false', ref(INDEX_REPO, 'multi')]);
    assertSameBytes(raw.stdout, multi.bytes, 'inspect --raw of the index');
    const child = await ok(registry, ['inspect', '--raw', '--tls-verify=false', ref(INDEX_REPO, arm64.digest)]);
    assertSameBytes(child.stdout, arm64.bytes, 'inspect --raw of the arm64 child');

    const info = parseJson<{ Digest: string; Layers: string[]; Architecture: string; RepoTags: string[] }>(
      await ok(registry, ['--override-arch', 'arm64', '--override-os', 'linux', '--override-variant', 'v8', 'inspect', '--tls-verify=false', ref(INDEX_REPO, 'multi')]),
    );
    assert.equal(info.Digest, multi.digest, 'inspect Digest of the index');
    assert.equal(info.Architecture, 'arm64');
    assert.deepEqual(info.Layers, arm64.layers.map((l) => l.digest), 'inspect Layers of the arm64 child');
    assert.deepEqual(info.RepoTags, ['multi'], 'inspect RepoTags of the index repository');
  });

  it('lists tags', async () => {
    const image = parseJson<{ Repository: string; Tags: string[] }>(await ok(registry, ['list-tags', '--tls-verify=false', `docker://${host}/${IMAGE_REPO}`]));
    assert.equal(image.Repository, `${host}/${IMAGE_REPO}`);
    assert.deepEqual([...image.Tags].sort(), ['v1', 'v1.1'], 'tags of the image repository');
    const index = parseJson<{ Tags: string[] }>(await ok(registry, ['list-tags', '--tls-verify=false', `docker://${host}/${INDEX_REPO}`]));
    assert.deepEqual(index.Tags, ['multi'], 'tags of the index repository');
  });

  it('copies registry to registry, mounting blobs across repositories', async () => {
    const r = await ok(registry, ['--debug', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', ref(IMAGE_REPO, 'v1'), ref(COPY_IMAGE_REPO, 'v1')]);
    const raw = await ok(registry, ['inspect', '--raw', '--tls-verify=false', ref(COPY_IMAGE_REPO, 'v1')]);
    assertSameBytes(raw.stdout, single.bytes, 'manifest of the copied image');
    // skopeo knows (from its blob info cache) which repositories on this registry hold each layer,
    // so it asks for cross-repository mounts (POST .../blobs/uploads/?mount=&from=) instead of
    // uploading the layers again. The shared base layer may come from either source repository.
    const mounts = r.stderr.split('\n').filter((l) => /Trying to mount|mount OK|Mount failed/.test(l));
    const sources = [IMAGE_REPO, INDEX_REPO].map(encodeURIComponent);
    for (const l of single.layers) {
      assert.ok(
        mounts.some((m) => m.includes('Trying to mount') && m.includes(`mount=${encodeURIComponent(l.digest)}`) && sources.some((s) => m.includes(`from=${s}`))),
        `skopeo did not try to mount layer ${l.digest}; mount lines:\n${mounts.join('\n')}\n${describeRun(r)}`,
      );
    }
    assert.deepEqual(
      mounts.filter((m) => /mount OK|Mount failed/.test(m)).map((m) => (m.includes('mount OK') ? 'mount OK' : m)),
      single.layers.map(() => 'mount OK'),
      `every layer mount must succeed (201 Created); mount lines:\n${mounts.join('\n')}\n--- server output (tail) ---\n${registry.output().slice(-4000)}`,
    );
    const pulled = join(work, 'pull-copied-image');
    await ok(registry, ['copy', '--src-tls-verify=false', ref(COPY_IMAGE_REPO, 'v1'), `dir:${pulled}`]);
    await assertDirCopy(pulled, single, [], blobsOf(single));

    await ok(registry, ['copy', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', ref(INDEX_REPO, 'multi'), ref(COPY_INDEX_REPO, 'multi')]);
    const pulledIndex = join(work, 'pull-copied-index');
    await ok(registry, ['copy', '--all', '--src-tls-verify=false', ref(COPY_INDEX_REPO, 'multi'), `dir:${pulledIndex}`]);
    await assertDirCopy(pulledIndex, multi, [amd64, arm64], indexBlobs);
  });

  it('deletes a manifest by digest; it and its tags are gone, other repositories keep theirs', async () => {
    await ok(registry, ['delete', '--tls-verify=false', ref(IMAGE_REPO, single.digest)]);
    const inspect = await skopeo(['inspect', '--raw', '--tls-verify=false', ref(IMAGE_REPO, single.digest)]);
    assert.notEqual(inspect.code, 0, `inspect after delete succeeded:\n${describeRun(inspect)}\n${inspect.stdout.toString().slice(0, 500)}`);
    for (const reference of [single.digest, 'v1', 'v1.1']) {
      const res = await fetch(manifestUrl(IMAGE_REPO, reference), { headers: { accept } });
      const body = await res.text();
      assert.equal(res.status, 404, `GET manifest ${reference} after delete: ${res.status} ${body.slice(0, 300)}`);
    }
    // The copy in another repository (whose blobs were mounted) is untouched.
    const pulled = join(work, 'pull-after-delete');
    await ok(registry, ['copy', '--src-tls-verify=false', ref(COPY_IMAGE_REPO, 'v1'), `dir:${pulled}`]);
    await assertDirCopy(pulled, single, [], blobsOf(single));
  });

  it('deletes an index by tag', async () => {
    await ok(registry, ['delete', '--tls-verify=false', ref(INDEX_REPO, 'multi')]);
    const inspect = await skopeo(['inspect', '--raw', '--tls-verify=false', ref(INDEX_REPO, 'multi')]);
    assert.notEqual(inspect.code, 0, `inspect after delete succeeded:\n${describeRun(inspect)}`);
    for (const reference of [multi.digest, 'multi']) {
      const res = await fetch(manifestUrl(INDEX_REPO, reference), { headers: { accept } });
      assert.equal(res.status, 404, `GET manifest ${reference} after delete: ${res.status} ${(await res.text()).slice(0, 300)}`);
    }
    const raw = await ok(registry, ['inspect', '--raw', '--tls-verify=false', ref(COPY_INDEX_REPO, 'multi')]);
    assertSameBytes(raw.stdout, multi.bytes, 'the copied index survives');
  });
});
