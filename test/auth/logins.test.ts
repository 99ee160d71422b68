/**
 * Logins under attack, through HTTP: a wrong password costs the same for a user that exists as
 * for one that does not (no user-name oracle by timing), and failed logins are throttled per
 * client and per user name, so one client's flood does not lock out anyone else.
 *
 * Each simulated client sends from its own loopback address (127.0.0.0/8 is all local).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { basicAuth, htpasswdLine } from './util.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  ms: number;
}

/** One request from `localAddress`, timed from sending to the end of the answer. */
function callFrom(localAddress: string, url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, localAddress, agent: false, timeout: 20_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(options.body);
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const tokenForm = (username: string, password: string) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'password', username, password, service: 'portfolio' }).toString(),
});

describe('logins', { timeout: 60_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-logins-'));
    // Cheap entries (cost 4), as `htpasswd -B -C 4` writes: a dummy hash of another cost would stand out.
    const lines = await Promise.all([htpasswdLine('alice', 'alice-pw', 4), htpasswdLine('bob', 'bob-pw', 4)]);
    await writeFile(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
    registry = await startRegistry({ args: ['--auth', 'token', '--htpasswd', join(dir, 'htpasswd')] });
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a wrong password takes as long for an unknown user as for a real one (Basic and POST /auth/token)', async (t) => {
    const v2 = `${registry.url}/v2/`;
    const token = `${registry.url}/auth/token`;
    const probes: [string, (user: string, i: number) => Promise<Answer>][] = [
      ['Basic on /v2/', (user, i) => callFrom(`127.0.1.${i}`, v2, { headers: { authorization: basicAuth(user, 'wrong') } })],
      ['POST /auth/token', (user, i) => callFrom(`127.0.2.${i}`, token, tokenForm(user, 'wrong'))],
    ];
    for (const [what, probe] of probes) {
      await probe('alice', 200);
      await probe('ghost', 201);
      const known: number[] = [];
      const unknown: number[] = [];
      // Interleaved, each attempt from its own address, so load and throttling hit both alike.
      for (let i = 0; i < 9; i++) {
        const k = await probe('alice', 2 * i);
        const u = await probe(`ghost-${i}`, 2 * i + 1);
        assert.equal(k.status, 401, `${what}: wrong password: ${k.text}`);
        assert.equal(u.status, 401, `${what}: unknown user: ${u.text}`);
        known.push(k.ms);
        unknown.push(u.ms);
      }
      const [mk, mu] = [median(known), median(unknown)];
      t.diagnostic(`${what}: median ${mk.toFixed(1)} ms (real user), ${mu.toFixed(1)} ms (unknown user)`);
      // Generous on purpose: a cost-10 dummy against cost-4 entries is ~60 times slower.
      assert.ok(mu < 3 * mk + 15 && mk < 3 * mu + 15, `${what}: median ${mk.toFixed(1)} ms for a real user, ${mu.toFixed(1)} ms for an unknown one`);
    }
  });

  it('failed logins are throttled per client, then per user name; others still log in', async () => {
    const v2 = `${registry.url}/v2/`;
    const login = (from: string, user: string, password: string) => callFrom(from, v2, { headers: { authorization: basicAuth(user, password) } });
    // One client guesses alice's password: 20 failures (the default burst; a few more may have
    // come back while they ran on a busy machine), then 429.
    const started = Date.now();
    let failures = 0;
    let throttled = await login('127.0.3.1', 'alice', 'guess');
    while (throttled.status === 401 && failures < 40) {
      failures++;
      throttled = await login('127.0.3.1', 'alice', `guess-${failures}`);
    }
    assert.equal(throttled.status, 429, throttled.text);
    assert.ok(failures >= 20 && failures <= 20 + Math.ceil((Date.now() - started) / 3000), `${failures} failures before 429`);
    assert.equal(JSON.parse(throttled.text).errors[0].code, 'TOOMANYREQUESTS');
    assert.ok(Number(throttled.headers['retry-after']) >= 1, `Retry-After: ${throttled.headers['retry-after']}`);
    assert.equal((await login('127.0.3.1', 'alice', 'alice-pw')).status, 429, 'the flooding client waits, right password or not');
    assert.equal((await callFrom('127.0.3.1', `${registry.url}/auth/token`, tokenForm('alice', 'alice-pw'))).status, 429, 'on the token endpoint too');
    // Everyone else is unaffected, alice included.
    assert.equal((await login('127.0.3.2', 'alice', 'alice-pw')).status, 200, 'alice from elsewhere');
    assert.equal((await login('127.0.3.2', 'alice', 'typo')).status, 401, 'a typo elsewhere is a plain 401');
    assert.equal((await login('127.0.3.3', 'bob', 'bob-pw')).status, 200, 'bob');

    // Guesses at bob's password spread over clients, each within its own allowance, exhaust his
    // name's (3 × 20): then even a client that never failed is refused for bob, not for alice.
    let guesses = 0;
    let client = 0;
    let last: Answer | undefined;
    while (client < 6 && last?.status !== 429) {
      client++;
      for (let i = 0; i < 15; i++) {
        last = await login(`127.0.4.${client}`, 'bob', `guess-${client}-${i}`);
        if (last.status === 429) break;
        assert.equal(last.status, 401, last.text);
        guesses++;
      }
    }
    assert.ok(last?.status === 429, `bob's name is throttled after ${guesses} failures`);
    assert.ok(guesses >= 60 && client >= 5, `${guesses} failures from ${client} clients before bob's name was throttled`);
    assert.match(JSON.parse(last.text).errors[0].message, /this user/, 'refused for the name, not the client');
    assert.ok(Number(last.headers['retry-after']) >= 1);
    assert.equal((await login(`127.0.4.${client}`, 'alice', 'alice-pw')).status, 200, 'that client may still log in as someone else');
  });
});
