/** `portfolio import` and `portfolio export`: images in and out of the store on the same engine flags as serve. */
import { Option, type Command } from 'commander';
import { configFromOptions, withSettings } from './config.js';
import { parseDuration } from './duration.js';
import { parseRepositoryName } from '../core/names.js';
import { openEngine } from './engine.js';
import { engineFrom } from './flags.js';
import { formatBytes } from '../core/bytes.js';
import { backup, restore } from './transfer/backup.js';
import { exportRepository } from './transfer/exporter.js';
import { importSource, type ImportSummary } from './transfer/importer.js';
import { openSource, type SourceFormat } from './transfer/open-source.js';
import { createProgress } from './transfer/progress.js';

function formatSummary(s: ImportSummary): string {
  const lines = [
    `repositories: ${s.repositories}`,
    `manifests:    ${s.manifests.copied} copied, ${s.manifests.skipped} already present`,
    `tags:         ${s.tags.set} set, ${s.tags.skipped} already set`,
    `blobs:        ${s.blobs.copied} copied (${formatBytes(s.bytes.copied)}), ${s.blobs.skipped} already present (${formatBytes(s.bytes.skipped)})`,
    `errors:       ${s.errors.length}`,
  ];
  for (const e of s.errors) lines.push(`  ${e}`);
  return lines.join('\n');
}

const positive = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got ${JSON.stringify(value)}`);
  return n;
};

async function sourcePassword(stdin: boolean): Promise<string> {
  if (!stdin) {
    const password = process.env.PORTFOLIO_SOURCE_PASSWORD;
    if (password === undefined) throw new Error('--username needs a password: set PORTFOLIO_SOURCE_PASSWORD or give --password-stdin');
    return password;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export function registerTransferCommands(program: Command): void {
  withSettings(
    program
      .command('import')
      .description(
        'copy images into the store from an OCI image layout (directory or tar), a docker save archive, a CNCF distribution storage directory, or another registry; safe while serve runs',
      )
      .argument('<source>', 'a directory, a tar file, or a registry URL: https://HOST[:PORT][/REPOSITORY[:TAG[,TAG…]]] (no repository: the whole catalog)')
      .argument('[dest-repository]', 'the repository to import into (several source repositories: a prefix for their names)'),
    'engine',
  )
    .addOption(new Option('--format <format>', 'what SOURCE is (default: detected)').choices(['oci', 'docker-archive', 'distribution']))
    .option('--repository <name...>', 'distribution storage or registry: import only these repositories')
    .option('--username <name>', 'registry: the user to log in as (password from PORTFOLIO_SOURCE_PASSWORD, or --password-stdin)')
    .option('--password-stdin', 'registry: read the password from standard input')
    .addOption(new Option('--concurrency <n>', 'blobs copied at once').default(4).argParser(positive))
    .option('--json', 'print the summary as JSON')
    .action(
      async (
        sourcePath: string,
        destination: string | undefined,
        flags: { format?: SourceFormat; repository?: string[]; username?: string; passwordStdin?: boolean; concurrency: number; json?: boolean },
        command: Command,
      ) => {
        const { config } = configFromOptions(command.opts());
        const credentials = flags.username ? { username: flags.username, password: await sourcePassword(Boolean(flags.passwordStdin)) } : undefined;
        const source = await openSource(sourcePath, { format: flags.format, destination, repositories: flags.repository, credentials });
        const engine = await openEngine(engineFrom(config, true));
        const progress = createProgress('import');
        let summary: ImportSummary;
        try {
          summary = await importSource(engine.registry, source, { concurrency: flags.concurrency, progress });
        } finally {
          progress.stop();
          await source.close();
          await engine.registry.close();
        }
        console.log(flags.json ? JSON.stringify(summary) : formatSummary(summary));
        if (summary.errors.length) process.exitCode = 1;
      },
    );

  withSettings(
    program
      .command('export')
      .description('write tagged images of a repository, with their referrers, as an OCI image layout directory or tar (skopeo copy oci:DEST:TAG reads it)')
      .argument('<reference>', 'REPOSITORY, or REPOSITORY:TAG[,TAG…] (default: every tag)')
      .argument('<dest>', 'a new directory, or a file ending in .tar'),
    'engine',
  )
    .option('--tar', 'write a tar archive whatever DEST is called')
    .option('--docker', 'add docker save\'s manifest.json, so docker load reads the tar (an index gives its linux/amd64 image)')
    .option('--json', 'print the summary as JSON')
    .action(async (reference: string, dest: string, flags: { tar?: boolean; docker?: boolean; json?: boolean }, command: Command) => {
      const { config } = configFromOptions(command.opts());
      const colon = reference.indexOf(':');
      const name = parseRepositoryName(colon === -1 ? reference : reference.slice(0, colon));
      const tags = colon === -1 ? [] : reference.slice(colon + 1).split(',').filter(Boolean);
      const engine = await openEngine(engineFrom(config, false));
      const progress = createProgress('export');
      try {
        const summary = await exportRepository({
          repository: engine.registry.repository(name),
          tags,
          dest,
          tar: Boolean(flags.tar || flags.docker) || dest.endsWith('.tar'),
          docker: Boolean(flags.docker),
          progress,
        });
        progress.stop();
        console.log(
          flags.json
            ? JSON.stringify(summary)
            : `exported ${name}: ${summary.tags.length} tags, ${summary.manifests} manifests, ${summary.blobs} blobs (${formatBytes(summary.bytes)}) to ${dest}`,
        );
      } finally {
        progress.stop();
        await engine.registry.close();
      }
    });

  withSettings(
    program
      .command('backup')
      .description('a consistent snapshot of the whole store while it serves, with the objects it names (docs/backup.md)')
      .argument('<dest>', 'a new directory'),
    'engine',
  )
    .addOption(new Option('--objects <mode>', 'copy the objects into the backup, or only list them for your own bucket replication').choices(['copy', 'list']).default('copy'))
    .addOption(new Option('--wait <duration>', 'how long to wait for a running garbage collection').default('10m'))
    .option('--json', 'print the summary as JSON')
    .action(async (dest: string, flags: { objects: 'copy' | 'list'; wait: string; json?: boolean }, command: Command) => {
      const { config } = configFromOptions(command.opts());
      const engine = await openEngine(engineFrom(config, false));
      const progress = createProgress('backup');
      try {
        const manifest = await backup(engine, { dest, objects: flags.objects, waitMs: parseDuration(flags.wait), progress });
        progress.stop();
        const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
        console.log(
          flags.json
            ? JSON.stringify(manifest)
            : `backed up ${manifest.tables.length} tables (${rows} rows) and ${manifest.objects.mode === 'copy' ? 'copied' : 'listed'} ${manifest.objects.count} objects (${formatBytes(manifest.objects.bytes)}) to ${dest}`,
        );
      } finally {
        progress.stop();
        await engine.registry.close();
      }
    });

  withSettings(
    program
      .command('restore')
      .description('load a backup into an empty store of either engine (objects first, then the metadata); run fsck --full after')
      .argument('<src>', 'a directory portfolio backup wrote'),
    'engine',
  )
    .option('--json', 'print the summary as JSON')
    .action(async (src: string, flags: { json?: boolean }, command: Command) => {
      const { config } = configFromOptions(command.opts());
      const engine = await openEngine(engineFrom(config, false));
      const progress = createProgress('restore');
      try {
        const summary = await restore(engine, src, progress);
        progress.stop();
        const rows = summary.tables.reduce((n, t) => n + t.rows, 0);
        console.log(
          flags.json
            ? JSON.stringify(summary)
            : [
                `restored ${summary.tables.length} tables (${rows} rows) into ${engine.describe.database}`,
                `objects: ${summary.objects.copied} copied (${formatBytes(summary.objects.bytes)}), ${summary.objects.present} already in ${engine.describe.storage}`,
                ...(summary.skipped.length ? [`not restored (state of running processes): ${summary.skipped.join(', ')}`] : []),
                ...(summary.migrated.length ? [`migrated: ${summary.migrated.join(', ')}`] : []),
              ].join('\n'),
        );
      } finally {
        progress.stop();
        await engine.registry.close();
      }
    });
}
