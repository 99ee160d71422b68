/**
 * The pieces import and export stand on: references as archives record them, the tar reader
 * (against GNU tar's output too: long names, directories) and writer, and the errors
 * `portfolio import` gives for sources it cannot read.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { splitReference } from '../../src/cli/transfer/references.js';
import { TarIndex } from '../../src/cli/transfer/tar-index.js';
import { TarWriter } from '../../src/cli/transfer/tar-writer.js';
import { runCli } from '../helpers/registry.js';
import { sampleLayout, writeLayout } from './content.js';

const run = promisify(execFile);

describe('references', () => {
  it('splits tags, names and registry hosts', () => {
    assert.deepEqual(splitReference('v1'), { tag: 'v1' });
    assert.deepEqual(splitReference('team/app:v1'), { repository: 'team/app', tag: 'v1' });
    assert.deepEqual(splitReference('docker.io/library/alpine:3.19'), { repository: 'library/alpine', tag: '3.19' });
    assert.deepEqual(splitReference('localhost:5000/app:latest'), { repository: 'app', tag: 'latest' });
    assert.deepEqual(splitReference('registry.example/team/app'), { repository: 'team/app', tag: undefined });
    assert.throws(() => splitReference('team/app:-bad'), /invalid tag/);
  });
});

describe('tar', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-tar-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads what GNU tar writes, long names included, and streams each entry', async () => {
    const long = `${'d'.repeat(90)}/${'f'.repeat(120)}`;
    await mkdir(join(dir, 'src', 'd'.repeat(90)), { recursive: true });
    const big = randomBytes(300_000);
    await writeFile(join(dir, 'src', long), big);
    await writeFile(join(dir, 'src', 'empty'), '');
    for (const format of ['gnu', 'pax', 'ustar']) {
      const file = join(dir, `${format}.tar`);
      const members = format === 'ustar' ? ['empty'] : ['empty', long];
      await run('tar', ['-C', join(dir, 'src'), `--format=${format}`, '-cf', file, ...members]);
      const index = await TarIndex.open(file);
      assert.equal(index.size('empty'), 0);
      assert.deepEqual(await index.read('./empty'), Buffer.alloc(0));
      if (format !== 'ustar') assert.deepEqual(await index.read(long), big, format);
    }
  });

  it('writes archives GNU tar reads back, PAX names for long paths', async () => {
    const file = join(dir, 'written.tar');
    const tar = new TarWriter(createWriteStream(file));
    const long = `blobs/${'x'.repeat(150)}`;
    const content = randomBytes(1000);
    await tar.file(long, content);
    await tar.file('small', Buffer.from('hi'));
    await tar.finish();
    const out = join(dir, 'out');
    await mkdir(out);
    await run('tar', ['-C', out, '-xf', file]);
    assert.deepEqual(await readFile(join(out, long)), content);
    assert.equal(await readFile(join(out, 'small'), 'utf8'), 'hi');
    assert.deepEqual(await (await TarIndex.open(file)).read(long), content);
  });

  it('refuses what is not a tar archive', async () => {
    const file = join(dir, 'junk.tar');
    await writeFile(file, randomBytes(4096));
    await assert.rejects(TarIndex.open(file), /not a tar archive/);
  });
});

describe('import refuses sources it cannot read, with exit 1 and one line', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portfolio-bad-source-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const store = () => ['--data-dir', join(dir, 'store')];

  it('a missing path, a directory that is no image store, junk for a tar', async () => {
    const missing = await runCli(['import', join(dir, 'nope'), 'a/b', ...store()]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no such file or directory/);
    await mkdir(join(dir, 'empty'));
    const empty = await runCli(['import', join(dir, 'empty'), 'a/b', ...store()]);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /neither an OCI image layout .* nor a docker archive/);
    await writeFile(join(dir, 'junk.tar'), randomBytes(2048));
    const junk = await runCli(['import', join(dir, 'junk.tar'), 'a/b', ...store()]);
    assert.equal(junk.code, 1);
    assert.match(junk.stderr, /not a tar archive/);
  });

  it('a layout without DEST-REPOSITORY whose ref names are bare tags, and an invalid repository name', async () => {
    await writeLayout(join(dir, 'layout'), sampleLayout(1024));
    const noDest = await runCli(['import', join(dir, 'layout'), ...store()]);
    assert.equal(noDest.code, 1);
    assert.match(noDest.stderr, /give DEST-REPOSITORY/);
    const badName = await runCli(['import', join(dir, 'layout'), 'Bad Name', ...store()]);
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /invalid|name/i);
  });

  it('a layout whose index names a manifest it does not hold: the others go in, exit 1', async () => {
    const layout = sampleLayout(1024);
    await writeLayout(join(dir, 'holey'), layout);
    await rm(join(dir, 'holey', 'blobs/sha256', layout.entries[0]!.digest.slice(7)));
    const r = await runCli(['import', join(dir, 'holey'), 'holey/app', '--json', ...store()]);
    assert.equal(r.code, 1);
    const summary = JSON.parse(r.stdout) as { errors: string[]; tags: { set: number } };
    assert.equal(summary.tags.set, 3);
    assert.ok(summary.errors.some((e) => e.includes(layout.entries[0]!.digest)), summary.errors.join('\n'));
  });
});
