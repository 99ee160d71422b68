/** The engine settings every command shares, so tools act on the same stores as `serve`. */
import type { Config } from './settings.js';
import { openEngine, type Engine, type EngineOptions } from './engine.js';
import { eventRouting } from './event-sinks.js';

export function engineFrom(config: Config, migrate: boolean): EngineOptions {
  return {
    dataDir: config.storage.data_dir,
    databaseUrl: config.database.url,
    storage: config.storage.url,
    uploadTtlMs: config.uploads.ttl,
    maxBlobBytes: config.uploads.max_blob_size,
    inlineBlobBytes: config.storage.inline_blob_size,
    sqliteSync: config.database.sqlite_synchronous === 'normal' ? 'NORMAL' : 'FULL',
    redirectMs: config.storage.blob_redirect,
    migrate,
    events: eventRouting(config),
  };
}

/** Opens the stores of `config` for one command's work and closes them after, whatever happened. */
export async function withEngine<T>(config: Config, work: (engine: Engine) => Promise<T>, migrate = true): Promise<T> {
  const engine = await openEngine(engineFrom(config, migrate));
  try {
    return await work(engine);
  } finally {
    await engine.registry.close();
  }
}
