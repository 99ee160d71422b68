/** Opens the backend under test (PORTFOLIO_TEST_ENGINE) on fresh stores, straight through the core interfaces. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Engine } from '../../src/cli/engine.js';
import { ENGINE, freshEngine } from '../helpers/registry.js';
import { openStores } from '../helpers/stores.js';

export async function openTestEngine(inlineBlobBytes: number): Promise<Engine & { dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'portfolio-contract-'));
  const args = await freshEngine(dir);
  const engine = await openStores(dir, args, true, inlineBlobBytes);
  return {
    ...engine,
    async dispose() {
      await engine.registry.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function streamOf(...chunks: (Buffer | string)[]): Readable {
  return Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
}

export { ENGINE };
