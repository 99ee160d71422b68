/**
 * Docker token auth: Portfolio's token endpoint (GET with Basic or anonymous, OAuth2 POST with
 * password and refresh_token grants), Bearer challenges, insufficient_scope versus DENIED,
 * invalid tokens, and tokens of an external issuer (JWKS from a file and from a URL).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { image } from '../helpers/oci.js';
import { basicAuth, call, expectError, htpasswdLine, parseChallenge, pushImageWith, writeHtpasswd, type Reply } from './util.js';

const USERS = { alice: 'alice-pw', bob: 'bob-pw', root: 'root-pw' };
const POLICY = `
groups:
  developers: [alice, bob]
admins:
  users: [root]
rules:
  - repository: "public/**"
    anonymous: [pull]
  - repository: "team/**"
    groups:
      developers: [pull, push]
    users:
      bob: [pull, push, delete]
  - repository: "team/secret"
    users:
      bob: [pull]
`;

type Access = { type: string; name: string; actions: string[] }[];

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

describe('token auth (--auth token)', { timeout: 30_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  let externalKey: CryptoKey;
  const img = image();

  const tokenUrl = (params: [string, string][]) => `${registry.url}/auth/token?${new URLSearchParams(params)}`;
  async function getToken(params: [string, string][], user?: keyof typeof USERS): Promise<string> {
    const r = await call(tokenUrl(params), { headers: user ? { authorization: basicAuth(user, USERS[user]) } : {} });
    assert.equal(r.status, 200, `token request ${JSON.stringify(params)}: ${r.text}`);
    return r.json.token;
  }
  async function ownKey() {
    return createPrivateKey(await readFile(join(registry.dataDir, 'auth/token-key.pem')));
  }
  async function sign(key: Parameters<SignJWT['sign']>[0], claims: Record<string, unknown>, opts: { iss?: string; aud?: string; exp?: number; alg?: string } = {}) {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: opts.alg ?? 'ES256', typ: 'JWT' })
      .setIssuer(opts.iss ?? 'portfolio')
      .setAudience(opts.aud ?? 'portfolio')
      .setSubject('alice')
      .setIssuedAt(now - 10)
      .setExpirationTime(opts.exp ?? now + 300)
      .sign(key);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-token-'));
    await writeHtpasswd(join(dir, 'htpasswd'), USERS);
    await writeFile(join(dir, 'policy.yaml'), POLICY);
    const pair = await generateKeyPair('RS256');
    externalKey = pair.privateKey;
    await writeFile(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'RS256', kid: 'ext-1' }] }));
    registry = await startRegistry({
      args: [
        '--auth', 'token',
        '--htpasswd', join(dir, 'htpasswd'),
        '--access-policy', join(dir, 'policy.yaml'),
        '--external-issuer', 'https://idp.example',
        '--external-jwks', join(dir, 'jwks.json'),
      ],
    });
    const root = await getToken([['scope', 'repository:team/app:push,pull'], ['scope', 'repository:team/secret:pull,push'], ['scope', 'repository:public/a:push']], 'root');
    for (const repo of ['team/app', 'team/secret', 'public/a']) assert.equal((await pushImageWith(registry.url, repo, img, 'v1', bearer(root))).status, 201, `root pushes ${repo}`);
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('challenges with Bearer realm, service and the scope the request needs', async () => {
    const cases: [string, string, string | undefined][] = [
      ['GET', '/v2/', undefined],
      ['GET', '/v2/team/app/manifests/v1', 'repository:team/app:pull'],
      ['HEAD', '/v2/team/app/blobs/' + img.config.digest, 'repository:team/app:pull'],
      ['POST', '/v2/team/app/blobs/uploads/', 'repository:team/app:pull,push'],
      ['PUT', '/v2/team/app/manifests/v2', 'repository:team/app:pull,push'],
      ['DELETE', '/v2/team/app/manifests/v1', 'repository:team/app:delete'],
    ];
    for (const [method, path, scope] of cases) {
      const r = await call(`${registry.url}${path}`, { method });
      assert.equal(r.status, 401, `${method} ${path}`);
      if (method !== 'HEAD') expectError(r, 401, 'UNAUTHORIZED', `${method} ${path}`);
      const c = parseChallenge(r.headers.get('www-authenticate'));
      assert.equal(c.scheme, 'Bearer');
      assert.deepEqual(c.params, { realm: `${registry.url}/auth/token`, service: 'portfolio', ...(scope ? { scope } : {}) }, `${method} ${path}`);
    }
  });

  it('requests without a token are anonymous: what the policy lets anonymous callers do works without one', async () => {
    assert.equal((await call(`${registry.url}/v2/public/a/manifests/v1`, { headers: { accept: img.mediaType } })).status, 200);
    assert.deepEqual((await call(`${registry.url}/v2/_catalog`)).json.repositories, ['public/a']);
  });

  it('issues ES256 JWTs with the intersection of what was asked and what the policy allows', async () => {
    const r = await call(
      tokenUrl([
        ['service', 'portfolio'],
        ['scope', 'repository:team/app:pull,push,delete'],
        ['scope', 'repository:team/secret:pull registry:catalog:*'],
        ['scope', 'repository:elsewhere:pull'],
        ['account', 'alice'],
      ]),
      { headers: { authorization: basicAuth('alice', USERS.alice) } },
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.token, r.json.access_token);
    assert.equal(r.json.expires_in, 300);
    assert.ok(Math.abs(Date.parse(r.json.issued_at) - Date.now()) < 5000, r.json.issued_at);
    const header = decodeProtectedHeader(r.json.token);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, 'JWT');
    assert.match(header.kid ?? '', /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/, 'a libtrust-style key id');
    const claims = decodeJwt(r.json.token);
    assert.equal(claims.iss, 'portfolio');
    assert.equal(claims.aud, 'portfolio');
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.exp! - claims.iat!, 300);
    assert.ok(typeof claims.jti === 'string' && claims.jti.length >= 16);
    assert.deepEqual(claims.access as Access, [
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);

    const anonymous = decodeJwt(await getToken([['scope', 'repository:public/a:pull,push'], ['scope', 'repository:team/app:pull']]));
    assert.equal(anonymous.sub, '');
    assert.deepEqual(anonymous.access, [{ type: 'repository', name: 'public/a', actions: ['pull'] }]);
    const star = decodeJwt(await getToken([['scope', 'repository:team/app:*']], 'bob'));
    assert.deepEqual(star.access, [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }]);
  });

  it('refuses wrong credentials (401), another account (401) and another service (400)', async () => {
    const wrong = await call(tokenUrl([['scope', 'repository:team/app:pull']]), { headers: { authorization: basicAuth('alice', 'nope') } });
    expectError(wrong, 401, 'UNAUTHORIZED', 'wrong password');
    assert.equal(wrong.headers.get('www-authenticate'), 'Basic realm="portfolio"');
    expectError(await call(tokenUrl([['account', 'bob']]), { headers: { authorization: basicAuth('alice', USERS.alice) } }), 401, 'UNAUTHORIZED', 'account mismatch');
    assert.equal((await call(tokenUrl([['service', 'other']]))).status, 400);
  });

  it('a token works for what it grants; lacking scope is 401 insufficient_scope, refused by policy 403 DENIED', async () => {
    const pullOnly = await getToken([['scope', 'repository:team/app:pull']], 'alice');
    assert.equal((await call(`${registry.url}/v2/`, { headers: bearer(pullOnly) })).status, 200);
    const got = await call(`${registry.url}/v2/team/app/manifests/v1`, { headers: { ...bearer(pullOnly), accept: img.mediaType } });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('docker-content-digest'), img.digest);

    const push = await call(`${registry.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: bearer(pullOnly) });
    expectError(push, 401, 'UNAUTHORIZED', 'push with a pull token');
    assert.deepEqual(parseChallenge(push.headers.get('www-authenticate')).params, {
      realm: `${registry.url}/auth/token`,
      service: 'portfolio',
      scope: 'repository:team/app:pull,push',
      error: 'insufficient_scope',
    });
    const other = await call(`${registry.url}/v2/public/a/tags/list`, { headers: bearer(pullOnly) });
    expectError(other, 401, 'UNAUTHORIZED', 'another repository');
    assert.equal(parseChallenge(other.headers.get('www-authenticate')).params.error, 'insufficient_scope');

    // alice may never delete in team/** nor read team/secret: a fresh token would not help.
    const all = await getToken([['scope', 'repository:team/app:*'], ['scope', 'repository:team/secret:pull']], 'alice');
    expectError(await call(`${registry.url}/v2/team/app/manifests/v1`, { method: 'DELETE', headers: bearer(all) }), 403, 'DENIED', 'alice deletes');
    expectError(await call(`${registry.url}/v2/team/secret/manifests/v1`, { headers: bearer(all) }), 403, 'DENIED', 'alice reads the secret');

    const fresh = image();
    assert.equal((await pushImageWith(registry.url, 'team/app', fresh, 'v2', bearer(all))).status, 201);
    const anonymous = await getToken([['scope', 'repository:team/app:pull']]);
    const anon = await call(`${registry.url}/v2/team/app/manifests/v1`, { headers: bearer(anonymous) });
    expectError(anon, 401, 'UNAUTHORIZED', 'anonymous token');
    assert.equal(parseChallenge(anon.headers.get('www-authenticate')).params.error, 'insufficient_scope');
  });

  it('invalid, tampered, foreign, expired and refresh tokens are 401 invalid_token', async () => {
    const good = await getToken([['scope', 'repository:team/app:pull']], 'alice');
    const [h, p, s] = good.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    claims.access = [{ type: 'repository', name: 'team/secret', actions: ['pull'] }];
    const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    const stranger = await generateKeyPair('ES256');
    const key = await ownKey();
    const grant = { access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] };
    const form = new URLSearchParams({ grant_type: 'password', username: 'alice', password: USERS.alice, access_type: 'offline', service: 'portfolio' });
    const refresh = (await call(`${registry.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form })).json.refresh_token;
    assert.ok(refresh, 'a refresh token');
    const bad: [string, string][] = [
      ['garbage', 'not-a-token'],
      ['tampered', tampered],
      ['signed by another key', await sign(stranger.privateKey, grant)],
      ['expired', await sign(key, grant, { exp: Math.floor(Date.now() / 1000) - 120 })],
      ['another audience', await sign(key, grant, { aud: 'other-registry' })],
      ['unknown issuer', await sign(key, grant, { iss: 'someone' })],
      ['a refresh token', refresh],
      ['alg none', `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`],
    ];
    assert.equal((await call(`${registry.url}/v2/team/app/tags/list`, { headers: bearer(await sign(key, grant)) })).status, 200, 'the control: a token signed right works');
    for (const [what, token] of bad) {
      const r = await call(`${registry.url}/v2/team/app/tags/list`, { headers: bearer(token) });
      expectError(r, 401, 'UNAUTHORIZED', what);
      assert.equal(parseChallenge(r.headers.get('www-authenticate')).params.error, 'invalid_token', what);
    }
  });

  it('OAuth2: password and refresh_token grants; a changed password revokes refresh tokens', async () => {
    const post = (fields: Record<string, string>, contentType = 'application/x-www-form-urlencoded'): Promise<Reply> =>
      call(`${registry.url}/auth/token`, { method: 'POST', headers: { 'content-type': contentType }, body: new URLSearchParams(fields).toString() });
    const first = await post({ grant_type: 'password', username: 'bob', password: USERS.bob, service: 'portfolio', client_id: 'test', access_type: 'offline', scope: 'repository:team/app:pull repository:team/secret:pull,push' });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.scope, 'repository:team/app:pull repository:team/secret:pull');
    assert.ok(first.json.expires_in >= 60);
    assert.deepEqual(decodeJwt(first.json.access_token).access, [
      { type: 'repository', name: 'team/app', actions: ['pull'] },
      { type: 'repository', name: 'team/secret', actions: ['pull'] },
    ]);
    const refreshToken = first.json.refresh_token;
    assert.ok(refreshToken);
    const online = await post({ grant_type: 'password', username: 'bob', password: USERS.bob, service: 'portfolio', client_id: 'test' });
    assert.equal(online.json.refresh_token, undefined, 'no refresh token without access_type=offline');

    const refreshed = await post({ grant_type: 'refresh_token', refresh_token: refreshToken, service: 'portfolio', client_id: 'test', scope: 'repository:team/app:pull,push,delete' });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(refreshed.json.refresh_token, refreshToken);
    assert.equal(decodeJwt(refreshed.json.access_token).sub, 'bob');
    assert.equal(refreshed.json.scope, 'repository:team/app:pull,push,delete');
    assert.equal((await call(`${registry.url}/v2/team/app/tags/list`, { headers: bearer(refreshed.json.access_token) })).status, 200);

    assert.equal((await post({ grant_type: 'password', username: 'bob', password: 'nope' })).json.error, 'invalid_grant');
    assert.equal((await post({ grant_type: 'password', username: 'bob', password: 'nope' })).status, 401);
    assert.equal((await post({ grant_type: 'refresh_token', refresh_token: 'forged' })).status, 401);
    const access = await post({ grant_type: 'refresh_token', refresh_token: refreshed.json.access_token });
    assert.equal(access.status, 401, 'an access token is not a refresh token');
    assert.equal((await post({ grant_type: 'authorization_code', code: 'x' })).json.error, 'unsupported_grant_type');
    assert.equal((await post({ grant_type: 'password' }, 'application/json')).status, 400);
    assert.equal((await post({ grant_type: 'password', username: 'bob', password: USERS.bob, service: 'other' })).status, 400);

    const viaGet = await call(`${registry.url}/auth/token?offline_token=true&scope=repository:team/app:pull`, { headers: { authorization: basicAuth('bob', USERS.bob) } });
    assert.ok(viaGet.json.refresh_token, 'GET with offline_token=true returns a refresh token');

    // bob changes password: his refresh tokens stop working.
    const file = join(dir, 'htpasswd');
    const text = await readFile(file, 'utf8');
    const lines = text.split('\n').filter((l) => l && !l.startsWith('bob:'));
    await writeFile(file, [...lines, await htpasswdLine('bob', 'new-bob-pw')].join('\n') + '\n');
    await utimes(file, new Date(), new Date(Date.now() + 5000));
    await new Promise((r) => setTimeout(r, 1100)); // the file is re-checked at most once a second
    const revoked = await post({ grant_type: 'refresh_token', refresh_token: refreshToken, service: 'portfolio' });
    assert.equal(revoked.status, 401, revoked.text);
    assert.equal(revoked.json.error, 'invalid_grant');
  });

  it('_catalog with a token lists only what its user may pull', async () => {
    const noCatalog = await getToken([['scope', 'repository:team/app:pull']], 'alice');
    const r = await call(`${registry.url}/v2/_catalog`, { headers: bearer(noCatalog) });
    expectError(r, 401, 'UNAUTHORIZED', 'catalog without the catalog scope');
    assert.equal(parseChallenge(r.headers.get('www-authenticate')).params.scope, 'registry:catalog:*');
    const alice = await getToken([['scope', 'registry:catalog:*']], 'alice');
    assert.deepEqual((await call(`${registry.url}/v2/_catalog`, { headers: bearer(alice) })).json.repositories, ['public/a', 'team/app']);
    const anon = await getToken([['scope', 'registry:catalog:*']]);
    assert.deepEqual((await call(`${registry.url}/v2/_catalog`, { headers: bearer(anon) })).json.repositories, ['public/a']);
    const root = await getToken([['scope', 'registry:catalog:*']], 'root');
    assert.deepEqual((await call(`${registry.url}/v2/_catalog`, { headers: bearer(root) })).json.repositories, ['public/a', 'team/app', 'team/secret']);
  });

  it('a mount with a token needs pull on `from` in the token', async () => {
    const token = await getToken([['scope', 'repository:team/mounted:pull,push'], ['scope', 'repository:team/app:pull'], ['scope', 'repository:team/secret:pull']], 'alice');
    const layer = img.layers[0]!.digest;
    const refused = await call(`${registry.url}/v2/team/mounted/blobs/uploads/?mount=${layer}&from=team/secret`, { method: 'POST', headers: bearer(token) });
    assert.equal(refused.status, 202, refused.text);
    const mounted = await call(`${registry.url}/v2/team/mounted/blobs/uploads/?mount=${layer}&from=team/app`, { method: 'POST', headers: bearer(token) });
    assert.equal(mounted.status, 201, mounted.text);
  });

  it('accepts tokens of the external issuer (JWKS file), with its claims only', async () => {
    const ext = (claims: Record<string, unknown>, aud = 'portfolio') => sign(externalKey, claims, { iss: 'https://idp.example', aud, alg: 'RS256' });
    const pull = await ext({ access: [{ type: 'repository', name: 'team/secret', actions: ['pull'] }] });
    assert.equal((await call(`${registry.url}/v2/team/secret/manifests/v1`, { headers: { ...bearer(pull), accept: img.mediaType } })).status, 200);
    const push = await call(`${registry.url}/v2/team/secret/blobs/uploads/`, { method: 'POST', headers: bearer(pull) });
    expectError(push, 401, 'UNAUTHORIZED', 'external token without push');
    assert.equal(parseChallenge(push.headers.get('www-authenticate')).params.error, 'insufficient_scope');
    const wrongAud = await call(`${registry.url}/v2/team/secret/manifests/v1`, { headers: bearer(await ext({ access: [{ type: 'repository', name: 'team/secret', actions: ['pull'] }] }, 'elsewhere')) });
    assert.equal(parseChallenge(wrongAud.headers.get('www-authenticate')).params.error, 'invalid_token');
    const catalog = await ext({ access: [{ type: 'registry', name: 'catalog', actions: ['*'] }] });
    assert.deepEqual((await call(`${registry.url}/v2/_catalog`, { headers: bearer(catalog) })).json.repositories.sort(), ['public/a', 'team/app', 'team/mounted', 'team/secret']);
    const malformed = await ext({ access: 'everything' });
    expectError(await call(`${registry.url}/v2/`, { headers: bearer(malformed) }), 401, 'UNAUTHORIZED', 'malformed access claim');
  });
});

describe('external issuer with a JWKS URL', { timeout: 30_000 }, () => {
  let jwksServer: Server;
  let registry: RunningRegistry;
  let key: CryptoKey;
  let fetches = 0;
  before(async () => {
    const pair = await generateKeyPair('ES256');
    key = pair.privateKey;
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'ES256', kid: 'k1', use: 'sig' }] });
    jwksServer = createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(jwks);
    });
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
    registry = await startRegistry({ args: ['--external-issuer', 'idp', '--external-jwks', url, '--external-audience', 'my-registry'] });
  });
  after(async () => {
    await registry?.stop();
    jwksServer?.close();
  });

  it('verifies tokens against keys fetched from the URL', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access: [{ type: 'repository', name: 'x/y', actions: ['pull'] }] })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
      .setIssuer('idp')
      .setAudience('my-registry')
      .setSubject('someone')
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(key);
    assert.equal((await call(`${registry.url}/v2/`, { headers: bearer(token) })).status, 200);
    expectError(await call(`${registry.url}/v2/x/y/tags/list`, { headers: bearer(token) }), 404, 'NAME_UNKNOWN', 'authorized, and the repository does not exist');
    expectError(await call(`${registry.url}/v2/x/z/tags/list`, { headers: bearer(token) }), 401, 'UNAUTHORIZED', 'not granted');
    assert.ok(fetches >= 1, 'the JWKS was fetched');
    const anon = await call(`${registry.url}/v2/`);
    const challenge = parseChallenge(anon.headers.get('www-authenticate'));
    assert.equal(challenge.params.service, 'portfolio');
  });
});
