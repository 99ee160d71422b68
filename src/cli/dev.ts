/** `portfolio dev generate`: synthetic content for scale tests and benchmarks (docs/scale.md). */
import { InvalidArgumentError, type Command } from 'commander';
import { configFromOptions, withSettings } from './config.js';
import { parseDuration } from './duration.js';
import { withEngine } from './flags.js';

function count(value: string): number {
  const n = Number(value.replaceAll('_', ''));
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
}

export function registerDevCommands(program: Command): void {
  const dev = program.command('dev').description('tools for development and benchmarks');
  withSettings(
    dev
      .command('generate')
      .description('fill the store with synthetic images quickly (rows written in bulk; fsck-clean)')
      .requiredOption('--repositories <n>', 'repositories to create', count)
      .requiredOption('--blobs <n>', 'layer blobs, one image manifest each (at least one per repository)', count)
      .option('--tags <n>', 'tags in all (default: one per manifest)', count)
      .option('--big-repositories <n>', 'repositories that get --tags-in-big-repo tags each', count, 0)
      .option('--tags-in-big-repo <n>', 'tags (and manifests) in each big repository', count, 0)
      .option('--garbage <n>', 'extra blobs that no manifest uses (for garbage collection to remove)', count, 0)
      .option('--prefix <name>', 'repository names are PREFIX-NN/app-I', 'gen')
      .option('--age <duration>', 'date every row this far in the past (e.g. 48h, to be past the grace period)')
      .option('--json', 'print the report as JSON'),
    'engine',
  ).action(
    async (
      flags: { repositories: number; blobs: number; tags?: number; bigRepositories: number; tagsInBigRepo: number; garbage: number; prefix: string; age?: string; json?: boolean },
      command: Command,
    ) => {
      const big = flags.tagsInBigRepo > 0 ? Math.max(1, flags.bigRepositories) : flags.bigRepositories;
      const report = await withEngine(configFromOptions(command.opts()).config, ({ registry }) =>
        registry.generate({
          repositories: flags.repositories,
          blobs: flags.blobs,
          tags: flags.tags ?? flags.blobs,
          bigRepositories: big,
          tagsPerBigRepository: flags.tagsInBigRepo,
          garbage: flags.garbage,
          prefix: flags.prefix,
          at: flags.age ? Date.now() - parseDuration(flags.age) : undefined,
          onProgress: flags.json ? undefined : (p) => process.stderr.write(`  ${p.repositories} repositories, ${p.blobs} blobs, ${p.tags} tags\n`),
        }),
      );
      if (flags.json) console.log(JSON.stringify(report));
      else console.log(`generated ${report.repositories} repositories, ${report.blobs} blobs (${report.garbage} unused), ${report.manifests} manifests, ${report.tags} tags in ${report.durationMs} ms`);
    },
  );
}
