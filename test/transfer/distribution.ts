/** Runs CNCF distribution (Debian `docker-registry`, /usr/bin/docker-registry) on a free loopback port with its own storage directory. */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hash } from '@node-rs/bcrypt';
import { freePort } from '../helpers/net.js';
import type { Layout } from './content.js';

const run = promisify(execFile);
const SKOPEO = process.env.SKOPEO ?? 'skopeo';

export const DISTRIBUTION = process.env.DOCKER_REGISTRY ?? '/usr/bin/docker-registry';

export interface Distribution {
  url: string;
  host: string;
  root: string;
  stop(): Promise<void>;
}

export async function startDistribution(dir: string, basicAuth?: { user: string; password: string }): Promise<Distribution> {
  const port = await freePort();
  const root = join(dir, 'storage');
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${root}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (basicAuth) {
    const file = join(dir, 'htpasswd');
    await writeFile(file, `${basicAuth.user}:${await hash(basicAuth.password, 5)}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: test', `    path: ${file}`);
  }
  const config = join(dir, 'config.yml');
  await writeFile(config, lines.join('\n') + '\n');
  const child: ChildProcess = spawn(DISTRIBUTION, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${output}`);
    try {
      const res = await fetch(`${url}/v2/`);
      if (res.status === 200 || res.status === 401) break;
    } catch {
      /* not listening yet */
    }
    if (i > 200) throw new Error(`docker-registry did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    root,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Pushes a layout's tagged entries with skopeo and its untagged ones (referrers) by digest over HTTP. */
export async function pushLayout(dist: Distribution, layoutDir: string, layout: Layout, repo: string, auth: string[] = [], headers: Record<string, string> = {}): Promise<void> {
  for (const e of layout.entries) {
    if (e.tag) await run(SKOPEO, ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', ...auth, `oci:${layoutDir}:${e.tag}`, `docker://${dist.host}/${repo}:${e.tag}`]);
  }
  for (const e of layout.entries.filter((x) => !x.tag)) {
    const m = JSON.parse(layout.objects.get(e.digest)!.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
      const bytes = layout.objects.get(d)!;
      const start = await fetch(`${dist.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
      assert.equal(start.status, 202);
      const location = new URL(start.headers.get('location')!, dist.url);
      location.searchParams.set('digest', d);
      const put = await fetch(location, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: bytes });
      assert.equal(put.status, 201, await put.text());
    }
    const put = await fetch(`${dist.url}/v2/${repo}/manifests/${e.digest}`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': e.mediaType },
      body: layout.objects.get(e.digest)!,
    });
    assert.equal(put.status, 201, await put.text());
  }
}
