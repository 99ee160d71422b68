/** The web interface's JSON API (/_portfolio/api/v1/) over a real registry process, with auth. */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicAuth, call, pushImageWith, writeHtpasswd } from '../auth/util.js';
import { image, index, OCI_MANIFEST } from '../helpers/oci.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

const API = '/_portfolio/api/v1';
const ROOT = { authorization: basicAuth('root', 'rootpw') };

describe('JSON API', () => {
  let registry: RunningRegistry;
  let url: string;
  const amd = image();
  const arm = image();
  const idx = index([amd, arm].map((i) => ({ digest: i.digest, size: i.manifest.length, mediaType: OCI_MANIFEST })));
  const sig = image({ artifactType: 'application/vnd.dev.cosign.signature', subject: { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.manifest.length } });

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portfolio-api-'));
    await writeHtpasswd(join(dir, 'htpasswd'), { root: 'rootpw', reader: 'readerpw' });
    await writeFile(
      join(dir, 'policy.yaml'),
      'admins:\n  users: [root]\nrules:\n  - repository: "**"\n    anonymous: [pull]\n  - repository: "private/**"\n    authenticated: [pull]\n',
    );
    registry = await startRegistry({ args: ['--htpasswd', join(dir, 'htpasswd'), '--access-policy', join(dir, 'policy.yaml')] });
    url = registry.url;
    for (const [repo, img, ref] of [
      ['apps/web', amd, 'v1'],
      ['apps/web', arm, 'v2'],
      ['apps/web', sig, sig.digest],
      ['private/secret', image(), 'latest'],
    ] as const) {
      assert.equal((await pushImageWith(url, repo, img, ref, ROOT)).status, 201);
    }
    const put = await call(`${url}/v2/apps/web/manifests/multi`, { method: 'PUT', headers: { ...ROOT, 'content-type': idx.mediaType }, body: idx.manifest });
    assert.equal(put.status, 201, put.text);
    for (let i = 0; i < 7; i++) assert.equal((await pushImageWith(url, `lib/pkg-${i}`, image(), 'latest', ROOT)).status, 201);
  });
  after(() => registry?.stop());

  it('lists, searches and pages repositories; anonymous callers see only what they may pull', async () => {
    const all = await call(`${url}${API}/repositories?limit=3`, { headers: ROOT });
    assert.equal(all.status, 200, all.text);
    assert.deepEqual(all.json.repositories.map((r: { name: string }) => r.name), ['apps/web', 'lib/pkg-0', 'lib/pkg-1']);
    const web = all.json.repositories[0];
    assert.equal(web.tags, 3);
    assert.ok(web.bytes > 4 * 1024, `bytes ${web.bytes}`);
    assert.ok(Date.parse(web.lastPush) > 0);
    const names: string[] = [];
    for (let cursor: string | null = ''; cursor !== null; ) {
      const page = await call(`${url}${API}/repositories?limit=4&cursor=${cursor}`);
      assert.equal(page.status, 200, page.text);
      names.push(...page.json.repositories.map((r: { name: string }) => r.name));
      cursor = page.json.next;
    }
    assert.deepEqual(names, ['apps/web', ...[0, 1, 2, 3, 4, 5, 6].map((i) => `lib/pkg-${i}`)], 'anonymous: no private/');
    const search = await call(`${url}${API}/repositories?q=PKG-3`, { headers: ROOT });
    assert.deepEqual(search.json.repositories.map((r: { name: string }) => r.name), ['lib/pkg-3']);
    const prefix = await call(`${url}${API}/repositories?q=lib/&match=prefix&limit=2`, { headers: ROOT });
    assert.deepEqual(prefix.json.repositories.map((r: { name: string }) => r.name), ['lib/pkg-0', 'lib/pkg-1']);
    assert.ok(prefix.json.next);
    assert.equal((await call(`${url}${API}/repositories?cursor=%%%`)).status, 400);
    assert.equal((await call(`${url}${API}/repositories?limit=0`)).status, 400);
    assert.equal((await call(`${url}${API}/repositories/private/secret`)).status, 401);
    assert.equal((await call(`${url}${API}/repositories/private/secret`, { headers: ROOT })).status, 200);
  });

  it('lists tags with digest, size and platforms, sorted by name or push time', async () => {
    const tags = await call(`${url}${API}/repositories/apps/web/tags`);
    assert.equal(tags.status, 200, tags.text);
    assert.deepEqual(tags.json.tags.map((t: { name: string }) => t.name), ['multi', 'v1', 'v2']);
    const multi = tags.json.tags[0];
    assert.equal(multi.digest, idx.digest);
    assert.deepEqual(multi.platforms, ['linux/amd64', 'linux/arm64']);
    assert.ok(multi.size > idx.manifest.length + amd.manifest.length + 2048, `index size ${multi.size}`);
    assert.deepEqual(tags.json.tags[1].platforms, ['linux/amd64']);
    const byPush = await call(`${url}${API}/repositories/apps/web/tags?sort=pushed&limit=2`);
    assert.equal(byPush.json.tags[0].name, 'multi');
    const rest = await call(`${url}${API}/repositories/apps/web/tags?sort=pushed&limit=2&cursor=${byPush.json.next}`);
    assert.equal(rest.json.tags.length, 1);
    assert.equal(rest.json.next, null);
    assert.equal((await call(`${url}${API}/repositories/none/here/tags`)).status, 404);
  });

  it('marks tags an immutable rule protects, shows last pulls, and gives admins quotas and collection status', async () => {
    const before = await call(`${url}${API}/repositories/lib/pkg-0/tags`);
    assert.equal(before.json.tags[0].lastPulledAt, null, 'never pulled');
    assert.equal(before.json.tags[0].immutable, null);
    assert.equal((await call(`${url}/v2/lib/pkg-0/manifests/latest`)).status, 200);
    const rule = await call(`${url}/_portfolio/policies`, {
      method: 'PUT',
      headers: { ...ROOT, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'immutable', repositories: 'lib/**', tags: 'lat*' }),
    });
    assert.equal(rule.status, 200, rule.text);
    const quota = await call(`${url}/_portfolio/policies`, {
      method: 'PUT',
      headers: { ...ROOT, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'quota', scope: 'lib/**', limit: '1GiB' }),
    });
    assert.equal(quota.status, 200, quota.text);
    const after = await call(`${url}${API}/repositories/lib/pkg-0/tags`);
    assert.ok(Date.parse(after.json.tags[0].lastPulledAt) > 0, 'the pull shows (pulls are written before the page is read)');
    assert.deepEqual(after.json.tags[0].immutable, { repositories: 'lib/**', tags: 'lat*' });
    assert.equal((await call(`${url}${API}/repositories/apps/web/tags`)).json.tags[0].immutable, null, 'the rule names lib/** only');
    const usage = await call(`${url}${API}/usage`, { headers: ROOT });
    assert.equal(usage.status, 200, usage.text);
    assert.equal(usage.json.quotas.length, 1);
    assert.equal(usage.json.quotas[0].scope, 'lib/**');
    assert.equal(usage.json.quotas[0].limit, 1024 ** 3);
    assert.ok(usage.json.quotas[0].used > 7 * 2048, `used ${usage.json.quotas[0].used}`);
    assert.ok('gc' in usage.json);
    assert.equal((await call(`${url}/_portfolio/policies/${encodeURIComponent(rule.json.id)}`, { method: 'DELETE', headers: ROOT })).status, 204);
    assert.equal((await call(`${url}/_portfolio/policies/${encodeURIComponent(quota.json.id)}`, { method: 'DELETE', headers: ROOT })).status, 204);
  });

  it('shows a manifest with its config, layers and referrers grouped by artifact type', async () => {
    const r = await call(`${url}${API}/repositories/apps/web/manifests/v1`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.digest, amd.digest);
    assert.equal(r.json.kind, 'image');
    assert.equal(r.json.config.shown, true, 'a small config is kept in the database');
    assert.equal(r.json.config.platform, 'linux/amd64');
    assert.equal(r.json.layers.length, 2);
    assert.deepEqual(r.json.referrers.map((g: { artifactType: string }) => g.artifactType), ['application/vnd.dev.cosign.signature']);
    assert.equal(r.json.referrers[0].items[0].digest, sig.digest);
    assert.equal(r.json.can.delete, false, 'anonymous callers may not delete');
    const i = await call(`${url}${API}/repositories/apps/web/manifests/${idx.digest}`);
    assert.equal(i.json.kind, 'index');
    assert.deepEqual(i.json.manifests.map((m: { platform: string }) => m.platform), ['linux/amd64', 'linux/arm64']);
    assert.equal((await call(`${url}${API}/repositories/apps/web/manifests/nope`)).status, 404);
    assert.equal((await call(`${url}${API}/repositories/apps/web/manifests/sha256:zz`)).status, 400);
  });

  it('logs in with a session cookie, refuses changes without the CSRF token, and deletes a tag', async () => {
    const bad = await call(`${url}${API}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'root', password: 'wrong' }) });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get('www-authenticate'), null, 'no challenge: a browser would open its own dialog');
    const form = await call(`${url}${API}/session`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=root&password=rootpw' });
    assert.equal(form.status, 415);
    const login = await call(`${url}${API}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'root', password: 'rootpw' }) });
    assert.equal(login.status, 200, login.text);
    const setCookie = login.headers.getSetCookie();
    const session = setCookie.find((c) => c.startsWith('portfolio_session='))!;
    assert.match(session, /HttpOnly/);
    assert.match(session, /SameSite=Strict/);
    const cookie = setCookie.map((c) => c.split(';')[0]).join('; ');
    const me = await call(`${url}${API}/session`, { headers: { cookie } });
    assert.equal(me.json.user, 'root');
    assert.equal(me.json.admin, true);
    const noCsrf = await call(`${url}${API}/repositories/apps/web/tags/v2`, { method: 'DELETE', headers: { cookie } });
    assert.equal(noCsrf.status, 403);
    const del = await call(`${url}${API}/repositories/apps/web/tags/v2`, { method: 'DELETE', headers: { cookie, 'x-portfolio-csrf': login.json.csrf } });
    assert.equal(del.status, 204, del.text);
    assert.equal((await call(`${url}/v2/apps/web/manifests/v2`, { headers: ROOT })).status, 404);
    const usage = await call(`${url}${API}/usage`, { headers: { cookie } });
    assert.equal(usage.status, 200);
    assert.ok(usage.json.storedBytes > 0);
    assert.equal(usage.json.repositoryCount, 9);
    assert.equal(usage.json.repositories.length, 9);
    assert.deepEqual(usage.json.events, [], 'no event sinks configured');
    const out = await call(`${url}${API}/session`, { method: 'DELETE', headers: { cookie, 'x-portfolio-csrf': login.json.csrf } });
    assert.equal(out.status, 204);
    assert.equal((await call(`${url}${API}/session`, { headers: { cookie } })).json.user, null, 'the session ended');
  });

  it('a user without delete rights gets 403 and no delete control', async () => {
    const login = await call(`${url}${API}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'reader', password: 'readerpw' }) });
    const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const headers = { cookie, 'x-portfolio-csrf': login.json.csrf };
    const repo = await call(`${url}${API}/repositories/apps/web`, { headers });
    assert.equal(repo.json.can.delete, false);
    assert.equal((await call(`${url}${API}/repositories/apps/web/tags/v1`, { method: 'DELETE', headers })).status, 403);
    assert.equal((await call(`${url}${API}/repositories/apps/web`, { method: 'DELETE', headers })).status, 403);
    assert.equal((await call(`${url}${API}/usage`, { headers })).status, 403);
    assert.equal((await call(`${url}${API}/repositories/private/secret`, { headers })).status, 200, 'authenticated pull');
  });

  it('serves the built interface: the page revalidated, hashed assets cached for a year, gzip', async () => {
    const page = await call(`${url}/ui/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const script = /src="(\/ui\/assets\/main-[A-Z0-9]+\.js)"/.exec(page.text)?.[1];
    assert.ok(script, page.text);
    const asset = await fetch(`${url}${script}`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(asset.headers.get('content-encoding'), 'gzip');
    assert.equal((await call(`${url}/ui/r/apps/web`)).status, 200, 'any page path is the page');
    assert.equal((await call(`${url}/ui/assets/missing.js`)).status, 404);
    assert.equal((await call(`${url}/ui/`, { method: 'POST' })).status, 405);
  });
});

describe('configs kept in the object store', () => {
  it('are not read to build a page', async () => {
    const registry = await startRegistry({ args: ['--inline-blob-size', '0'] });
    try {
      const img = image();
      assert.equal((await pushImageWith(registry.url, 'big/config', img, 'v1', {})).status, 201);
      const r = await call(`${registry.url}${API}/repositories/big/config/manifests/v1`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.config.shown, false);
      assert.equal(r.json.config.digest, img.config.digest);
      assert.equal(r.json.config.platform, null);
    } finally {
      await registry.stop();
    }
  });
});

describe('--ui off', () => {
  it('serves neither the interface nor its API', async () => {
    const registry = await startRegistry({ args: ['--ui', 'off'] });
    try {
      assert.equal((await call(`${registry.url}/ui/`)).status, 404);
      assert.equal((await call(`${registry.url}${API}/repositories`)).status, 404);
      assert.equal((await call(`${registry.url}/v2/`)).status, 200);
    } finally {
      await registry.stop();
    }
  });
});
