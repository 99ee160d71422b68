#!/usr/bin/env node
// Runs the compiled test suites (node:test) on every engine configuration whose services are
// reachable: sqlite-fs always; pg-fs when PostgreSQL answers; pg-s3 when S3 answers too.
// PORTFOLIO_TEST_ENGINES=sqlite-fs,pg-fs narrows the list; CI=true requires all of them.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist/test');

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'helpers' ? [] : files(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

function reachable(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 1000 });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

const pgUrl = new URL(process.env.PORTFOLIO_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const s3Url = new URL(process.env.AWS_ENDPOINT_URL_S3 ?? 'http://127.0.0.1:9380');
const available = { 'sqlite-fs': true };
available['pg-fs'] = await reachable(pgUrl.hostname, Number(pgUrl.port || 5432));
available['pg-s3'] = available['pg-fs'] && (await reachable(s3Url.hostname, Number(s3Url.port || 80)));

const wanted = (process.env.PORTFOLIO_TEST_ENGINES ?? 'sqlite-fs,pg-fs,pg-s3').split(',');
const all = files(dist).sort();
// Suites that do not depend on the engine run once, on the default engine.
const engineFree = (f) => /\/(unit|layers|objects|cli)\//.test(f);
// Suites that exercise the metadata engine and not the object store: on PostgreSQL + S3 they would
// repeat their PostgreSQL + files run.
const metadataOnly = (f) => /\/(auth|events|health|metrics|tls|policies|ui|workers)\//.test(f);
// Databases and S3 prefixes the suites create carry this run's mark and are removed at the end.
const run = randomBytes(4).toString('hex');
let failed = false;
const ran = [];
for (const engine of wanted) {
  if (!available[engine]) {
    if (process.env.CI === 'true') { console.error(`engine ${engine}: its services are not reachable (required in CI)`); failed = true; }
    else console.log(`engine ${engine}: skipped, its services are not reachable`);
    continue;
  }
  const suite = all.filter((f) => engine === 'sqlite-fs' || !engineFree(f));
  if (engine !== 'sqlite-fs') {
    // Client and benchmark-style suites add no coverage of the engine beyond the HTTP suite.
    for (let i = suite.length - 1; i >= 0; i--) if (/\/(client|browser)\//.test(suite[i])) suite.splice(i, 1);
  }
  if (engine === 'pg-s3') for (let i = suite.length - 1; i >= 0; i--) if (metadataOnly(suite[i])) suite.splice(i, 1);
  console.log(`\n=== engine ${engine}: ${suite.length} test files ===`);
  const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...suite], {
    stdio: 'inherit',
    env: { ...process.env, PORTFOLIO_TEST_ENGINE: engine, PORTFOLIO_TEST_RUN: run },
  });
  ran.push(`${engine}: ${result.status === 0 ? 'passed' : 'FAILED'}`);
  if (result.status !== 0) failed = true;
}
console.log(`\nengines: ${ran.join('; ')}`);
// Suites of any engine may create them (a backup restored into PostgreSQL + S3, say).
if (available['pg-fs']) {
  const { removeRunStores } = await import(join(dist, 'helpers/run-stores.js'));
  try {
    const removed = await removeRunStores(run, { s3: available['pg-s3'] });
    console.log(`test run ${run}: removed ${removed.databases} databases and ${removed.objects} S3 objects`);
  } catch (err) {
    console.log(`test run ${run}: could not remove its databases and S3 objects: ${err.message}`);
  }
}
process.exit(failed ? 1 : 0);
