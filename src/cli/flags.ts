/** The engine settings every command shares, so tools act on the same stores as `serve`. */
import type { Config } from './settings.js';
import type { EngineOptions } from './engine.js';
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
