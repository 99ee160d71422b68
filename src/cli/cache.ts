/** `portfolio cache prune`: removes cached content nobody pulled for a while (docs/proxy.md). */
import type { Command } from 'commander';
import { configFromOptions, withSettings } from './config.js';
import { parseDuration } from './duration.js';
import { withEngine } from './flags.js';

export function registerCacheCommands(program: Command): void {
  const cache = program.command('cache').description('the pull-through cache (docs/proxy.md)');
  withSettings(
    cache
      .command('prune')
      .description('delete cached manifests (and their tags) not pulled for this long; garbage collection then reclaims their blobs')
      .requiredOption('--unused-for <duration>', 'how long a cached manifest may go unpulled, e.g. 30d')
      .option('--dry-run', 'report what would be deleted, delete nothing')
      .option('--json', 'print the report as JSON'),
    'engine',
    'cache',
  ).action(async (flags: { unusedFor: string; dryRun?: boolean; json?: boolean }, command: Command) => {
    const { config } = configFromOptions(command.opts());
    const prefixes = (config.proxy ?? []).map((u) => u.prefix);
    if (prefixes.length === 0) throw new Error('no cached upstreams configured (proxy in the configuration file, --proxy or PORTFOLIO_PROXY)');
    const before = Date.now() - parseDuration(flags.unusedFor);
    const report = await withEngine(config, ({ registry }) => registry.pruneCache({ prefixes, before, dryRun: flags.dryRun }));
    if (flags.json) console.log(JSON.stringify(report));
    else console.log(`${flags.dryRun ? 'would delete' : 'deleted'} ${report.manifestsDeleted} cached manifests; kept ${report.manifestsKept} still used by a pulled index`);
  });
}
