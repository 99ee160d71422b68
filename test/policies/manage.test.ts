/**
 * Where policies live: the configuration file (applied at start and on SIGHUP, winning over the
 * API for the same rule), the admin API and `portfolio policy …`, all on the database every
 * replica reads.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { assertServerLogClean, expectStatus, http } from '../http/util.js';

interface Stored {
  id: string;
  source: string;
  rule: Record<string, unknown>;
}

const FILE_A = 'policies:\n  quotas:\n    - scope: "team-a/**"\n      limit: 1GiB\n  immutableTags:\n    - repositories: "**"\n      tags: "v*"\n';
const FILE_B = 'policies:\n  quotas:\n    - scope: "team-a/**"\n      limit: 3GiB\n';

describe('managing policies', { timeout: 60_000 }, () => {
  let dir: string;
  let config: string;
  let registry: RunningRegistry;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-policies-'));
    config = join(dir, 'portfolio.yaml');
    await writeFile(config, FILE_A);
    registry = await startRegistry({ args: ['--config', config] });
  });
  after(async () => {
    assertServerLogClean(registry.output());
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function list(): Promise<Stored[]> {
    const res = await http(`${registry.url}/_portfolio/policies`);
    expectStatus(res, 200);
    return (JSON.parse(res.text) as { policies: Stored[] }).policies.map(({ id, source, rule }) => ({ id, source, rule }));
  }

  async function reloaded(count: number): Promise<void> {
    registry.process.kill('SIGHUP');
    for (let i = 0; i < 400; i++) {
      if (registry.output().split('\n').filter((l) => l.includes('"configuration reloaded"')).length >= count) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`no reload after SIGHUP:\n${registry.output()}`);
  }

  it('applies the file at start, lets the API add and change rules, and the file wins on reload', async () => {
    assert.deepEqual(await list(), [
      { id: 'immutable:**:v*', source: 'config', rule: { kind: 'immutable', repositories: '**', tags: 'v*' } },
      { id: 'quota:team-a/**', source: 'config', rule: { kind: 'quota', scope: 'team-a/**', limit: 2 ** 30 } },
    ]);
    const put = (rule: unknown) => http(`${registry.url}/_portfolio/policies`, { method: 'PUT', body: JSON.stringify(rule) });
    expectStatus(await put({ kind: 'quota', scope: 'team-a/**', limit: '2GiB' }), 200);
    expectStatus(await put({ kind: 'quota', scope: 'team-b/*', limit: 1000 }), 200);
    assert.deepEqual((await list()).find((p) => p.id === 'quota:team-a/**'), {
      id: 'quota:team-a/**',
      source: 'api',
      rule: { kind: 'quota', scope: 'team-a/**', limit: 2 * 2 ** 30 },
    });

    await writeFile(config, FILE_B);
    await reloaded(1);
    assert.deepEqual(await list(), [
      { id: 'quota:team-a/**', source: 'config', rule: { kind: 'quota', scope: 'team-a/**', limit: 3 * 2 ** 30 } },
      { id: 'quota:team-b/*', source: 'api', rule: { kind: 'quota', scope: 'team-b/*', limit: 1000 } },
    ]);
    const quotas = await http(`${registry.url}/_portfolio/quotas`);
    assert.deepEqual(JSON.parse(quotas.text), {
      quotas: [
        { scope: 'team-a/**', used: 0, limit: 3 * 2 ** 30 },
        { scope: 'team-b/*', used: 0, limit: 1000 },
      ],
    });
  });

  it('refuses malformed rules through the API with 400 and names what is wrong', async () => {
    for (const body of ['{', '{"kind":"quota","scope":"Team/**","limit":"1G"}', '{"kind":"quota","scope":"a/**","limit":"lots"}', '{"kind":"nope"}']) {
      const res = await http(`${registry.url}/_portfolio/policies`, { method: 'PUT', body });
      expectStatus(res, 400);
    }
    expectStatus(await http(`${registry.url}/_portfolio/policies/${encodeURIComponent('quota:none/**')}`, { method: 'DELETE' }), 404);
  });

  it('portfolio policy manages the same rules from the command line', async () => {
    const engine = registry.engineArgs;
    const set = await runCli(['policy', 'immutable', 'cli/**', 'release-*', ...engine]);
    assert.equal(set.code, 0, set.stderr);
    const quota = await runCli(['policy', 'quota', 'cli/**', '5MiB', ...engine]);
    assert.equal(quota.code, 0, quota.stderr);
    assert.ok((await list()).some((p) => p.id === 'immutable:cli/**:release-*' && p.source === 'api'));
    const listed = await runCli(['policy', 'list', '--json', ...engine]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok((JSON.parse(listed.stdout) as Stored[]).some((p) => p.id === 'quota:cli/**'));
    const usage = await runCli(['policy', 'usage', ...engine]);
    assert.match(usage.stdout, /cli\/\*\*\s+0 B\s+5 MiB/);
    const removed = await runCli(['policy', 'delete', 'quota:cli/**', ...engine]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.ok(!(await list()).some((p) => p.id === 'quota:cli/**'));
    const bad = await runCli(['policy', 'quota', 'cli/**', 'lots', ...engine]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid size "lots"/);
  });

  it('a configuration file with a bad rule is refused with FILE:LINE:COL', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'policies:\n  immutableTags:\n    - repositories: "**"\n      tags: "v 1"\n');
    const result = await runCli(['config', 'check', bad]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`${bad}:4:\\d+: policies\\.immutableTags\\.0\\.tags: invalid tag pattern`));
  });
});
