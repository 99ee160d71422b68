/** The engine flags every command takes, so tools act on the same stores as `serve`. */
import { Option, type Command } from 'commander';
import { parseDuration, parseSize } from './duration.js';
import type { EngineOptions } from './engine.js';

export interface EngineFlags {
  dataDir: string;
  databaseUrl?: string;
  storage?: string;
  uploadTtl: string;
  maxBlobSize?: string;
  inlineBlobSize: string;
  sqliteSynchronous: string;
  blobRedirect?: string;
}

export function withEngineFlags(command: Command): Command {
  return command
    .addOption(new Option('--data-dir <dir>', 'directory for the embedded database and blob files').env('PORTFOLIO_DATA_DIR').default('./portfolio-data'))
    .addOption(new Option('--database-url <url>', 'postgres://… to keep metadata in PostgreSQL (default: SQLite in the data directory)').env('PORTFOLIO_DATABASE_URL'))
    .addOption(new Option('--storage <url>', 's3://BUCKET[/PREFIX] to keep blobs in S3 (default: files in the data directory)').env('PORTFOLIO_STORAGE'))
    .addOption(new Option('--upload-ttl <duration>', 'how long an idle upload session lives').env('PORTFOLIO_UPLOAD_TTL').default('24h'))
    .addOption(new Option('--max-blob-size <size>', 'largest accepted blob, e.g. 10G (default: no limit)').env('PORTFOLIO_MAX_BLOB_SIZE'))
    .addOption(
      new Option('--inline-blob-size <size>', 'blobs up to this size are kept in the database instead of the object store (0: none)')
        .env('PORTFOLIO_INLINE_BLOB_SIZE')
        .default('64K'),
    )
    .addOption(
      new Option('--sqlite-synchronous <mode>', 'SQLite commits: normal survives process crashes, full also power loss (slower)')
        .choices(['full', 'normal'])
        .env('PORTFOLIO_SQLITE_SYNCHRONOUS')
        .default('normal'),
    )
    .addOption(
      new Option('--blob-redirect <duration>', 'answer blob GETs with a 307 to a presigned S3 URL valid this long (default: off)').env(
        'PORTFOLIO_BLOB_REDIRECT',
      ),
    );
}

/** A request's inline bytes are held in memory until it ends; past this they belong in the object store. */
const MAX_INLINE_BLOB_BYTES = 1024 * 1024;

export function engineFrom(flags: EngineFlags, migrate: boolean): EngineOptions {
  const inlineBlobBytes = parseSize(flags.inlineBlobSize);
  if (inlineBlobBytes > MAX_INLINE_BLOB_BYTES) throw new Error(`invalid --inline-blob-size ${flags.inlineBlobSize}: at most 1M`);
  return {
    dataDir: flags.dataDir,
    databaseUrl: flags.databaseUrl,
    storage: flags.storage,
    uploadTtlMs: parseDuration(flags.uploadTtl),
    maxBlobBytes: flags.maxBlobSize ? parseSize(flags.maxBlobSize) : undefined,
    inlineBlobBytes,
    sqliteSync: flags.sqliteSynchronous === 'normal' ? 'NORMAL' : 'FULL',
    redirectMs: flags.blobRedirect ? parseDuration(flags.blobRedirect) : undefined,
    migrate,
  };
}

/** `serve`'s metrics flag: where Prometheus scrapes, when not on the main listener. */
export function withMetricsFlags(command: Command): Command {
  return command.addOption(
    new Option('--metrics-addr <host:port>', 'serve /metrics on this address of its own instead of the main listener').env('PORTFOLIO_METRICS_ADDR'),
  );
}
