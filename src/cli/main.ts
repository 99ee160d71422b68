/** The `portfolio` command line. */
import { Command } from 'commander';
import { registerAuthCommands } from './auth.js';
import { registerCacheCommands } from './cache.js';
import { configFromOptions, loadConfig, printConfig, withSettings } from './config.js';
import { openEngine } from './engine.js';
import { engineFrom } from './flags.js';
import { registerDevCommands } from './dev.js';
import { registerEventCommands } from './events.js';
import { registerMaintenanceCommands } from './maintenance.js';
import { registerPolicyCommands } from './policies.js';
import { serveConfigured } from './serve.js';
import { registerTransferCommands } from './transfer.js';
import { VERSION } from './version.js';

const program = new Command('portfolio')
  .description('An OCI Distribution registry')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError();

withSettings(program.command('serve').description('run the registry (SIGHUP re-reads the configuration: access policy, log level, event sinks)'), 'engine', 'serve').action(
  async (_flags: unknown, command: Command) => {
    await serveConfigured(() => configFromOptions(command.opts()));
  },
);

withSettings(program.command('migrate').description('bring the metadata schema up to date'), 'engine').action(async (_flags: unknown, command: Command) => {
  const engine = await openEngine(engineFrom(configFromOptions(command.opts()).config, false));
  try {
    const applied = await engine.database.migrate();
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date');
  } finally {
    await engine.registry.close();
  }
});

const config = program.command('config').description('the configuration file (docs/configuration.md)');
config
  .command('check')
  .description('validate a configuration file without starting (exit 1 and one line naming FILE:LINE:COL if it is wrong)')
  .argument('<file>')
  .action((file: string) => {
    loadConfig({ file, env: {}, flags: {} });
    console.log(`${file}: ok`);
  });
withSettings(
  config.command('print').description('print the effective configuration (defaults, file, environment and flags merged) with secrets hidden'),
  'engine',
  'serve',
  'token',
  'user',
  'cache',
).action((_flags: unknown, command: Command) => {
  process.stdout.write(printConfig(configFromOptions(command.opts()).raw));
});

registerMaintenanceCommands(program);
registerEventCommands(program);
registerPolicyCommands(program);
registerAuthCommands(program);
registerCacheCommands(program);
registerTransferCommands(program);
registerDevCommands(program);

program.parseAsync().catch((err: unknown) => {
  // Start-up failures (bad URL, unreachable database, missing bucket, a wrong setting) are one readable line.
  console.error(`portfolio: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
