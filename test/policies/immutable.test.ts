/**
 * Immutable tags through HTTP: the same digest may be pushed again, a different one is refused,
 * the tag and the manifest it points to cannot be deleted; rules come from the file and the API.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { image, pushImage } from '../helpers/oci.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { assertServerLogClean, expectStatus, http, toRes, type Res } from '../http/util.js';

interface ErrorBody {
  errors: { code: string; message: string; detail: { reason?: string; rule?: { repositories: string; tags: string } } }[];
}

function refusedAsImmutable(res: Res, tags: string): void {
  expectStatus(res, 409);
  const body = JSON.parse(res.text) as ErrorBody;
  assert.equal(body.errors[0]!.code, 'DENIED');
  assert.equal(body.errors[0]!.detail.reason, 'TAG_IMMUTABLE');
  assert.equal(body.errors[0]!.detail.rule?.tags, tags);
  assert.match(body.errors[0]!.message, new RegExp(`is immutable \\(rule: repositories .*, tags ${tags.replace('*', '\\*')}\\)`));
}

describe('immutable tags', { timeout: 60_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  let base: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-immutable-'));
    const config = join(dir, 'portfolio.yaml');
    await writeFile(config, 'policies:\n  immutableTags:\n    - repositories: "app/**"\n      tags: "v*"\n');
    registry = await startRegistry({ args: ['--config', config] });
    base = registry.url;
  });
  after(async () => {
    assertServerLogClean(registry.output());
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const put = async (repo: string, img: ReturnType<typeof image>, reference: string) => toRes(await pushImage(base, repo, img, reference), 'PUT');

  it('lets the same digest be pushed again and refuses another one', async () => {
    const a = image();
    const b = image();
    expectStatus(await put('app/web', a, 'v1'), 201);
    expectStatus(await put('app/web', a, 'v1'), 201);
    refusedAsImmutable(await put('app/web', b, 'v1'), 'v*');
    const head = await http(`${base}/v2/app/web/manifests/v1`, { method: 'HEAD', headers: { accept: a.mediaType } });
    assert.equal(head.headers.get('docker-content-digest'), a.digest);
    // The refused PUT changed nothing: b was not stored either.
    expectStatus(await http(`${base}/v2/app/web/manifests/${b.digest}`, { method: 'HEAD', headers: { accept: b.mediaType } }), 404);
  });

  it('refuses deleting the tag and the manifest it points to', async () => {
    const a = image();
    expectStatus(await put('app/api', a, 'v2'), 201);
    refusedAsImmutable(await http(`${base}/v2/app/api/manifests/v2`, { method: 'DELETE' }), 'v*');
    refusedAsImmutable(await http(`${base}/v2/app/api/manifests/${a.digest}`, { method: 'DELETE' }), 'v*');
    expectStatus(await http(`${base}/v2/app/api/manifests/v2`, { method: 'HEAD', headers: { accept: a.mediaType } }), 200);
    // A missing immutable-looking tag is still just unknown.
    expectStatus(await http(`${base}/v2/app/api/manifests/v404`, { method: 'DELETE' }), 404);
  });

  it('leaves tags and repositories outside the rule alone', async () => {
    const a = image();
    const b = image();
    expectStatus(await put('app/web', a, 'latest'), 201);
    expectStatus(await put('app/web', b, 'latest'), 201);
    expectStatus(await http(`${base}/v2/app/web/manifests/latest`, { method: 'DELETE' }), 202);
    expectStatus(await put('other/web', a, 'v1'), 201);
    expectStatus(await put('other/web', b, 'v1'), 201);
    expectStatus(await http(`${base}/v2/other/web/manifests/${b.digest}`, { method: 'DELETE' }), 202);
  });

  it('takes rules from the admin API at once, and drops them there', async () => {
    const a = image();
    const b = image();
    expectStatus(await put('svc/x', a, 'stable'), 201);
    const created = await http(`${base}/_portfolio/policies`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'immutable', repositories: 'svc/*', tags: 'stable' }),
    });
    expectStatus(created, 200);
    const stored = JSON.parse(created.text) as { id: string; source: string };
    assert.deepEqual(stored.source, 'api');
    refusedAsImmutable(await put('svc/x', b, 'stable'), 'stable');
    expectStatus(await http(`${base}/_portfolio/policies/${encodeURIComponent(stored.id)}`, { method: 'DELETE' }), 204);
    expectStatus(await put('svc/x', b, 'stable'), 201);
    const bad = await http(`${base}/_portfolio/policies`, { method: 'PUT', body: JSON.stringify({ kind: 'immutable', repositories: 'svc/*', tags: 'a b' }) });
    expectStatus(bad, 400);
  });
});
