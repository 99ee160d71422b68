/**
 * What `serve` prints: one readable line per record on a terminal (or with --log-format text),
 * JSON lines otherwise (or with --log-format json). The start-up record says where the registry
 * listens, which engine holds the data and where, and whether auth is on.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeHtpasswd } from '../auth/util.js';
import { CLI, createDatabase, PG_URL, ROOT, runCli, startRegistry } from '../helpers/registry.js';

const ESC = '\x1b';
let dir: string;
let version: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portfolio-logs-'));
  version = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
});
after(async () => rm(dir, { recursive: true, force: true }));

interface Server {
  process: ChildProcess;
  /** Resolves with the first stdout line matching `pattern` (and everything printed so far). */
  waitFor(pattern: RegExp): Promise<string>;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `command args` and collects its stdout; `serve` output in any format. */
function start(command: string, args: string[], env: Record<string, string> = {}): Server {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      const line = out.split(/\r?\n/).find((l) => w.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    check();
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    process: child,
    output: () => out,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within 20 s; stdout:\n${out}\nstderr:\n${err}`)), 20_000);
        waiters.push({ pattern, resolve: (line) => (clearTimeout(timer), resolve(line)) });
        void exited.then(() => setTimeout(() => reject(new Error(`exited before printing ${pattern}; stdout:\n${out}\nstderr:\n${err}`)), 50));
        check();
      }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

const serveArgs = (data: string, ...more: string[]) => [CLI, 'serve', '--addr', '127.0.0.1:0', '--data-dir', data, ...more];

/** `script` (util-linux) runs the command on a pseudo-terminal: what a person sees. */
function onTerminal(args: string[], env: Record<string, string> = {}): Server {
  const quoted = [process.execPath, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  return start('script', ['-qfec', `exec ${quoted}`, '/dev/null'], env);
}

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

describe('log format', { timeout: 60_000 }, () => {
  it('is JSON lines when stdout is not a terminal; the listening record names url, version, engine, data and auth', async () => {
    const data = join(dir, 'json');
    const registry = await startRegistry({ dataDir: data, engineArgs: ['--data-dir', data] });
    try {
      await fetch(`${registry.url}/v2/`);
      await registry.stop();
      const records = registry
        .output()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const listening = records.find((r) => r.msg === 'listening');
      assert.deepEqual(
        { ...listening, time: undefined },
        {
          level: 30,
          time: undefined,
          msg: 'listening',
          url: registry.url,
          version,
          database: `SQLite at ${join(data, 'metadata.db')}`,
          storage: `files in ${join(data, 'objects')}`,
          auth: 'off: anyone may pull, push and delete',
        },
      );
      assert.ok(records.some((r) => r.msg === 'request' && r.path === '/v2/' && r.status === 200), registry.output());
    } finally {
      await registry.stop();
    }
  });

  it('is readable text with --log-format text (and PORTFOLIO_LOG_FORMAT=text), without colours on a pipe', async () => {
    for (const [args, env] of [
      [['--log-format', 'text'], {}],
      [[], { PORTFOLIO_LOG_FORMAT: 'text' }],
    ] as const) {
      const data = join(dir, `text-${randomUUID()}`);
      const server = start(process.execPath, serveArgs(data, ...args), env);
      try {
        const line = await server.waitFor(/listening/);
        assert.match(
          line,
          new RegExp(
            `^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} INFO  listening url=http://127\\.0\\.0\\.1:\\d+ version=${version.replaceAll('.', '\\.')} ` +
              `database="SQLite at ${join(data, 'metadata.db')}" storage="files in ${join(data, 'objects')}" auth="off: anyone may pull, push and delete"$`,
          ),
        );
        const url = /url=(\S+)/.exec(line)![1]!;
        assert.equal((await fetch(`${url}/v2/`)).status, 200);
        const request = await server.waitFor(/ request /);
        assert.match(request, /^\d\d:\d\d:\d\d\.\d{3} INFO  request method=GET path=\/v2\/ status=200 ms=[\d.]+ remote=127\.0\.0\.1 complete=true$/);
        assert.ok(!server.output().includes('{'), `no JSON in text output:\n${server.output()}`);
        assert.ok(!server.output().includes(ESC), `no colour codes on a pipe:\n${server.output()}`);
      } finally {
        await server.stop();
      }
    }
  });

  it('on a terminal is coloured text by default, and JSON with --log-format json', { skip: !hasScript && process.env.CI !== 'true' && 'script (util-linux) is not installed' }, async () => {
    assert.ok(hasScript, 'script (util-linux) is not installed (required in CI)');
    const text = onTerminal(serveArgs(join(dir, 'tty')));
    try {
      const line = await text.waitFor(/listening/);
      assert.ok(line.includes(`${ESC}[`), `colours on a terminal: ${JSON.stringify(line)}`);
      const plain = line.replaceAll(/\x1b\[[0-9;]*m/g, '').replace(/\r$/, '');
      assert.match(plain, /^\d\d:\d\d:\d\d\.\d{3} INFO  listening url=http:\/\/127\.0\.0\.1:\d+ version=\S+ database="SQLite at .*" storage="files in .*" auth="off: .*"$/);
    } finally {
      await text.stop();
    }
    const json = onTerminal(serveArgs(join(dir, 'tty-json'), '--log-format', 'json'));
    try {
      const line = await json.waitFor(/listening/);
      const record = JSON.parse(line.replace(/\r$/, '')) as Record<string, unknown>;
      assert.equal(record.msg, 'listening');
      assert.equal(record.version, version);
    } finally {
      await json.stop();
    }
  });

  it('rejects an unknown format', async () => {
    const result = await runCli(['serve', '--addr', '127.0.0.1:0', '--data-dir', join(dir, 'bad'), '--log-format', 'yaml']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /--log-format.*yaml.*text, json/);
  });
});

describe('the listening record', { timeout: 60_000 }, () => {
  it('says when Basic auth and token auth are on', async () => {
    await writeHtpasswd(join(dir, 'htpasswd'), { alice: 'alice-pw' });
    for (const [mode, words] of [
      ['basic', 'on: Basic auth'],
      ['token', 'on: token auth, tokens from /auth/token'],
    ] as const) {
      const data = join(dir, `auth-${mode}`);
      const registry = await startRegistry({ dataDir: data, engineArgs: ['--data-dir', data], args: ['--auth', mode, '--htpasswd', join(dir, 'htpasswd')] });
      try {
        const listening = registry
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((r) => r.msg === 'listening');
        assert.equal(listening?.auth, words, registry.output());
      } finally {
        await registry.stop();
      }
    }
  });

  it('names PostgreSQL by its URL without the password', async (t) => {
    const pg = new URL(PG_URL);
    if (!(await reachable(pg.hostname, Number(pg.port || 5432)))) {
      const why = `PostgreSQL at ${pg.host} is not reachable`;
      if (process.env.CI === 'true') assert.fail(`${why} (required in CI)`);
      return t.skip(why);
    }
    // Trust auth on the test server: the password is accepted and must never be printed.
    const url = new URL(await createDatabase());
    url.password = 'sup3r-secret';
    const data = join(dir, 'pg');
    const registry = await startRegistry({ dataDir: data, engineArgs: ['--data-dir', data, '--database-url', url.toString()] });
    try {
      assert.ok(!registry.output().includes('sup3r-secret'), registry.output());
      const listening = JSON.parse(registry.output().split('\n').find((l) => l.includes('"listening"'))!) as Record<string, unknown>;
      const shown = new URL(url);
      shown.password = '***';
      assert.equal(listening.database, `PostgreSQL at ${shown.toString()}`);
    } finally {
      await registry.stop();
    }
  });
});

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 1000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}
