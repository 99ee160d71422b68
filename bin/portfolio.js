#!/usr/bin/env node
// The compiled CLI; `npm run build` (or `npm start`) produces dist/.
const main = new URL('../dist/src/cli/main.js', import.meta.url);
try {
  await import(main.href);
} catch (err) {
  // Not built yet (a fresh clone after `npm ci`): say what to do instead of a stack trace.
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && err.url === main.href) {
    console.error('portfolio: not built yet: run `npm run build` (or `npm start`) first');
    process.exit(1);
  }
  throw err;
}
