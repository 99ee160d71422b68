/** `portfolio gc`, `fsck`, `du` and `repo delete`: storage management on the same engine flags as serve. */
import { Option, type Command } from 'commander';
import type { FsckReport, GcReport, Usage } from '../core/maintenance.js';
import { parseRepositoryName } from '../core/names.js';
import { parseDuration } from './duration.js';
import { configFromOptions, withSettings } from './config.js';
import { formatBytes } from '../core/bytes.js';
import { withEngine } from './flags.js';
import { formatQuotas } from './policies.js';
import type { Config } from './settings.js';

const progress = ({ phase, done }: { phase: string; done: number }) => process.stderr.write(`  ${phase}: ${done}\n`);


export function formatGcReport(r: GcReport, dryRun: boolean): string {
  if (!r.ran) return 'another process is collecting garbage; nothing done';
  const verb = dryRun ? 'would remove' : 'removed';
  return [
    `${verb}: ${r.manifestsDeleted} manifests, ${r.linksDeleted} repository links, ${r.blobsDeleted} blobs (${formatBytes(r.bytesFreed)}), ` +
      `${r.orphanObjectsDeleted} orphaned objects (${formatBytes(r.orphanBytesFreed)}), ${r.uploadsExpired} expired uploads`,
    `took ${r.durationMs} ms`,
  ].join('\n');
}

function formatFsck(r: FsckReport): string {
  const lines = [
    `checked ${r.checked.blobs} blobs, ${r.checked.manifests} manifests, ${r.checked.tags} tags, ${r.checked.repositories} repository summaries, ${r.checked.uploads} uploads, ${r.checked.objects} objects`,
  ];
  for (const p of r.problems) lines.push(`${p.repaired ? 'REPAIRED' : 'PROBLEM '} ${p.kind.padEnd(18)} ${p.subject}: ${p.detail}`);
  const open = r.problems.filter((p) => !p.repaired).length;
  lines.push(open === 0 ? (r.problems.length ? `all ${r.problems.length} problems repaired` : 'no problems found') : `${open} problems`);
  return lines.join('\n');
}

function formatUsage(u: Usage): string {
  const rows = u.repositories.map((r) => `${r.name.padEnd(40)} ${String(r.manifests).padStart(9)} ${String(r.tags).padStart(6)} ${String(r.blobs).padStart(7)} ${formatBytes(r.bytes).padStart(11)}`);
  return [
    `${'REPOSITORY'.padEnd(40)} ${'MANIFESTS'.padStart(9)} ${'TAGS'.padStart(6)} ${'BLOBS'.padStart(7)} ${'SIZE'.padStart(11)}`,
    ...rows,
    `total: ${u.blobs} blobs, ${formatBytes(u.storedBytes)} stored (deduplicated), ${formatBytes(u.logicalBytes)} logical`,
  ].join('\n');
}

export function registerMaintenanceCommands(program: Command): void {
  withSettings(program.command('gc').description('collect garbage now: unreferenced blobs, links, orphaned objects, expired uploads'), 'engine')
    .option('--dry-run', 'report what would be removed, remove nothing')
    .addOption(new Option('--grace <duration>', 'keep anything touched more recently than this (default: gc.grace of the configuration, 24h)'))
    .addOption(new Option('--delete-untagged <duration>', 'also delete untagged manifests older than this (default: gc.delete_untagged of the configuration)'))
    .option('--json', 'print the report as JSON')
    .action(async (flags: { dryRun?: boolean; grace?: string; deleteUntagged?: string; json?: boolean }, command: Command) => {
      const { config } = configFromOptions(command.opts());
      await withEngine(config, async ({ registry }) => {
        const report = await registry.collectGarbage({
          graceMs: flags.grace ? parseDuration(flags.grace) : config.gc.grace,
          deleteUntaggedAfterMs: flags.deleteUntagged ? parseDuration(flags.deleteUntagged) : config.gc.delete_untagged,
          dryRun: flags.dryRun,
          onProgress: flags.json ? undefined : progress,
        });
        console.log(flags.json ? JSON.stringify(report) : formatGcReport(report, Boolean(flags.dryRun)));
      });
    });

  withSettings(program.command('fsck').description('check every storage invariant; exit 1 on any problem'), 'engine')
    .option('--full', 're-hash every blob')
    .option('--repair', 'fix what is safe to fix')
    .addOption(new Option('--grace <duration>', 'objects younger than this are not orphans yet').default('24h'))
    .option('--json', 'print the report as JSON')
    .action(async (flags: { full?: boolean; repair?: boolean; grace: string; json?: boolean }, command: Command) => {
      const report = await withEngine(configFromOptions(command.opts()).config, ({ registry }) =>
        registry.fsck({ full: flags.full, repair: flags.repair, graceMs: parseDuration(flags.grace), onProgress: flags.json ? undefined : progress }),
      );
      console.log(flags.json ? JSON.stringify(report) : formatFsck(report));
      if (report.problems.some((p) => !p.repaired)) process.exitCode = 1;
    });

  withSettings(program.command('du').description('storage used per repository and in total'), 'engine')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const [u, quotas] = await withEngine(configFromOptions(command.opts()).config, ({ registry }) => Promise.all([registry.usage(), registry.policies.quotaUsage()]));
      console.log(flags.json ? JSON.stringify({ ...u, quotas }) : formatUsage(u) + (quotas.length ? `\n${formatQuotas(quotas)}` : ''));
    });

  const repo = program.command('repo').description('repository administration');
  withSettings(repo.command('delete').description('delete a repository (garbage collection reclaims its bytes)').argument('<name>'), 'engine').action(
    async (name: string, _flags: unknown, command: Command) => {
      const deleted = await withEngine(configFromOptions(command.opts()).config, ({ registry }) => registry.deleteRepository(parseRepositoryName(name)));
      if (!deleted) throw new Error(`repository ${name} does not exist`);
      console.log(`deleted repository ${name}`);
    },
  );
}
