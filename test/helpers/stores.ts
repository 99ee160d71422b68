/** Opens the stores behind a test server in-process, to look at or damage them directly. */
import { openEngine, type Engine } from '../../src/cli/engine.js';
import { s3Env } from './registry.js';

export function engineFlag(engineArgs: string[], name: string): string | undefined {
  const i = engineArgs.indexOf(name);
  return i === -1 ? undefined : engineArgs[i + 1];
}

export async function openStores(dataDir: string, engineArgs: string[], migrate = false, inlineBlobBytes = 64 * 1024): Promise<Engine> {
  Object.assign(process.env, s3Env());
  return openEngine({
    dataDir,
    databaseUrl: engineFlag(engineArgs, '--database-url'),
    storage: engineFlag(engineArgs, '--storage'),
    uploadTtlMs: 60_000,
    maxBlobBytes: 8 * 1024 * 1024,
    inlineBlobBytes,
    migrate,
  });
}

export async function withStores<T>(dataDir: string, engineArgs: string[], work: (engine: Engine) => Promise<T>): Promise<T> {
  const engine = await openStores(dataDir, engineArgs);
  try {
    return await work(engine);
  } finally {
    await engine.registry.close();
  }
}
