/** Start-up failures are one readable line and a non-zero exit, never a stack trace. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, startRegistry } from '../helpers/registry.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portfolio-cli-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

function assertOneLine(result: { code: number; stdout: string; stderr: string }, pattern: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
  assert.match(lines[0]!, pattern);
}

test('an unreachable database is a one-line error', async () => {
  const result = await runCli(['serve', '--addr', '127.0.0.1:0', '--data-dir', dir, '--database-url', 'postgres://nobody@127.0.0.1:1/none']);
  assertOneLine(result, /^portfolio: cannot connect to PostgreSQL at postgres:\/\/nobody@127\.0\.0\.1:1\/none/);
});

test('an unsupported storage URL is a one-line error', async () => {
  const result = await runCli(['serve', '--addr', '127.0.0.1:0', '--data-dir', dir, '--storage', 'ftp://x']);
  assertOneLine(result, /unsupported --storage/);
});

test('a bad address, duration or size is a one-line error', async () => {
  assertOneLine(await runCli(['serve', '--addr', 'nonsense', '--data-dir', dir]), /invalid --addr/);
  assertOneLine(await runCli(['serve', '--addr', '127.0.0.1:0', '--data-dir', dir, '--upload-ttl', 'soon']), /invalid duration/);
  assertOneLine(await runCli(['serve', '--addr', '127.0.0.1:0', '--data-dir', dir, '--max-blob-size', 'big']), /invalid size/);
  assertOneLine(await runCli(['serve', '--addr', '127.0.0.1:0', '--data-dir', dir, '--inline-blob-size', '2M']), /invalid --inline-blob-size 2M: at most 1M/);
});

test('a data directory that cannot be created is a one-line error', async () => {
  const file = join(dir, 'a-file');
  await writeFile(file, 'x');
  assertOneLine(await runCli(['serve', '--addr', '127.0.0.1:0', '--data-dir', join(file, 'sub')]), /^portfolio: /);
});

test('migrate reports what it applied, then that the schema is current', async () => {
  const data = join(dir, 'migrate');
  const first = await runCli(['migrate', '--data-dir', data]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /applied: 0001_initial/);
  const second = await runCli(['migrate', '--data-dir', data]);
  assert.match(second.stdout, /schema is up to date/);
});

test('SIGTERM drains and exits 0, and the data survives a restart', async () => {
  const data = join(dir, 'restart');
  const first = await startRegistry({ dataDir: data, engineArgs: ['--data-dir', data] });
  const body = Buffer.from('persisted');
  const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(body).digest('hex')}`;
  const post = await fetch(`${first.url}/v2/cli/restart/blobs/uploads/?digest=${digest}`, { method: 'POST', body });
  assert.equal(post.status, 201);
  const exited = new Promise<number | null>((r) => first.process.once('exit', (code) => r(code)));
  first.process.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.match(first.output(), /"msg":"stopped"/);
  const second = await startRegistry({ dataDir: data, engineArgs: ['--data-dir', data] });
  try {
    const res = await fetch(`${second.url}/v2/cli/restart/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'persisted');
  } finally {
    await second.stop();
  }
});
