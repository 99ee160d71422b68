/**
 * Basic auth against an htpasswd file, alone (every user may do everything) and with an access
 * policy: 401 versus 403, anonymous pull, catalog filtering with correct paging, mounts that
 * need pull on `from`, and the admin routes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { image } from '../helpers/oci.js';
import { basicAuth, call, catalogPages, expectError, pushImageWith, writeHtpasswd } from './util.js';

const USERS = { alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw', root: 'root-pw' };
const as = (user: keyof typeof USERS) => ({ authorization: basicAuth(user, USERS[user]) });

describe('basic auth with --htpasswd alone', { timeout: 30_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-basic-'));
    await writeHtpasswd(join(dir, 'htpasswd'), USERS);
    registry = await startRegistry({ args: ['--htpasswd', join(dir, 'htpasswd')] });
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('anonymous requests get 401 UNAUTHORIZED with a Basic challenge, everywhere', async () => {
    for (const [method, path] of [
      ['GET', '/v2/'],
      ['GET', '/v2/_catalog'],
      ['GET', '/v2/a/manifests/latest'],
      ['HEAD', '/v2/a/blobs/sha256:' + '0'.repeat(64)],
      ['POST', '/v2/a/blobs/uploads/'],
      ['DELETE', '/v2/a/manifests/latest'],
      ['GET', '/_portfolio/usage'],
      ['GET', '/_portfolio/policies'],
      ['PUT', '/_portfolio/policies'],
    ] as const) {
      const r = await call(`${registry.url}${path}`, { method });
      assert.equal(r.status, 401, `${method} ${path}`);
      if (method !== 'HEAD') expectError(r, 401, 'UNAUTHORIZED', `${method} ${path}`);
      assert.equal(r.headers.get('www-authenticate'), 'Basic realm="portfolio"', `${method} ${path}`);
    }
  });

  it('wrong passwords, unknown users and malformed headers are 401 too', async () => {
    for (const authorization of [basicAuth('alice', 'nope'), basicAuth('mallory', 'alice-pw'), 'Basic !!!', 'Basic', 'Bearer abc', 'Digest x', basicAuth('alice', '')]) {
      const r = await call(`${registry.url}/v2/`, { headers: { authorization } });
      expectError(r, 401, 'UNAUTHORIZED', authorization);
      assert.equal(r.headers.get('www-authenticate'), 'Basic realm="portfolio"');
    }
  });

  it('an authenticated user may push, pull, list and delete everything', async () => {
    assert.equal((await call(`${registry.url}/v2/`, { headers: as('carol') })).status, 200);
    const img = image();
    assert.equal((await pushImageWith(registry.url, 'any/where', img, 'v1', as('carol'))).status, 201);
    const got = await call(`${registry.url}/v2/any/where/manifests/v1`, { headers: { ...as('bob'), accept: img.mediaType } });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('docker-content-digest'), img.digest);
    assert.deepEqual((await call(`${registry.url}/v2/_catalog`, { headers: as('bob') })).json.repositories, ['any/where']);
    assert.equal((await call(`${registry.url}/_portfolio/usage`, { headers: as('bob') })).status, 200);
    assert.equal((await call(`${registry.url}/v2/any/where/manifests/${img.digest}`, { method: 'DELETE', headers: as('alice') })).status, 202);
    assert.equal((await call(`${registry.url}/v2/any/where/manifests/v1`, { headers: as('bob') })).status, 404);
  });

  it('a refused upload leaves nothing behind', async () => {
    const img = image();
    const r = await pushImageWith(registry.url, 'anon/push', img, 'v1', {});
    expectError(r, 401, 'UNAUTHORIZED', 'anonymous blob upload');
    const blob = await call(`${registry.url}/v2/anon/push/blobs/${img.config.digest}`, { method: 'HEAD', headers: as('root') });
    assert.equal(blob.status, 404);
    assert.ok(!(await call(`${registry.url}/v2/_catalog`, { headers: as('root') })).json.repositories.includes('anon/push'));
  });
});

const POLICY = `
groups:
  developers: [alice, bob]
admins:
  users: [root]
rules:
  - repository: "public/**"
    anonymous: [pull]
    groups:
      developers: [pull, push]
  - repository: "team/**"
    groups:
      developers: [pull, push]
    users:
      bob: [pull, push, delete]
  - repository: "team/secret"
    users:
      bob: [pull, push]
  - repository: "carol/**"
    users:
      carol: [pull, push]
`;

describe('basic auth with an access policy (--access-policy)', { timeout: 30_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  const images: Record<string, ReturnType<typeof image>> = {};
  const REPOS = ['carol/x', 'carol/y', 'public/a', 'public/b', 'team/app', 'team/secret', 'zeta/only-admin'];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-policy-'));
    await writeHtpasswd(join(dir, 'htpasswd'), USERS);
    await writeFile(join(dir, 'policy.yaml'), POLICY);
    registry = await startRegistry({ args: ['--htpasswd', join(dir, 'htpasswd'), '--access-policy', join(dir, 'policy.yaml')] });
    for (const repo of REPOS) {
      images[repo] = image();
      const r = await pushImageWith(registry.url, repo, images[repo]!, 'v1', as('root'));
      assert.equal(r.status, 201, `root pushes ${repo}: ${r.text}`);
    }
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const manifest = (repo: string, headers: Record<string, string>, method = 'GET') =>
    call(`${registry.url}/v2/${repo}/manifests/v1`, { method, headers: { ...headers, accept: images[repo]?.mediaType ?? '*/*' } });

  it('anonymous pull where a rule allows it; 401 with a challenge elsewhere', async () => {
    assert.equal((await manifest('public/a', {})).status, 200);
    assert.equal((await call(`${registry.url}/v2/public/a/tags/list`)).status, 200);
    for (const repo of ['team/app', 'carol/x', 'zeta/only-admin']) {
      const r = await manifest(repo, {});
      expectError(r, 401, 'UNAUTHORIZED', `anonymous pull of ${repo}`);
      assert.equal(r.headers.get('www-authenticate'), 'Basic realm="portfolio"');
    }
    expectError(await pushImageWith(registry.url, 'public/a', image(), 'v2', {}), 401, 'UNAUTHORIZED', 'anonymous push to public/a');
    expectError(await call(`${registry.url}/v2/`), 401, 'UNAUTHORIZED', 'anonymous GET /v2/');
  });

  it('authenticated but not allowed is 403 DENIED, never 401', async () => {
    const cases: [keyof typeof USERS, string, string][] = [
      ['alice', 'team/secret', 'GET'],
      ['carol', 'team/app', 'GET'],
      ['alice', 'zeta/only-admin', 'HEAD'],
      ['carol', 'public/a', 'DELETE'],
    ];
    for (const [user, repo, method] of cases) {
      const r = await manifest(repo, as(user), method);
      assert.equal(r.status, 403, `${user} ${method} ${repo}: ${r.text}`);
      if (method !== 'HEAD') expectError(r, 403, 'DENIED', `${user} ${method} ${repo}`);
      assert.equal(r.headers.get('www-authenticate'), null);
    }
    expectError(await pushImageWith(registry.url, 'team/app', image(), 'v2', as('carol')), 403, 'DENIED', 'carol pushes to team/app');
    expectError(await pushImageWith(registry.url, 'public/a', image(), 'v2', as('carol')), 403, 'DENIED', 'carol pushes to public/a');
    expectError(await call(`${registry.url}/_portfolio/usage`, { headers: as('alice') }), 403, 'DENIED', 'alice on an admin route');
    const rule = JSON.stringify({ kind: 'quota', scope: 'team/**', limit: '1KiB' });
    expectError(await call(`${registry.url}/_portfolio/policies`, { method: 'PUT', headers: as('alice'), body: rule }), 403, 'DENIED', 'alice sets a policy');
    expectError(await call(`${registry.url}/_portfolio/quotas`, { headers: as('alice') }), 403, 'DENIED', 'alice reads quotas');
  });

  it('the most specific rule decides: push but no delete, pull but not the secret', async () => {
    const img = image();
    assert.equal((await pushImageWith(registry.url, 'team/app', img, 'v2', as('alice'))).status, 201, 'developers push to team/**');
    expectError(await call(`${registry.url}/v2/team/app/manifests/${img.digest}`, { method: 'DELETE', headers: as('alice') }), 403, 'DENIED', 'alice deletes');
    assert.equal((await call(`${registry.url}/v2/team/app/manifests/${img.digest}`, { method: 'DELETE', headers: as('bob') })).status, 202, 'bob deletes');
    assert.equal((await manifest('team/secret', as('bob'))).status, 200);
    expectError(await call(`${registry.url}/v2/team/secret/manifests/v1`, { method: 'DELETE', headers: as('bob') }), 403, 'DENIED', 'bob may not delete in team/secret');
    assert.equal((await manifest('zeta/only-admin', as('root'))).status, 200);
    assert.equal((await call(`${registry.url}/_portfolio/usage`, { headers: as('root') })).status, 200);
    assert.equal((await call(`${registry.url}/_portfolio/policies`, { headers: as('root') })).status, 200);
  });

  it('_catalog lists only what the caller may pull, and pages correctly', async () => {
    const expected: [string, Record<string, string>, string[]][] = [
      ['anonymous', {}, ['public/a', 'public/b']],
      ['alice', as('alice'), ['public/a', 'public/b', 'team/app']],
      ['bob', as('bob'), ['public/a', 'public/b', 'team/app', 'team/secret']],
      ['carol', as('carol'), ['carol/x', 'carol/y', 'public/a', 'public/b']],
      ['root', as('root'), REPOS],
    ];
    for (const [who, headers, repos] of expected) {
      const all = await call(`${registry.url}/v2/_catalog`, { headers });
      assert.equal(all.status, 200, `${who}: ${all.text}`);
      assert.deepEqual(all.json.repositories, repos, `${who}: whole catalog`);
      assert.equal(all.headers.get('link'), null, `${who}: one page, no Link`);
      for (const n of [1, 2, 3]) {
        const pages = await catalogPages(registry.url, `/v2/_catalog?n=${n}`, headers);
        assert.deepEqual(pages.flat(), repos, `${who}: pages of ${n}`);
        assert.ok(pages.every((p) => p.length > 0 && p.length <= n), `${who}: pages of ${n}: ${JSON.stringify(pages)}`);
        assert.equal(pages.length, Math.ceil(repos.length / n), `${who}: no trailing empty page with n=${n}`);
      }
      const after = await call(`${registry.url}/v2/_catalog?last=public/a`, { headers });
      assert.deepEqual(after.json.repositories, repos.filter((r) => r > 'public/a'), `${who}: last=public/a`);
    }
  });

  it('a cross-repository mount needs pull on `from`; without it, a 202 upload session', async () => {
    const secretLayer = images['team/secret']!.layers[0]!.digest;
    const appLayer = images['team/app']!.layers[0]!.digest;
    const mount = (repo: string, digest: string, from: string | null, user: keyof typeof USERS) =>
      call(`${registry.url}/v2/${repo}/blobs/uploads/?mount=${digest}${from === null ? '' : `&from=${from}`}`, { method: 'POST', headers: as(user) });

    const refused = await mount('public/m', secretLayer, 'team/secret', 'alice');
    assert.equal(refused.status, 202, `alice may not pull team/secret: ${refused.text}`);
    assert.match(refused.headers.get('location') ?? '', /^\/v2\/public\/m\/blobs\/uploads\//);
    const head = await call(`${registry.url}/v2/public/m/blobs/${secretLayer}`, { method: 'HEAD', headers: as('root') });
    assert.equal(head.status, 404, 'the blob was not linked');

    const allowed = await mount('public/m', appLayer, 'team/app', 'alice');
    assert.equal(allowed.status, 201, `alice may pull team/app: ${allowed.text}`);

    const anywhere = await mount('public/m', secretLayer, null, 'alice');
    assert.equal(anywhere.status, 202, 'a mount without from would read any repository: admins only');
    assert.equal((await mount('public/m', secretLayer, null, 'root')).status, 201, 'an admin may');
  });
});

describe('upload sessions need push (basic auth with a policy)', { timeout: 30_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-sessions-'));
    await writeHtpasswd(join(dir, 'htpasswd'), USERS);
    await writeFile(join(dir, 'policy.yaml'), POLICY);
    registry = await startRegistry({ args: ['--htpasswd', join(dir, 'htpasswd'), '--access-policy', join(dir, 'policy.yaml')] });
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('pull alone cannot read or touch a session; pull+push can abandon its own', async () => {
    const start = await call(`${registry.url}/v2/public/s/blobs/uploads/`, { method: 'POST', headers: as('alice') });
    assert.equal(start.status, 202, start.text);
    const session = `${registry.url}${start.headers.get('location')}`;
    // carol and anonymous callers may pull public/** but not push there.
    for (const method of ['GET', 'PATCH', 'PUT', 'DELETE']) {
      const r = await call(session, { method, headers: as('carol') });
      expectError(r, 403, 'DENIED', `carol ${method}s alice's session`);
      expectError(await call(session, { method }), 401, 'UNAUTHORIZED', `anonymous ${method} on the session`);
    }
    assert.equal((await call(session, { headers: as('alice') })).status, 204, 'the session is intact');
    const cancel = await call(session, { method: 'DELETE', headers: as('alice') });
    assert.equal(cancel.status, 204, `alice (pull, push, no delete) abandons her session: ${cancel.text}`);
    expectError(await call(session, { headers: as('alice') }), 404, 'BLOB_UPLOAD_UNKNOWN', 'the session is gone');
  });
});
