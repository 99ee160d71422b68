/** SIGHUP re-reads the configuration: the access policy and log level change at once; a bad file changes nothing. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicAuth, call, writeHtpasswd } from '../auth/util.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

const ALICE_ONLY = 'rules:\n  - repository: "team/**"\n    users:\n      alice: [pull, push]\n';
const ALICE_AND_BOB = 'rules:\n  - repository: "team/**"\n    users:\n      alice: [pull, push]\n      bob: [pull]\n';

describe('SIGHUP reloads the access policy', { timeout: 30_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  let config: string;
  const policyA = () => join(dir, 'policy-a.yaml');
  const policyB = () => join(dir, 'policy-b.yaml');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-reload-'));
    await writeHtpasswd(join(dir, 'htpasswd'), { alice: 'alice-pw', bob: 'bob-pw' });
    await writeFile(policyA(), ALICE_ONLY);
    await writeFile(policyB(), ALICE_AND_BOB);
    config = join(dir, 'portfolio.yaml');
    await writeFile(config, `auth:\n  htpasswd: ${join(dir, 'htpasswd')}\n  policy: ${policyA()}\n`);
    registry = await startRegistry({ args: ['--config', config] });
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** bob lists team/app's tags: 403 when the policy refuses him, 404 NAME_UNKNOWN (nothing pushed) when it lets him pull. */
  const bobStatus = async () => (await call(`${registry.url}/v2/team/app/tags/list`, { headers: { authorization: basicAuth('bob', 'bob-pw') } })).status;

  /** Sends SIGHUP and waits for the reload's log record (the `count`-th with this message). */
  async function hangup(message: string, count: number): Promise<Record<string, unknown>> {
    registry.process.kill('SIGHUP');
    for (let i = 0; i < 200; i++) {
      const records = registry
        .output()
        .split('\n')
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as Record<string, unknown>];
          } catch {
            return [];
          }
        })
        .filter((r) => r.msg === message);
      if (records.length >= count) return records[count - 1]!;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`no "${message}" record after SIGHUP:\n${registry.output()}`);
  }

  it('a user gains access when the file names a new policy, and loses it when the policy file changes', async () => {
    assert.equal(await bobStatus(), 403);
    await writeFile(config, `auth:\n  htpasswd: ${join(dir, 'htpasswd')}\n  policy: ${policyB()}\n`);
    const reloaded = await hangup('configuration reloaded', 1);
    assert.deepEqual(reloaded.changed, ['auth.policy']);
    assert.equal(await bobStatus(), 404);

    await writeFile(policyB(), ALICE_ONLY);
    await hangup('configuration reloaded', 2);
    assert.equal(await bobStatus(), 403);
    await writeFile(policyB(), ALICE_AND_BOB);
    await hangup('configuration reloaded', 3);
    assert.equal(await bobStatus(), 404);
  });

  it('a bad configuration file or policy keeps the running one and says why', async () => {
    const good = `auth:\n  htpasswd: ${join(dir, 'htpasswd')}\n  policy: ${policyB()}\n`;
    await writeFile(config, `${good}  polcy: ${policyA()}\n`);
    const refused = await hangup('configuration not reloaded: keeping the running one', 1);
    assert.equal(refused.reason, `${config}:4:3: unknown key auth.polcy (expected one of: mode, htpasswd, policy, login_failures, token, external)`);
    assert.equal(await bobStatus(), 404);

    await writeFile(config, good);
    await writeFile(policyB(), 'rules: [oops\n');
    const badPolicy = await hangup('access policy not reloaded: keeping the running one', 1);
    assert.match(String(badPolicy.reason), /policy-b\.yaml/);
    assert.equal(await bobStatus(), 404);
  });

  it('the log level changes without a restart; other settings wait for one', async () => {
    await writeFile(policyB(), ALICE_AND_BOB);
    await writeFile(config, `auth:\n  htpasswd: ${join(dir, 'htpasswd')}\n  policy: ${policyB()}\nlog:\n  level: warn\ngc:\n  grace: 1h\n`);
    const count = registry.output().split('\n').filter((l) => l.includes('"configuration reloaded"')).length;
    registry.process.kill('SIGHUP');
    // At warn, the reload's own info record is no longer written: the restart warning is.
    for (let i = 0; i < 200 && !registry.output().includes('take effect at the next restart'); i++) await new Promise((r) => setTimeout(r, 25));
    assert.match(registry.output(), /"settings":\["gc\.grace"\].*take effect at the next restart/);
    const before = registry.output().length;
    await bobStatus();
    await new Promise((r) => setTimeout(r, 100));
    assert.doesNotMatch(registry.output().slice(before), /"level":30/, 'no info records (requests) at level warn');
    assert.equal(registry.output().split('\n').filter((l) => l.includes('"configuration reloaded"')).length, count);
  });
});
