/**
 * `portfolio import https://…`: live from CNCF distribution 2.8.2 with Basic auth (the whole
 * catalog), and from a Portfolio server with token auth (one repository, referrers through the
 * referrers API); every digest compared with what the source serves.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { expected, sampleLayout, served, writeLayout, type Layout } from './content.js';
import { pushLayout, startDistribution, type Distribution } from './distribution.js';

const USER = { user: 'mover', password: 's3cret-pass' };
const basicHeader = { authorization: `Basic ${Buffer.from(`${USER.user}:${USER.password}`).toString('base64')}` };

describe('import from a running registry', () => {
  let registry: RunningRegistry;
  let source: RunningRegistry;
  let dist: Distribution;
  let work: string;
  let layout: Layout;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'portfolio-remote-'));
    layout = sampleLayout();
    await writeLayout(join(work, 'layout'), layout);
    dist = await startDistribution(work, USER);
    const creds = [`--dest-creds=${USER.user}:${USER.password}`];
    await pushLayout(dist, join(work, 'layout'), layout, 'team/app', creds, basicHeader);
    await pushLayout(dist, join(work, 'layout'), layout, 'team/app/copy', creds, basicHeader);
    registry = await startRegistry();
    const htpasswd = join(work, 'htpasswd');
    await writeFile(htpasswd, `${USER.user}:${await hash(USER.password, 5)}\n`);
    source = await startRegistry({ args: ['--auth', 'token', '--htpasswd', htpasswd] });
    const seeded = await runCli(['import', join(work, 'layout'), 'team/source', ...source.engineArgs]);
    assert.equal(seeded.code, 0, seeded.stderr);
  });
  after(async () => {
    await registry?.stop();
    await source?.stop();
    await dist?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('imports the whole catalog of a distribution server with Basic auth', async () => {
    const r = await runCli(['import', `${dist.url}/`, 'mirror', '--username', USER.user, '--json', ...registry.engineArgs], { PORTFOLIO_SOURCE_PASSWORD: USER.password });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const summary = JSON.parse(r.stdout) as { repositories: number; errors: string[] };
    assert.deepEqual(summary.errors, []);
    assert.equal(summary.repositories, 2);
    for (const repo of ['team/app', 'team/app/copy']) {
      const want = await served(dist.url, repo, basicHeader, false);
      assert.deepEqual(await served(registry.url, `mirror/${repo}`, {}, false), want);
      assert.deepEqual(want.tags, expected(layout).tags);
    }
  });

  it('refuses a wrong password with a clear error and exit 1', async () => {
    const r = await runCli(['import', `${dist.url}/team/app`, 'wrong', '--username', USER.user, ...registry.engineArgs], { PORTFOLIO_SOURCE_PASSWORD: 'nope' });
    assert.equal(r.code, 1);
    assert.match(r.stderr + r.stdout, /credentials refused|401/);
    assert.equal((await fetch(`${registry.url}/v2/wrong/tags/list`)).status, 404);
  });

  it('imports one repository from a Portfolio server with token auth, referrers included', async () => {
    const r = await runCli(['import', `${source.url}/team/source`, 'team/pulled', '--username', USER.user, '--json', ...registry.engineArgs], {
      PORTFOLIO_SOURCE_PASSWORD: USER.password,
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(await served(registry.url, 'team/pulled'), expected(layout));
    const again = await runCli(['import', `${source.url}/team/source:v1`, 'team/pulled', '--username', USER.user, '--json', ...registry.engineArgs], {
      PORTFOLIO_SOURCE_PASSWORD: USER.password,
    });
    assert.equal(again.code, 0, again.stderr);
    const s = JSON.parse(again.stdout) as { bytes: { copied: number }; tags: { skipped: number } };
    assert.deepEqual([s.bytes.copied, s.tags.skipped], [0, 1]);
    // The whole catalog through a token for registry:catalog:*.
    const all = await runCli(['import', `${source.url}/`, 'all', '--username', USER.user, ...registry.engineArgs], { PORTFOLIO_SOURCE_PASSWORD: USER.password });
    assert.equal(all.code, 0, all.stdout + all.stderr);
    assert.deepEqual(await served(registry.url, 'all/team/source'), expected(layout));
  });
});
