/** The `portfolio` command line. */
import { Command, Option } from 'commander';
import pino from 'pino';
import { parseDuration, parseSize } from './duration.js';
import { openEngine, type EngineOptions } from './engine.js';
import { serve } from './serve.js';

const program = new Command('portfolio').description('An OCI Distribution registry').showHelpAfterError();

/** The engine flags every command takes, so tools act on the same stores as `serve`. */
function engineOptions(command: Command): Command {
  return command
    .addOption(new Option('--data-dir <dir>', 'directory for the embedded database and blob files').env('PORTFOLIO_DATA_DIR').default('./portfolio-data'))
    .addOption(new Option('--database-url <url>', 'postgres://… to keep metadata in PostgreSQL (default: SQLite in the data directory)').env('PORTFOLIO_DATABASE_URL'))
    .addOption(new Option('--storage <url>', 's3://BUCKET[/PREFIX] to keep blobs in S3 (default: files in the data directory)').env('PORTFOLIO_STORAGE'))
    .addOption(new Option('--upload-ttl <duration>', 'how long an idle upload session lives').env('PORTFOLIO_UPLOAD_TTL').default('24h'))
    .addOption(new Option('--max-blob-size <size>', 'largest accepted blob, e.g. 10G (default: no limit)').env('PORTFOLIO_MAX_BLOB_SIZE'));
}

interface EngineFlags {
  dataDir: string;
  databaseUrl?: string;
  storage?: string;
  uploadTtl: string;
  maxBlobSize?: string;
}

function engineFrom(flags: EngineFlags, migrate: boolean): EngineOptions {
  return {
    dataDir: flags.dataDir,
    databaseUrl: flags.databaseUrl,
    storage: flags.storage,
    uploadTtlMs: parseDuration(flags.uploadTtl),
    maxBlobBytes: flags.maxBlobSize ? parseSize(flags.maxBlobSize) : undefined,
    migrate,
  };
}

engineOptions(program.command('serve').description('run the registry'))
  .addOption(new Option('--addr <host:port>', 'address to listen on').env('PORTFOLIO_ADDR').default('0.0.0.0:5000'))
  .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug').env('PORTFOLIO_LOG_LEVEL').default('info'))
  .addOption(new Option('--upload-sweep-interval <duration>', 'how often expired upload sessions are reclaimed').default('10m'))
  .addOption(new Option('--tls-cert <file>', 'PEM certificate: serve HTTPS').env('PORTFOLIO_TLS_CERT'))
  .addOption(new Option('--tls-key <file>', 'PEM private key for --tls-cert').env('PORTFOLIO_TLS_KEY'))
  .action(async (flags: EngineFlags & { addr: string; logLevel: string; uploadSweepInterval: string; tlsCert?: string; tlsKey?: string }) => {
    const logger = pino({ level: flags.logLevel, base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
    await serve({
      ...engineFrom(flags, true),
      addr: flags.addr,
      uploadSweepIntervalMs: parseDuration(flags.uploadSweepInterval),
      tlsCert: flags.tlsCert,
      tlsKey: flags.tlsKey,
      logger,
    });
  });

engineOptions(program.command('migrate').description('bring the metadata schema up to date')).action(async (flags: EngineFlags) => {
  const engine = await openEngine(engineFrom(flags, false));
  try {
    const applied = await engine.database.migrate();
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date');
  } finally {
    await engine.registry.close();
  }
});

program.parseAsync().catch((err: unknown) => {
  // Start-up failures (bad URL, unreachable database, missing bucket) are one readable line.
  console.error(`portfolio: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
