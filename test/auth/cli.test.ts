/** `portfolio user add|delete` and `portfolio token [--inspect]`, against a running server. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { CLI, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { basicAuth, call, hasApacheHtpasswd } from './util.js';

function cli(args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(stdin);
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

/** Polls until `check` passes or the deadline passes (the server re-reads htpasswd at most once a second). */
async function eventually(check: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('auth CLI', { timeout: 30_000 }, () => {
  let dir: string;
  let file: string;
  let registry: RunningRegistry;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-auth-cli-'));
    file = join(dir, 'htpasswd');
    const first = await cli(['user', 'add', 'alice', '--htpasswd', file, '--cost', '5'], 'first password\n');
    assert.equal(first.code, 0, first.stderr);
    // The polls below fail until the server re-reads the file: not what login throttling is for.
    registry = await startRegistry({ args: ['--auth', 'token', '--htpasswd', file, '--login-failures', '1000/1m'] });
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('user add writes a $2y$ bcrypt entry that Apache htpasswd verifies, file mode 0600', async (t) => {
    const text = await readFile(file, 'utf8');
    assert.match(text, /^alice:\$2y\$05\$[./A-Za-z0-9]{53}\n$/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    if (!hasApacheHtpasswd()) return t.skip('htpasswd (apache2-utils) not installed');
    assert.equal(spawnSync('htpasswd', ['-vb', file, 'alice', 'first password']).status, 0, 'htpasswd -v accepts the password');
    assert.notEqual(spawnSync('htpasswd', ['-vb', file, 'alice', 'first passwor']).status, 0, 'and refuses another');
  });

  it('the running server picks up added users and changed passwords', async () => {
    const ok = (user: string, password: string) => async () => (await call(`${registry.url}/v2/`, { headers: { authorization: basicAuth(user, password) } })).status === 200;
    assert.ok(await ok('alice', 'first password')());
    const add = await cli(['user', 'add', 'bob', '--htpasswd', file], 'bob password\n');
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /added bob/);
    await eventually(ok('bob', 'bob password'), 'bob can log in');
    const change = await cli(['user', 'add', 'alice', '--htpasswd', file], 'second password');
    assert.match(change.stdout, /updated alice/);
    await eventually(ok('alice', 'second password'), 'alice logs in with the new password');
    assert.equal(await ok('alice', 'first password')(), false, 'the old password no longer works');
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    assert.deepEqual(lines.map((l) => l.split(':')[0]), ['alice', 'bob']);
    const del = await cli(['user', 'delete', 'bob', '--htpasswd', file]);
    assert.equal(del.code, 0, del.stderr);
    await eventually(async () => !(await ok('bob', 'bob password')()), 'bob is refused after delete');
  });

  it('user add refuses empty passwords and bad names', async () => {
    assert.notEqual((await cli(['user', 'add', 'carol', '--htpasswd', file], '\n')).code, 0);
    assert.notEqual((await cli(['user', 'add', 'a:b', '--htpasswd', file], 'pw\n')).code, 0);
    assert.notEqual((await cli(['user', 'add', 'carol'], 'pw\n')).code, 0, '--htpasswd is required');
    assert.doesNotMatch(await readFile(file, 'utf8'), /carol|a:b/);
  });

  it('token mints with the registry key; the server accepts it; --inspect verifies it', async () => {
    const minted = await cli(['token', '--data-dir', registry.dataDir, '--scope', 'repository:some/repo:pull', '--scope', 'registry:catalog:*', '--account', 'robot', '--ttl', '2m']);
    assert.equal(minted.code, 0, minted.stderr);
    const token = minted.stdout.trim();
    const claims = decodeJwt(token);
    assert.equal(claims.sub, 'robot');
    assert.equal(claims.exp! - claims.iat!, 120);
    assert.deepEqual(claims.access, [
      { type: 'repository', name: 'some/repo', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    const r = await call(`${registry.url}/v2/some/repo/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 404, `the token is accepted (the repository does not exist): ${r.text}`);

    const inspected = await cli(['token', '--data-dir', registry.dataDir, '--inspect', token]);
    assert.equal(inspected.code, 0, inspected.stderr);
    const report = JSON.parse(inspected.stdout);
    assert.equal(report.valid, true);
    assert.equal(report.header.alg, 'ES256');
    assert.equal(report.claims.sub, 'robot');

    const [h, p] = token.split('.');
    const forged = `${h}.${p}.${'A'.repeat(86)}`;
    const bad = await cli(['token', '--data-dir', registry.dataDir, '--inspect', forged]);
    assert.equal(bad.code, 1);
    assert.equal(JSON.parse(bad.stdout).valid, false);
    const other = await cli(['token', '--data-dir', dir, '--inspect', token]);
    assert.equal(other.code, 1, 'another data dir has no key that verifies it');
    const stdin = await cli(['token', '--data-dir', registry.dataDir, '--inspect', '-'], `${token}\n`);
    assert.equal(stdin.code, 0, stdin.stdout);
  });
});
