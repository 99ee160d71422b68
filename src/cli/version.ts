/** Portfolio's version: the one in package.json, read at start-up so there is one place to bump it. */
import { readFileSync } from 'node:fs';

// Compiled to dist/src/cli/version.js: the package root is three levels up.
const manifest = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

export const VERSION: string = manifest.version;
