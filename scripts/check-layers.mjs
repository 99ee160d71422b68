#!/usr/bin/env node
// Fails when a module imports across the layer line: http → core ← backends, cli wires them;
// auth (users, policy, tokens: no HTTP) sits on core, and http and cli may use it.
// Usage: node scripts/check-layers.mjs [SRC_DIR]   (default: src)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

/** What each layer may import (besides itself and packages). */
const ALLOWED = {
  core: ['core'],
  auth: ['core', 'auth'],
  http: ['core', 'auth', 'http'],
  backends: ['core', 'backends'],
  // The pull-through cache wraps any Registry (core) with upstream clients; it knows no backend or HTTP server.
  proxy: ['core', 'proxy'],
  cli: ['core', 'auth', 'http', 'backends', 'proxy', 'cli'],
};

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : /\.(ts|mts|js|mjs)$/.test(name) ? [path] : [];
  });
}

export function checkLayers(srcDir) {
  const root = resolve(srcDir);
  const violations = [];
  for (const file of files(root)) {
    const layer = relative(root, file).split(sep)[0];
    if (!(layer in ALLOWED)) continue;
    const text = readFileSync(file, 'utf8');
    const specifiers = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)].map((m) => m[1]);
    for (const spec of specifiers) {
      if (!spec.startsWith('.')) continue;
      const target = relative(root, resolve(dirname(file), spec)).split(sep)[0];
      if (target in ALLOWED && !ALLOWED[layer].includes(target)) {
        violations.push(`${relative(process.cwd(), file)}: ${layer} must not import ${target} (${spec})`);
      }
    }
  }
  return violations;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const violations = checkLayers(process.argv[2] ?? 'src');
  if (violations.length) {
    console.error(`layer check failed:\n  ${violations.join('\n  ')}`);
    process.exit(1);
  }
  console.log('layer check: http → auth → core ← backends holds');
}
