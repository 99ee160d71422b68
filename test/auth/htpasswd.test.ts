/** htpasswd users: $2y$ bcrypt (Apache's and a known vector), the verification cache, reloads, the bcrypt queue. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Htpasswd } from '../../src/auth/htpasswd.js';
import { parseHtpasswd } from '../../src/auth/htpasswd-file.js';
import { LoginThrottled } from '../../src/auth/errors.js';
import { hasApacheHtpasswd, htpasswdLine } from './util.js';

// The password_verify() example of the PHP manual: a $2y$ hash made by another implementation.
const KNOWN_2Y = '$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a';
const KNOWN_PASSWORD = 'rasmuslerdorf';

describe('htpasswd users', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-htpasswd-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies a known $2y$ vector and the entry htpasswd -B writes', async (t) => {
    const path = join(dir, 'known');
    const apache = await htpasswdLine('apache', 's3cret pass:with colon');
    if (!hasApacheHtpasswd()) t.diagnostic('htpasswd (apache2-utils) not installed: the entry was made with @node-rs/bcrypt version 2y');
    assert.match(apache, /^apache:\$2y\$05\$/);
    await writeFile(path, `# users\nphp:${KNOWN_2Y}\n\n${apache}\n`);
    const users = await Htpasswd.open(path);
    assert.equal(users.userCount, 2);
    assert.equal(await users.verify('php', KNOWN_PASSWORD), true);
    assert.equal(await users.verify('php', 'rasmuslerdorF'), false);
    assert.equal(await users.verify('apache', 's3cret pass:with colon'), true);
    assert.equal(await users.verify('apache', 's3cret pass'), false);
    assert.equal(await users.verify('nobody', KNOWN_PASSWORD), false);
  });

  it('ignores entries that are not bcrypt, and says so', () => {
    const warnings: string[] = [];
    const users = parseHtpasswd(`md5:$apr1$abc$def\nsha:{SHA}abc=\nnocolon\nok:${KNOWN_2Y}\n`, (m) => warnings.push(m));
    assert.deepEqual([...users.keys()], ['ok']);
    assert.equal(warnings.length, 3, warnings.join('\n'));
  });

  it('remembers a success under user+password, not a failure, and never another password', async () => {
    const path = join(dir, 'cache');
    await writeFile(path, `php:${KNOWN_2Y}\n`);
    const users = await Htpasswd.open(path);
    for (let i = 0; i < 50; i++) assert.equal(await users.verify('php', KNOWN_PASSWORD), true);
    assert.equal(users.verifications, 1, 'fifty requests, one bcrypt verification');
    assert.equal(await users.verify('php', 'wrong'), false);
    assert.equal(await users.verify('php', 'wrong'), false);
    assert.equal(users.verifications, 3, 'failures are verified each time');
    assert.equal(await users.verify('PHP', KNOWN_PASSWORD), false, 'user names are case-sensitive');
  });

  it('expires cached successes', async () => {
    const path = join(dir, 'ttl');
    await writeFile(path, `php:${KNOWN_2Y}\n`);
    let now = 0;
    const users = await Htpasswd.open(path, { cacheTtlMs: 1, verifyHash: async (p) => (now++, p === KNOWN_PASSWORD) });
    assert.equal(await users.verify('php', KNOWN_PASSWORD), true);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(await users.verify('php', KNOWN_PASSWORD), true);
    assert.equal(now, 2, 'the second call verified again after the TTL');
  });

  it('re-reads the file when it changes: new users, changed passwords and removed users', async () => {
    const path = join(dir, 'reload');
    await writeFile(path, `php:${KNOWN_2Y}\n`);
    const users = await Htpasswd.open(path, { recheckMs: 0 });
    assert.equal(await users.verify('php', KNOWN_PASSWORD), true);
    const other = await htpasswdLine('php', 'new password');
    await writeFile(path, `${other}\n${await htpasswdLine('eve', 'pw')}\n`);
    await utimes(path, new Date(), new Date(Date.now() + 5000));
    assert.equal(await users.verify('php', KNOWN_PASSWORD), false, 'the cached success died with the old entry');
    assert.equal(await users.verify('php', 'new password'), true);
    assert.equal(await users.verify('eve', 'pw'), true);
    await writeFile(path, `${other}\n`);
    await utimes(path, new Date(), new Date(Date.now() + 10_000));
    assert.equal(await users.verify('eve', 'pw'), false, 'a removed user is refused at once, cache or not');
  });

  it('refuses a missing file at start', async () => {
    await assert.rejects(Htpasswd.open(join(dir, 'missing')), /htpasswd file .*missing/);
  });

  it('runs at most maxConcurrent verifications; past the queue, 429', async () => {
    const path = join(dir, 'queue');
    await writeFile(path, `php:${KNOWN_2Y}\n`);
    let running = 0;
    let peak = 0;
    const release: (() => void)[] = [];
    const users = await Htpasswd.open(path, {
      maxConcurrent: 2,
      maxQueued: 3,
      verifyHash: () =>
        new Promise<boolean>((resolve) => {
          running++;
          peak = Math.max(peak, running);
          release.push(() => {
            running--;
            resolve(false);
          });
        }),
    });
    const pending = Array.from({ length: 5 }, (_, i) => users.verify('php', `guess${i}`));
    await assert.rejects(users.verify('php', 'one too many'), (err: unknown) => err instanceof LoginThrottled && err.retryAfterSeconds === 1);
    while (release.length || running) {
      await new Promise((r) => setImmediate(r));
      release.shift()?.();
    }
    assert.deepEqual(await Promise.all(pending), [false, false, false, false, false]);
    assert.equal(peak, 2);
  });

  it('serves waiting verifications round-robin per client; one client holds a bounded share of the line', async () => {
    const path = join(dir, 'fair');
    await writeFile(path, `php:${KNOWN_2Y}\n`);
    const order: string[] = [];
    const release: (() => void)[] = [];
    const users = await Htpasswd.open(path, {
      maxConcurrent: 1,
      maxQueued: 100,
      maxQueuedPerClient: 3,
      verifyHash: (password) =>
        new Promise<boolean>((resolve) => {
          order.push(password);
          release.push(() => resolve(false));
        }),
    });
    const pending = [1, 2, 3, 4].map((i) => users.verify('php', `flood-${i}`, 'flooder'));
    await assert.rejects(users.verify('php', 'flood-5', 'flooder'), (err: unknown) => err instanceof LoginThrottled, 'a fourth waiting guess of one client');
    pending.push(users.verify('php', 'other-1', 'other'), users.verify('php', 'other-2', 'other'));
    while (release.length || order.length < 6) {
      await new Promise((r) => setImmediate(r));
      release.shift()?.();
    }
    await Promise.all(pending);
    assert.deepEqual(order, ['flood-1', 'flood-2', 'other-1', 'flood-3', 'other-2', 'flood-4'], 'the other client does not wait behind the whole flood');
  });

  it('checks unknown users against a hash of the cost the file uses', async () => {
    const path = join(dir, 'cost');
    await writeFile(path, `${await htpasswdLine('a', 'pw', 4)}\n${await htpasswdLine('b', 'pw', 4)}\n${await htpasswdLine('c', 'pw', 6)}\n`);
    const against: string[] = [];
    const users = await Htpasswd.open(path, { verifyHash: async (_p, hash) => (against.push(hash), false) });
    assert.equal(await users.verify('nobody', 'pw'), false);
    assert.match(against[0]!, /^\$2[aby]\$04\$/);
  });
});
