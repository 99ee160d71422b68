/**
 * HTTPS with a self-signed certificate made at test time (openssl): plain clients are refused,
 * a client trusting the certificate works, and skopeo copies an image in and out with
 * `--dest-cert-dir` / `--src-cert-dir` and TLS verification on — also through token auth,
 * whose realm must then be https.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { sha256 } from '../helpers/oci.js';
import { ok, skopeo, skopeoEnv, writeLayout } from '../auth/skopeo-util.js';
import { writeHtpasswd } from '../auth/util.js';

function get(url: string, ca?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send({ host: u.hostname, port: u.port, path: u.pathname + u.search, ca, headers, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('TLS', { timeout: 60_000 }, () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let cert: Buffer;
  let certs: string;
  let registry: RunningRegistry;
  let tokenRegistry: RunningRegistry;
  let image: { digest: string; bytes: Buffer };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'portfolio-tls-'));
    env = await skopeoEnv(work);
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem'), '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ], { stdio: 'pipe' });
    cert = await readFile(join(work, 'cert.pem'));
    certs = join(work, 'certs');
    await mkdir(certs);
    await copyFile(join(work, 'cert.pem'), join(certs, 'ca.crt'));
    image = await writeLayout(join(work, 'layout'));
    const tls = ['--tls-cert', join(work, 'cert.pem'), '--tls-key', join(work, 'key.pem')];
    registry = await startRegistry({ args: tls });
    await writeHtpasswd(join(work, 'htpasswd'), { alice: 'alice-pw' });
    tokenRegistry = await startRegistry({ args: [...tls, '--auth', 'token', '--htpasswd', join(work, 'htpasswd')] });
  });
  after(async () => {
    await registry?.stop();
    await tokenRegistry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('serves HTTPS: trusted clients get /v2/, untrusted and plain-HTTP clients do not', async () => {
    assert.match(registry.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await get(`${registry.url}/v2/`, cert);
    assert.equal(r.status, 200);
    assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
    await assert.rejects(get(`${registry.url}/v2/`), /self[- ]signed/i, 'an untrusted certificate is refused');
    const plain = await get(registry.url.replace('https:', 'http:') + '/v2/').catch((err: Error) => ({ status: -1, body: err.message }));
    assert.notEqual(plain.status, 200, 'plain HTTP is not served');
  });

  it('skopeo pushes and pulls with --dest-cert-dir / --src-cert-dir, verification on', async () => {
    const host = new URL(registry.url).host;
    const refused = await skopeo(env, ['copy', `oci:${join(work, 'layout')}:v1`, `docker://${host}/tls/app:v1`]);
    assert.notEqual(refused.code, 0, 'without the CA, skopeo refuses the certificate');
    assert.match(refused.stderr, /x509|certificate/i);
    await ok(env, ['copy', '--dest-cert-dir', certs, `oci:${join(work, 'layout')}:v1`, `docker://${host}/tls/app:v1`], registry);
    const out = join(work, 'pulled');
    await ok(env, ['copy', '--src-cert-dir', certs, `docker://${host}/tls/app:v1`, `dir:${out}`], registry);
    assert.equal(sha256(await readFile(join(out, 'manifest.json'))), image.digest);
    const manifest = await get(`${registry.url}/v2/tls/app/manifests/v1`, cert, { accept: 'application/vnd.oci.image.manifest.v1+json' });
    assert.equal(manifest.body, image.bytes.toString());
  });

  it('token auth over TLS: the challenge realm is https, and skopeo follows it', async () => {
    const r = await get(`${tokenRegistry.url}/v2/`, cert);
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), new RegExp(`^Bearer realm="${tokenRegistry.url}/auth/token"`));
    const host = new URL(tokenRegistry.url).host;
    await ok(env, ['copy', '--dest-cert-dir', certs, '--dest-creds', 'alice:alice-pw', `oci:${join(work, 'layout')}:v1`, `docker://${host}/tls/app:v1`], tokenRegistry);
    const inspect = await ok(env, ['inspect', '--raw', '--cert-dir', certs, '--creds', 'alice:alice-pw', `docker://${host}/tls/app:v1`], tokenRegistry);
    assert.equal(inspect.stdout, image.bytes.toString());
  });
});
