/**
 * Token scopes bind every Bearer caller, admins included: admin routes need `registry:admin:*` in
 * the token, a mount needs pull on `from` in the token, whatever the token's subject may do
 * under the policy. Basic callers keep their policy rights. Upload sessions need push.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { image } from '../helpers/oci.js';
import { basicAuth, call, expectError, parseChallenge, pushImageWith, writeHtpasswd } from './util.js';

const USERS = { alice: 'alice-pw', bob: 'bob-pw' };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('token scopes with --auth token --htpasswd and no policy', { timeout: 60_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  const img = image();

  /** `portfolio token` with the registry's key: signs exactly what is asked. */
  async function mint(account: string, scopes: string[]): Promise<string> {
    const r = await runCli(['token', '--data-dir', registry.dataDir, '--account', account, ...scopes.flatMap((s) => ['--scope', s])]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  }
  async function tokenFor(user: keyof typeof USERS, scopes: string[]): Promise<string> {
    const query = new URLSearchParams([['service', 'portfolio'], ...scopes.map((s) => ['scope', s])]);
    const r = await call(`${registry.url}/auth/token?${query}`, { headers: { authorization: basicAuth(user, USERS[user]) } });
    assert.equal(r.status, 200, r.text);
    return r.json.token;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-scopes-'));
    await writeHtpasswd(join(dir, 'htpasswd'), USERS);
    registry = await startRegistry({ args: ['--auth', 'token', '--htpasswd', join(dir, 'htpasswd')] });
    const alice = { authorization: basicAuth('alice', USERS.alice) };
    for (const repo of ['victim/app', 'other/app']) assert.equal((await pushImageWith(registry.url, repo, img, 'v1', alice)).status, 201, repo);
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a minted token for a user not in the file reaches only what it names: no admin routes', async () => {
    const robot = await mint('robot', ['repository:other/app:pull']);
    assert.equal((await call(`${registry.url}/v2/other/app/tags/list`, { headers: bearer(robot) })).status, 200, 'what it names works');
    expectError(await call(`${registry.url}/v2/victim/app/tags/list`, { headers: bearer(robot) }), 401, 'UNAUTHORIZED', 'another repository');
    const usage = await call(`${registry.url}/_portfolio/usage`, { headers: bearer(robot) });
    const del = await call(`${registry.url}/_portfolio/repositories/victim/app`, { method: 'DELETE', headers: bearer(robot) });
    assert.deepEqual([usage.status, del.status], [401, 401], 'GET /_portfolio/usage and DELETE /_portfolio/repositories/victim/app');
    expectError(usage, 401, 'UNAUTHORIZED', 'GET /_portfolio/usage');
    expectError(del, 401, 'UNAUTHORIZED', 'DELETE /_portfolio/repositories/victim/app');
    assert.deepEqual(parseChallenge(usage.headers.get('www-authenticate')).params.scope, 'registry:admin:*');
    assert.equal((await call(`${registry.url}/v2/victim/app/tags/list`, { headers: { authorization: basicAuth('bob', USERS.bob) } })).status, 200, 'the repository is still there');
    const catalog = await mint('robot', ['registry:catalog:*', 'repository:other/app:pull']);
    assert.deepEqual((await call(`${registry.url}/v2/_catalog`, { headers: bearer(catalog) })).json.repositories, ['other/app'], 'the catalog of a stranger: what the token names');
  });

  it('an admin user of the file needs registry:admin:* in the token too; the token endpoint grants it to them', async () => {
    const repoOnly = await tokenFor('alice', ['repository:other/app:pull']);
    const usage = await call(`${registry.url}/_portfolio/usage`, { headers: bearer(repoOnly) });
    expectError(usage, 401, 'UNAUTHORIZED', 'an admin whose token lacks registry:admin:*');
    assert.equal(parseChallenge(usage.headers.get('www-authenticate')).params.error, 'insufficient_scope');
    const admin = await tokenFor('alice', ['registry:admin:*']);
    assert.deepEqual(decodeJwt(admin).access, [{ type: 'registry', name: 'admin', actions: ['*'] }]);
    assert.equal((await call(`${registry.url}/_portfolio/usage`, { headers: bearer(admin) })).status, 200);
    assert.equal((await call(`${registry.url}/v2/other/app/tags/list`, { headers: bearer(admin) })).status, 401, 'the admin scope is not a repository scope');
    const anonymous = await call(`${registry.url}/auth/token?scope=registry:admin:*`);
    assert.deepEqual(decodeJwt(anonymous.json.token).access, [], 'no admin scope for anonymous callers');
    assert.equal((await call(`${registry.url}/_portfolio/usage`, { headers: { authorization: basicAuth('bob', USERS.bob) } })).status, 200, 'Basic callers keep their rights');
  });

  it('a mount needs pull on `from` in the token, whatever the subject may do', async () => {
    const layer = img.layers[0]!.digest;
    const pushOnly = await tokenFor('alice', ['repository:mounted/app:pull,push']);
    const refused = await call(`${registry.url}/v2/mounted/app/blobs/uploads/?mount=${layer}&from=victim/app`, { method: 'POST', headers: bearer(pushOnly) });
    assert.equal(refused.status, 202, `no pull on victim/app in the token: a new session (${refused.text})`);
    const anywhere = await call(`${registry.url}/v2/mounted/app/blobs/uploads/?mount=${layer}`, { method: 'POST', headers: bearer(pushOnly) });
    assert.equal(anywhere.status, 202, 'a mount from anywhere is never tried for a token');
    const withSource = await tokenFor('alice', ['repository:mounted/app:pull,push', 'repository:victim/app:pull']);
    const mounted = await call(`${registry.url}/v2/mounted/app/blobs/uploads/?mount=${layer}&from=victim/app`, { method: 'POST', headers: bearer(withSource) });
    assert.equal(mounted.status, 201, mounted.text);
  });
});
