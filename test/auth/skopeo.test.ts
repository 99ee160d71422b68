/**
 * skopeo with `--creds` against Portfolio with Basic auth and with token auth (skopeo follows
 * the Bearer challenge to /auth/token): push, pull, inspect, copy between repositories, delete,
 * and the failures a client must see (unauthorized, denied).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { sha256 } from '../helpers/oci.js';
import { ok, skopeo, skopeoEnv, writeLayout } from './skopeo-util.js';
import { writeHtpasswd } from './util.js';

const USERS = { alice: 'alice-pw', bob: 'bob-pw' };
const POLICY = `
rules:
  - repository: "team/**"
    users:
      alice: [pull, push, delete]
      bob: [pull]
`;

for (const mode of ['basic', 'token'] as const) {
  describe(`skopeo --creds with ${mode} auth`, { timeout: 60_000 }, () => {
    let work: string;
    let env: NodeJS.ProcessEnv;
    let registry: RunningRegistry;
    let host: string;
    let image: { digest: string; bytes: Buffer };
    const ref = (repo: string, tag = 'v1') => `docker://${host}/${repo}:${tag}`;

    before(async () => {
      work = await mkdtemp(join(tmpdir(), `portfolio-skopeo-${mode}-`));
      env = await skopeoEnv(work);
      image = await writeLayout(join(work, 'layout'));
      await writeHtpasswd(join(work, 'htpasswd'), USERS);
      await writeFile(join(work, 'policy.yaml'), POLICY);
      registry = await startRegistry({ args: ['--auth', mode, '--htpasswd', join(work, 'htpasswd'), '--access-policy', join(work, 'policy.yaml')] });
      host = new URL(registry.url).host;
    });
    after(async () => {
      await registry?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('pushes with the right credentials, and a client without them sees unauthorized', async () => {
      const anonymous = await skopeo(env, ['copy', '--dest-tls-verify=false', `oci:${join(work, 'layout')}:v1`, ref('team/app')]);
      assert.notEqual(anonymous.code, 0);
      assert.match(anonymous.stderr, /unauthorized|authentication required|denied/i, anonymous.stderr);
      const wrong = await skopeo(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:wrong', `oci:${join(work, 'layout')}:v1`, ref('team/app')]);
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /unauthorized|authentication required|invalid username/i, wrong.stderr);
      await ok(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:alice-pw', `oci:${join(work, 'layout')}:v1`, ref('team/app')], registry);
      if (mode === 'token') assert.match(registry.output(), /"path":"\/auth\/token\?[^"]*scope=repository%3Ateam%2Fapp%3Apull%2Cpush/, 'skopeo fetched a token for the push');
    });

    it('pulls and inspects with read-only credentials; pushing with them is denied', async () => {
      const inspect = await ok(env, ['inspect', '--raw', '--tls-verify=false', '--creds', 'bob:bob-pw', ref('team/app')], registry);
      assert.equal(inspect.stdout, image.bytes.toString());
      const out = join(work, 'pulled');
      await ok(env, ['copy', '--src-tls-verify=false', '--src-creds', 'bob:bob-pw', ref('team/app'), `dir:${out}`], registry);
      assert.equal(sha256(await readFile(join(out, 'manifest.json'))), image.digest);
      const push = await skopeo(env, ['copy', '--dest-tls-verify=false', '--dest-creds', 'bob:bob-pw', `oci:${join(work, 'layout')}:v1`, ref('team/bob')]);
      assert.notEqual(push.code, 0, 'bob may not push');
      assert.match(push.stderr, /denied|unauthorized|insufficient/i, push.stderr);
    });

    it('copies between repositories (mounting blobs) and deletes', async () => {
      await ok(env, ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--src-creds', 'alice:alice-pw', '--dest-creds', 'alice:alice-pw', ref('team/app'), ref('team/copy')], registry);
      const inspect = await ok(env, ['inspect', '--raw', '--tls-verify=false', '--creds', 'alice:alice-pw', ref('team/copy')], registry);
      assert.equal(inspect.stdout, image.bytes.toString());
      const denied = await skopeo(env, ['delete', '--tls-verify=false', '--creds', 'bob:bob-pw', ref('team/copy')]);
      assert.notEqual(denied.code, 0, 'bob may not delete');
      await ok(env, ['delete', '--tls-verify=false', '--creds', 'alice:alice-pw', ref('team/copy')], registry);
      const gone = await skopeo(env, ['inspect', '--raw', '--tls-verify=false', '--creds', 'alice:alice-pw', ref('team/copy')]);
      assert.notEqual(gone.code, 0, 'deleted');
    });
  });
}
