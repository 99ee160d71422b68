/**
 * Property-based fuzzing (fast-check): a few thousand random requests — random methods, paths
 * built from fragments of real routes and garbage, random headers and bodies, eight at a time —
 * must never produce a 5xx or break the server. Afterwards the server is stopped and
 * `portfolio fsck` on the same stores must find every invariant intact (exit 0).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { freshEngine, runCli, startRegistry, ENGINE, type RunningRegistry } from '../helpers/registry.js';
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, image, pushImage, sha256 } from '../helpers/oci.js';
import { SPEC_ERROR_CODES } from '../http/util.js';
import { send } from './util.js';

const RUNS = Number(process.env.PORTFOLIO_FUZZ_RUNS ?? (ENGINE === 'sqlite-fs' ? 400 : 250));
const PARALLEL = 8;
const SPEC_CODES = new Set(SPEC_ERROR_CODES);

describe('fuzzing', { timeout: 120_000 }, () => {
  let dataDir: string;
  let engineArgs: string[];
  let registry: RunningRegistry;
  const img = image();
  let session = '';

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portfolio-fuzz-'));
    engineArgs = await freshEngine(dataDir);
    registry = await startRegistry({ dataDir, engineArgs, args: ['--max-blob-size', '1M'] });
    assert.equal((await pushImage(registry.url, 'fuzz/repo', img, 'v1')).status, 201);
    const start = await send(registry.url, 'POST', '/v2/fuzz/repo/blobs/uploads/');
    session = String(start.headers['docker-upload-uuid']);
  });
  after(async () => {
    await registry?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  // --- generators -----------------------------------------------------------------------------
  const printable = (s: string) => s.replace(/[^\x21-\x7e]/g, (c) => `%${(c.charCodeAt(0) & 0xff).toString(16).padStart(2, '0')}`);
  const garbage = fc.string({ maxLength: 40 }).map(printable);
  const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
  const segment = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('fuzz', 'repo', 'a', 'b0', 'x.y', 'x_y', 'x-y') },
    { weight: 3, arbitrary: fc.constantFrom('..', '.', '%2e%2e', '%2F', '%00', 'A', '_', '-', '__', '', '%', '%zz', ';', '*', '~', 'x'.repeat(300)) },
    { weight: 2, arbitrary: fc.constantFrom('blobs', 'manifests', 'uploads', 'tags', 'list', '_catalog', 'referrers', 'v2', '_portfolio', 'usage') },
    { weight: 1, arbitrary: garbage },
  );
  const name = fc.oneof(
    { weight: 5, arbitrary: fc.constant('fuzz/repo') },
    { weight: 1, arbitrary: fc.constant('fuzz/other') },
    { weight: 4, arbitrary: fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/')) },
  );
  const digest = fc.oneof(
    fc.constantFrom(img.digest, img.config.digest, img.layers[0]!.digest),
    hex64.map((h) => `sha256:${h}`),
    hex64.map((h) => `sha512:${h}${h}`),
    fc.constantFrom('sha256:', 'md5:abc', `sha256:${'A'.repeat(64)}`, 'sha256:..%2F..', `sha384:${'0'.repeat(96)}`),
    garbage,
  );
  const reference = fc.oneof(digest, fc.constantFrom('v1', 'latest', 'v2', '.bad', 'x'.repeat(129)), garbage);
  const uploadId = fc.oneof(fc.constant(() => session), fc.uuid().map((u) => () => u), garbage.map((g) => () => g));
  const number = fc.oneof(fc.integer({ min: -10, max: 5000 }).map(String), fc.constantFrom('99999999999999999999', '1e3', '0x10', '', '-0', '4294967296'));
  const query = fc
    .record(
      {
        digest,
        mount: digest,
        from: name,
        n: number,
        last: fc.oneof(name, garbage),
        artifactType: garbage,
      },
      { requiredKeys: [] },
    )
    .map((q) => {
      const s = Object.entries(q)
        .map(([k, v]) => `${k}=${printable(String(v))}`)
        .join('&');
      return s ? `?${s}` : '';
    });
  const path = fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom('/v2/', '/v2', '/', '/v2/_catalog', '/auth/token', '/_portfolio/usage', '/v1/', '//v2/') },
    { weight: 3, arbitrary: fc.tuple(name, reference).map(([n, r]) => `/v2/${n}/manifests/${r}`) },
    { weight: 2, arbitrary: fc.tuple(name, digest).map(([n, d]) => `/v2/${n}/blobs/${d}`) },
    { weight: 3, arbitrary: name.map((n) => `/v2/${n}/blobs/uploads/`) },
    { weight: 3, arbitrary: fc.tuple(name, uploadId).map(([n, id]) => ({ toString: () => `/v2/${n}/blobs/uploads/${id()}` })) },
    { weight: 1, arbitrary: name.map((n) => `/v2/${n}/tags/list`) },
    { weight: 1, arbitrary: fc.tuple(name, digest).map(([n, d]) => `/v2/${n}/referrers/${d}`) },
    { weight: 1, arbitrary: fc.array(segment, { maxLength: 6 }).map((s) => `/${s.join('/')}`) },
  );
  const range = fc.oneof(
    fc.tuple(number, number).map(([a, b]) => `${a}-${b}`),
    fc.tuple(number, number).map(([a, b]) => `bytes=${a}-${b}`),
    fc.constantFrom('0-0', 'bytes=0-', 'bytes=-1', 'bytes=0-1,2-3', '*', '-', ''),
    garbage,
  );
  const headers = fc.record(
    {
      'content-type': fc.oneof(fc.constantFrom(OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, 'application/octet-stream', 'application/json', 'text/plain; charset=utf-8', ''), garbage),
      'content-range': range,
      range,
      accept: fc.constantFrom(OCI_MANIFEST, '*/*', `${OCI_INDEX}, ${DOCKER_MANIFEST}`, 'garbage'),
      'if-none-match': fc.oneof(fc.constant(`"${img.digest}"`), garbage),
      authorization: fc.oneof(fc.constantFrom('Basic Og==', 'Bearer x.y.z', 'Basic'), garbage),
    },
    { requiredKeys: [] },
  );
  const manifestJson = JSON.parse(img.manifest.toString());
  const jsonValue = fc.jsonValue({ maxDepth: 3 });
  const body = fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)) },
    { weight: 2, arbitrary: fc.constant(img.manifest) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.constantFrom('schemaVersion', 'mediaType', 'config', 'layers', 'subject', 'annotations', 'manifests', 'artifactType'), jsonValue)
        .map(([k, v]) => Buffer.from(JSON.stringify({ ...manifestJson, [k]: v }))),
    },
    { weight: 1, arbitrary: jsonValue.map((v) => Buffer.from(JSON.stringify(v))) },
  );
  const method = fc.constantFrom('GET', 'GET', 'HEAD', 'POST', 'POST', 'PUT', 'PUT', 'PATCH', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE');
  const request = fc.record({ method, path, query, headers, body });

  it(`${RUNS * PARALLEL} random requests: no 5xx, the server stays up`, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: PARALLEL });
    let sent = 0;
    let socketErrors = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: PARALLEL, maxLength: PARALLEL }), async (batch) => {
        const replies = await Promise.all(
          batch.map(async (r) => {
            const target = `${String(r.path)}${r.query}`;
            try {
              const reply = await send(registry.url, r.method, target, r.headers as Record<string, string>, r.body, agent);
              statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
              return { target, method: r.method, status: reply.status, text: reply.text };
            } catch (err) {
              // The server may cut a connection whose body it refused; it must still be up.
              socketErrors++;
              return { target, method: r.method, status: 0, text: String(err) };
            }
          }),
        );
        sent += batch.length;
        for (const r of replies) {
          assert.ok(r.status < 500, `${r.method} ${r.target} -> ${r.status} ${r.text.slice(0, 300)}`);
          if (r.status >= 400 && r.text.startsWith('{')) {
            const codes = (JSON.parse(r.text) as { errors?: { code?: string }[] }).errors?.map((e) => e.code) ?? [];
            for (const code of codes) assert.ok(SPEC_CODES.has(code ?? ''), `${r.method} ${r.target} -> ${r.status} with code ${code}, not one of the spec's`);
          }
        }
        if (replies.some((r) => r.status === 0)) assert.equal((await send(registry.url, 'GET', '/v2/')).status, 200, 'the server is up after a cut connection');
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    agent.destroy();
    assert.equal((await send(registry.url, 'GET', '/v2/')).status, 200);
    assert.ok(socketErrors < sent / 10, `${socketErrors} of ${sent} requests ended in a socket error`);
    const spread = [...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(' ');
    console.log(`fuzz: ${sent} requests, statuses ${spread}, socket errors ${socketErrors}`);
    assert.ok((statuses.get(201) ?? 0) + (statuses.get(202) ?? 0) > 0, `the fuzzer reached successful writes: ${spread}`);
    // The fixture must still be intact: every blob of the image readable with its digest.
    const got = await send(registry.url, 'GET', `/v2/fuzz/repo/blobs/${img.config.digest}`);
    if (got.status === 200) assert.equal(sha256(got.body), img.config.digest);
  });

  it('fsck on the same stores finds nothing wrong after the fuzzing', async () => {
    await registry.stop();
    const result = await runCli(['fsck', ...engineArgs]);
    assert.equal(result.code, 0, `portfolio fsck exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  });
});

