/** Opens the backend under test (PORTFOLIO_TEST_ENGINE) on fresh stores, straight through the core interfaces. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { openEngine, type Engine } from '../../src/cli/engine.js';
import { ENGINE, freshEngine, s3Env } from '../helpers/registry.js';

export async function openTestEngine(): Promise<Engine & { dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'portfolio-contract-'));
  const args = await freshEngine(dir);
  Object.assign(process.env, s3Env());
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i === -1 ? undefined : args[i + 1];
  };
  const engine = await openEngine({
    dataDir: dir,
    databaseUrl: flag('--database-url'),
    storage: flag('--storage'),
    uploadTtlMs: 60_000,
    maxBlobBytes: 8 * 1024 * 1024,
    migrate: true,
  });
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
