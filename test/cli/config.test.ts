/** The configuration file: precedence, errors that name FILE:LINE:COL, `config check`, `config print`, secrets. */
import assert from 'node:assert/strict';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { ROOT, runCli, startRegistry } from '../helpers/registry.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portfolio-config-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** Runs `config print` and parses the YAML it printed. */
async function printed(args: string[], env: Record<string, string> = {}): Promise<Record<string, Record<string, unknown>>> {
  const result = await runCli(['config', 'print', ...args], env);
  assert.equal(result.code, 0, result.stderr);
  return parseYaml(result.stdout) as Record<string, Record<string, unknown>>;
}

function oneLine(result: { code: number; stderr: string }): string {
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
  return lines[0]!;
}

describe('precedence: flag > environment > file > default', () => {
  it('config print shows each setting from the strongest source that sets it', async () => {
    const config = await file('precedence.yaml', ['uploads:', '  ttl: 3h', 'log:', '  level: debug', 'gc:', '  grace: 2h', ''].join('\n'));
    const env = { PORTFOLIO_UPLOAD_TTL: '4h', PORTFOLIO_LOG_LEVEL: 'warn' };
    const out = await printed(['--config', config, '--upload-ttl', '5h'], env);
    assert.equal(out.uploads!.ttl, '5h', 'a flag beats the environment and the file');
    assert.equal(out.log!.level, 'warn', 'the environment beats the file');
    assert.equal(out.gc!.grace, '2h', 'the file beats the default');
    assert.equal(out.gc!.interval, '1h', 'the default where nothing sets it');
  });

  it('PORTFOLIO_CONFIG names the file when --config is absent', async () => {
    const config = await file('by-env.yaml', 'gc:\n  grace: 7h\n');
    const out = await printed([], { PORTFOLIO_CONFIG: config });
    assert.equal(out.gc!.grace, '7h');
  });

  it('serve obeys the file, and the environment over it', async () => {
    const config = await file('serve.yaml', 'uploads:\n  max_blob_size: 10\n');
    const body = Buffer.from('twenty bytes of blob');
    const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(body).digest('hex')}`;
    const push = (url: string) => fetch(`${url}/v2/cfg/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body });

    const fromFile = await startRegistry({ args: ['--config', config], env: { PORTFOLIO_MAX_BLOB_SIZE: '' } });
    try {
      assert.equal((await push(fromFile.url)).status, 413, 'max_blob_size 10 from the file refuses 20 bytes');
    } finally {
      await fromFile.stop();
    }
    const fromEnv = await startRegistry({ args: ['--config', config], env: { PORTFOLIO_MAX_BLOB_SIZE: '1K' } });
    try {
      assert.equal((await push(fromEnv.url)).status, 201, 'PORTFOLIO_MAX_BLOB_SIZE beats the file');
    } finally {
      await fromEnv.stop();
    }
  });
});

describe('a wrong configuration stops start-up with one line naming FILE:LINE:COL', () => {
  const serve = (config: string) => runCli(['serve', '--addr', '127.0.0.1:0', '--data-dir', join(dir, 'never'), '--config', config]);

  it('an unknown key', async () => {
    const config = await file('unknown.yaml', 'http:\n  addr: 127.0.0.1:0\ngc:\n  grace: 1h\n  intervall: 1h\n');
    const line = oneLine(await serve(config));
    assert.equal(line, `portfolio: ${config}:5:3: unknown key gc.intervall (expected one of: interval, grace, delete_untagged)`);
  });

  it('an unknown section', async () => {
    const config = await file('section.yaml', 'htpp:\n  addr: 127.0.0.1:0\n');
    assert.match(oneLine(await serve(config)), new RegExp(`^portfolio: ${config}:1:1: unknown key htpp \\(expected one of: http, database, `));
  });

  it('a wrong type', async () => {
    const config = await file('type.yaml', 'limits:\n  max_connections: [1, 2]\n');
    assert.equal(oneLine(await serve(config)), `portfolio: ${config}:2:20: limits.max_connections: expected a non-negative integer`);
  });

  it('a bad value', async () => {
    const config = await file('value.yaml', 'log:\n  level: loud\n');
    assert.equal(oneLine(await serve(config)), `portfolio: ${config}:2:10: log.level: expected one of fatal, error, warn, info, debug, trace, silent`);
    const duration = await file('duration.yaml', 'gc:\n  interval: 1h\n  grace: soon\n');
    assert.equal(oneLine(await serve(duration)), `portfolio: ${duration}:3:10: gc.grace: invalid duration "soon" (examples: 30s, 15m, 24h)`);
  });

  it('YAML that does not parse', async () => {
    const config = await file('broken.yaml', 'http:\n  addr: "127.0.0.1:0\n');
    assert.match(oneLine(await serve(config)), new RegExp(`^portfolio: ${config}:\\d+:\\d+: invalid YAML`));
  });

  it('a bad environment variable is named as such', async () => {
    const result = await runCli(['config', 'print'], { PORTFOLIO_GC_GRACE: 'whenever' });
    assert.equal(oneLine(result), 'portfolio: invalid PORTFOLIO_GC_GRACE whenever: invalid duration "whenever" (examples: 30s, 15m, 24h)');
  });
});

describe('config check', () => {
  it('accepts portfolio.example.yaml', async () => {
    const result = await runCli(['config', 'check', join(ROOT, 'portfolio.example.yaml')]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /portfolio\.example\.yaml: ok/);
  });

  it('refuses a wrong file with exit 1 and one line', async () => {
    const config = await file('check-bad.yaml', 'storage:\n  inline_blob_size: 2M\n');
    assert.equal(oneLine(await runCli(['config', 'check', config])), `portfolio: ${config}:2:21: storage.inline_blob_size: at most 1M`);
  });
});

describe('documentation', () => {
  it('docs/configuration.md names every file key and environment variable that --help shows', async () => {
    const help = await runCli(['config', 'print', '--help']);
    assert.equal(help.code, 0, help.stderr);
    const pairs = [...help.stdout.replace(/\s+/g, ' ').matchAll(/\[env (PORTFOLIO_[A-Z_]+), file ([a-z_.]+)/g)];
    assert.ok(pairs.length >= 30, `settings in --help: ${pairs.length}`);
    const docs = await readFile(join(ROOT, 'docs/configuration.md'), 'utf8');
    for (const [, env, key] of pairs) {
      assert.ok(docs.includes(`| \`${key}\` |`), `docs/configuration.md lacks ${key}`);
      assert.ok(docs.includes(`\`${env}\``), `docs/configuration.md lacks ${env}`);
    }
  });
});

describe('secrets', () => {
  it('database.url from a file or an environment variable', async () => {
    const fromFile = join(dir, 'from-file.db');
    const secretFile = await file('db-secret', `sqlite:${fromFile}\n`);
    const viaFile = await file('secret-file.yaml', `storage:\n  data_dir: ${join(dir, 'data-a')}\ndatabase:\n  url: {file: ${secretFile}}\n`);
    const a = await runCli(['migrate', '--config', viaFile], { PORTFOLIO_DATABASE_URL: '' });
    assert.equal(a.code, 0, a.stderr);
    await access(fromFile);

    const fromEnv = join(dir, 'from-env.db');
    const viaEnv = await file('secret-env.yaml', `storage:\n  data_dir: ${join(dir, 'data-b')}\ndatabase:\n  url: {env: MY_DB_URL}\n`);
    const b = await runCli(['migrate', '--config', viaEnv], { PORTFOLIO_DATABASE_URL: '', MY_DB_URL: `sqlite:${fromEnv}` });
    assert.equal(b.code, 0, b.stderr);
    await access(fromEnv);
  });

  it('a missing secret names the file, line and column', async () => {
    const config = await file('secret-missing.yaml', 'database:\n  url: {env: NOT_SET_ANYWHERE}\n');
    assert.equal(oneLine(await runCli(['config', 'check', config])), `portfolio: ${config}:2:8: database.url: environment variable NOT_SET_ANYWHERE is not set`);
    const missing = await file('secret-nofile.yaml', `database:\n  url: {file: ${join(dir, 'absent')}}\n`);
    assert.match(oneLine(await runCli(['config', 'check', missing])), new RegExp(`^portfolio: ${missing}:2:8: database.url: cannot read secret file .*absent: ENOENT$`));
  });

  it('config print hides an inline password and shows references as they are', async () => {
    const inline = await file('inline.yaml', 'database:\n  url: postgres://portfolio:hunter2@db.example/registry\n');
    const result = await runCli(['config', 'print', '--config', inline], { PORTFOLIO_DATABASE_URL: '' });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /hunter2/);
    assert.match(result.stdout, /url: postgres:\/\/portfolio:\*\*\*@db\.example\/registry/);

    const fromEnv = await runCli(['config', 'print'], { PORTFOLIO_DATABASE_URL: 'postgres://u:s3cret@h/db' });
    assert.doesNotMatch(fromEnv.stdout, /s3cret/);

    const reference = await file('reference.yaml', 'database:\n  url: {env: MY_DB_URL}\n');
    const out = await printed(['--config', reference], { PORTFOLIO_DATABASE_URL: '', MY_DB_URL: 'postgres://u:topsecret@h/db' });
    assert.deepEqual(out.database!.url, { env: 'MY_DB_URL' });
  });

  it('config print hides event sink headers, passwords and URL credentials', async () => {
    const sinks = await file(
      'sinks.yaml',
      [
        'events:',
        '  webhook: https://hook:flagpass@ci.example/hook',
        '  sinks:',
        '    - {name: ci, type: webhook, url: "https://u:urlpass@ci.example/x", headers: {Authorization: Bearer headerpass}}',
        '    - {name: bus, type: nats, url: "nats://127.0.0.1:4222", subject: s, user: u, password: natspass}',
        '',
      ].join('\n'),
    );
    const result = await runCli(['config', 'print', '--config', sinks], { PORTFOLIO_EVENTS_WEBHOOK: '' });
    assert.equal(result.code, 0, result.stderr);
    for (const secret of ['flagpass', 'urlpass', 'headerpass', 'natspass']) assert.doesNotMatch(result.stdout, new RegExp(secret));
    const out = parseYaml(result.stdout) as { events: { sinks: { name: string; headers?: Record<string, string> }[] } };
    assert.deepEqual(out.events.sinks.map((s) => s.name), ['ci', 'bus']);
    assert.deepEqual(out.events.sinks[0]!.headers, { Authorization: '***' });
  });
});
