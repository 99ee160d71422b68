/** The `proxy` setting: a list in the file, `--proxy PREFIX=URL` (repeatable) and PORTFOLIO_PROXY, their errors and redaction. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { runCli } from '../helpers/registry.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portfolio-proxy-config-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function oneLine(result: { code: number; stderr: string }): string {
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
  return lines[0]!;
}

describe('proxy configuration', () => {
  it('accepts a list with credentials from a file, and hides inline passwords in config print', async () => {
    const secret = await file('upstream-password', 'hunter2\n');
    const config = await file(
      'proxy.yaml',
      [
        'proxy:',
        '  - prefix: docker.io',
        '    url: https://registry-1.docker.io',
        `    credentials: {username: me, password: {file: ${secret}}}`,
        '    tagTTL: 5m',
        '    repositories: ["library/**"]',
        '  - prefix: cache/ghcr',
        '    url: https://ghcr.io/',
        '    credentials: {username: you, password: inline-secret}',
        '    readOnly: false',
        '',
      ].join('\n'),
    );
    assert.equal((await runCli(['config', 'check', config])).code, 0);
    const result = await runCli(['config', 'print', '--config', config]);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /inline-secret/);
    const printed = parseYaml(result.stdout) as { proxy: { credentials: { password: unknown } }[] };
    assert.deepEqual(printed.proxy[0]!.credentials.password, { file: secret });
    assert.equal(printed.proxy[1]!.credentials.password, '***');
  });

  it('names the place of a bad entry in the file', async () => {
    const config = await file('bad-proxy.yaml', ['proxy:', '  - prefix: docker.io', '    url: ftp://example.com', ''].join('\n'));
    assert.match(oneLine(await runCli(['config', 'check', config])), new RegExp(`^portfolio: ${config}:2:5: proxy.0: expected an http\\(s\\) URL of a registry`));
    const unset = await file('unset.yaml', ['proxy:', '  - {prefix: a, url: "http://127.0.0.1:1", credentials: {username: u, password: {env: PROXY_TEST_UNSET}}}', ''].join('\n'));
    assert.match(oneLine(await runCli(['config', 'check', unset])), /environment variable PROXY_TEST_UNSET is not set/);
    const twice = await file('twice.yaml', ['proxy:', '  - {prefix: a, url: "http://127.0.0.1:1"}', '  - {prefix: a, url: "http://127.0.0.1:2"}', ''].join('\n'));
    assert.match(oneLine(await runCli(['config', 'check', twice])), /prefix a is given twice/);
    const pattern = await file('pattern.yaml', ['proxy:', '  - {prefix: a, url: "http://127.0.0.1:1", repositories: ["team/a**"]}', ''].join('\n'));
    assert.match(oneLine(await runCli(['config', 'check', pattern])), /pattern.yaml:2:\d+: proxy.0.repositories: repositories: \*\* must be a whole path segment/);
  });

  it('takes --proxy more than once, and PORTFOLIO_PROXY comma-separated', async () => {
    const flags = await runCli(['config', 'print', '--proxy', 'a=http://127.0.0.1:1', '--proxy', 'b/c=https://example.com']);
    assert.equal(flags.code, 0, flags.stderr);
    assert.equal((parseYaml(flags.stdout) as { proxy: string }).proxy, 'a=http://127.0.0.1:1,b/c=https://example.com');
    const env = await runCli(['config', 'print'], { PORTFOLIO_PROXY: 'docker.io=https://registry-1.docker.io,ghcr.io=https://ghcr.io' });
    assert.equal(env.code, 0, env.stderr);
    assert.equal(oneLine(await runCli(['config', 'print', '--proxy', 'nourl'])), 'portfolio: invalid --proxy nourl: expected PREFIX=URL, got "nourl"');
    assert.equal(
      oneLine(await runCli(['config', 'print'], { PORTFOLIO_PROXY: 'Bad_Prefix=http://x' })),
      'portfolio: invalid PORTFOLIO_PROXY Bad_Prefix=http://x: prefix "Bad_Prefix" is not a repository name prefix (docker.io, cache/ghcr)',
    );
  });
});
