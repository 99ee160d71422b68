#!/usr/bin/env node
// Builds the web interface (ui/) into dist/ui: one script and one stylesheet, named by the hash
// of their content (served with a year's cache lifetime), and index.html that names them.
// Type-checks the sources first. Prints the gzip size of what a first page load transfers.
// --if-stale (npm start): does nothing when dist/ui is newer than every file of ui/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'dist/ui');
if (process.argv.includes('--if-stale') && existsSync(join(out, 'index.html'))) {
  const newest = (dir) => Math.max(...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
  if (statSync(join(out, 'index.html')).mtimeMs >= newest(join(root, 'ui'))) process.exit(0);
}
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'ui/tsconfig.json')], { stdio: 'inherit' });
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
const result = await build({
  entryPoints: [join(root, 'ui/src/main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});
const files = Object.keys(result.metafile.outputs).map((f) => join(root, f));
const js = files.find((f) => f.endsWith('.js'));
const css = files.find((f) => f.endsWith('.css'));
if (!js || !css) throw new Error(`expected a script and a stylesheet, got ${files.join(', ')}`);
const html = readFileSync(join(root, 'ui/index.html'), 'utf8').replace('%JS%', basename(js)).replace('%CSS%', basename(css));
writeFileSync(join(out, 'index.html'), html);
const gz = (f) => gzipSync(readFileSync(f), { level: 9 }).length;
const total = gz(join(out, 'index.html')) + gz(js) + gz(css);
console.log(`ui: ${basename(js)} ${gz(js)} B, ${basename(css)} ${gz(css)} B gzip; first page load ${total} B gzip (before API calls)`);
