/** The `portfolio` command line. */
import { Command, Option } from 'commander';
import { parseDuration } from './duration.js';
import { openEngine } from './engine.js';
import { engineFrom, withEngineFlags, withMetricsFlags, type EngineFlags } from './flags.js';
import { registerAuthCommands } from './auth.js';
import { createLogger, defaultLogFormat, LOG_FORMATS, type LogFormat } from './log.js';
import { limitsFrom, withLimitFlags, type LimitFlags } from './limits.js';
import { registerMaintenanceCommands } from './maintenance.js';
import { serve } from './serve.js';
import { VERSION } from './version.js';

interface ServeFlags extends EngineFlags, LimitFlags {
  addr: string;
  logLevel: string;
  logFormat?: LogFormat;
  uploadSweepInterval: string;
  gcInterval: string;
  gcGrace: string;
  gcDeleteUntagged?: string;
  tlsCert?: string;
  tlsKey?: string;
  metricsAddr?: string;
}

const program = new Command('portfolio')
  .description('An OCI Distribution registry')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError();

withMetricsFlags(withLimitFlags(withEngineFlags(program.command('serve').description('run the registry'))))
  .addOption(new Option('--addr <host:port>', 'address to listen on').env('PORTFOLIO_ADDR').default('0.0.0.0:5000'))
  .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug').env('PORTFOLIO_LOG_LEVEL').default('info'))
  .addOption(
    new Option('--log-format <format>', 'text: one readable line per record; json: JSON lines (default: text on a terminal, else json)')
      .choices(LOG_FORMATS)
      .env('PORTFOLIO_LOG_FORMAT'),
  )
  .addOption(new Option('--upload-sweep-interval <duration>', 'how often expired upload sessions are reclaimed').default('10m'))
  .addOption(new Option('--gc-interval <duration>', 'how often garbage is collected in the background (0: never)').env('PORTFOLIO_GC_INTERVAL').default('1h'))
  .addOption(new Option('--gc-grace <duration>', 'garbage collection keeps anything touched more recently than this').env('PORTFOLIO_GC_GRACE').default('24h'))
  .addOption(new Option('--gc-delete-untagged <duration>', 'collection also deletes untagged manifests older than this').env('PORTFOLIO_GC_DELETE_UNTAGGED'))
  .addOption(new Option('--tls-cert <file>', 'PEM certificate: serve HTTPS').env('PORTFOLIO_TLS_CERT'))
  .addOption(new Option('--tls-key <file>', 'PEM private key for --tls-cert').env('PORTFOLIO_TLS_KEY'))
  .action(async (flags: ServeFlags) => {
    const logger = createLogger(flags.logLevel, flags.logFormat ?? defaultLogFormat());
    await serve({
      ...engineFrom(flags, true),
      addr: flags.addr,
      uploadSweepIntervalMs: parseDuration(flags.uploadSweepInterval),
      gc: {
        intervalMs: parseDuration(flags.gcInterval),
        graceMs: parseDuration(flags.gcGrace),
        deleteUntaggedAfterMs: flags.gcDeleteUntagged ? parseDuration(flags.gcDeleteUntagged) : undefined,
      },
      tlsCert: flags.tlsCert,
      tlsKey: flags.tlsKey,
      metricsAddr: flags.metricsAddr,
      limits: limitsFrom(flags),
      logger,
    });
  });

withEngineFlags(program.command('migrate').description('bring the metadata schema up to date')).action(async (flags: EngineFlags) => {
  const engine = await openEngine(engineFrom(flags, false));
  try {
    const applied = await engine.database.migrate();
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date');
  } finally {
    await engine.registry.close();
  }
});

registerMaintenanceCommands(program);
registerAuthCommands(program);

program.parseAsync().catch((err: unknown) => {
  // Start-up failures (bad URL, unreachable database, missing bucket) are one readable line.
  console.error(`portfolio: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
