/**
 * Policies from the configuration file (applied at start and on SIGHUP) and `portfolio policy …`,
 * which manages them at run time in the database every replica reads (docs/policies.md).
 */
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { formatBytes } from '../core/bytes.js';
import { parsePolicyRule, type PolicyAdmin, type PolicyRule, type QuotaUsage, type RetentionReport, type StoredPolicy } from '../core/policies.js';
import type { SqlRegistry } from '../backends/sql/registry.js';
import { configFromOptions, withSettings } from './config.js';
import { withEngine } from './flags.js';
import type { Config } from './settings.js';

/** The rules the configuration file declares, in file order. */
export function configPolicies(config: Config): PolicyRule[] {
  return [...(config.policies.quotas ?? []), ...(config.policies.immutableTags ?? []), ...(config.policies.retention ?? [])];
}

/** Makes the database's `config` rules those of the file; logs what changed. */
export async function applyConfigPolicies(admin: PolicyAdmin, config: Config, logger: Logger): Promise<void> {
  const { added, removed } = await admin.applyConfigPolicies(configPolicies(config));
  if (added || removed) logger.info({ added, removed }, 'policies from the configuration file applied');
}

/** Retention before each collection pass (the same schedule, under the same lease), so collection reclaims what it deleted. */
export async function runScheduledRetention(registry: SqlRegistry, logger: Logger): Promise<void> {
  try {
    const report = await registry.retention();
    if (report.deletions.length || report.failed.length) {
      logger.info({ deleted: report.deletions.length - report.failed.length, failed: report.failed }, 'retention deleted tags and manifests');
    }
  } catch (err) {
    logger.error({ err }, 'retention failed');
  }
}

export function formatRetention(report: RetentionReport, dryRun: boolean): string {
  if (!report.ran) return 'another process is collecting garbage or applying retention; nothing done';
  const failed = new Set(report.failed.map((f) => f.deletion));
  const lines = report.deletions.map(
    (d) =>
      `${failed.has(d) ? 'FAILED ' : dryRun ? 'would delete ' : 'deleted '}${d.tag ? `tag ${d.repository}:${d.tag}` : `manifest ${d.repository}@${d.digest}`}  [${d.rule}] ${d.reason}`,
  );
  for (const f of report.failed) lines.push(`  ${f.deletion.repository} ${f.deletion.tag ?? f.deletion.digest}: ${f.error}`);
  lines.push(`${report.deletions.length - report.failed.length} deletions${dryRun ? ' planned' : ''}${report.failed.length ? `, ${report.failed.length} failed` : ''}`);
  return lines.join('\n');
}

export function formatQuotas(quotas: QuotaUsage[]): string {
  if (quotas.length === 0) return 'no quotas';
  return [
    `${'QUOTA SCOPE'.padEnd(40)} ${'USED'.padStart(11)} ${'LIMIT'.padStart(11)} ${'USED%'.padStart(6)}`,
    ...quotas.map(
      (q) =>
        `${q.scope.padEnd(40)} ${formatBytes(q.used, true).padStart(11)} ${formatBytes(q.limit, true).padStart(11)} ${(q.limit ? ((100 * q.used) / q.limit).toFixed(1) : '-').padStart(6)}`,
    ),
  ].join('\n');
}

function describe(p: StoredPolicy): string {
  const r = p.rule;
  const what =
    r.kind === 'quota'
      ? `quota ${r.scope} limit ${formatBytes(r.limit, true)}`
      : r.kind === 'immutable'
        ? `immutable tags ${r.tags} in ${r.repositories}`
        : `retention in ${r.repositories}: ${JSON.stringify({ keepLast: r.keepLast, keepTags: r.keepTags, keepPulledWithin: r.keepPulledWithin, deleteUntaggedAfter: r.deleteUntaggedAfter })}`;
  return `${p.id.padEnd(50)} ${p.source.padEnd(7)} ${what}`;
}

export function registerPolicyCommands(program: Command): void {
  const retention = program.command('retention').description('delete tags and manifests as the retention policies say (docs/policies.md)');
  for (const [name, dryRun, help] of [
    ['plan', true, 'list every tag and manifest retention would delete now, and the rule that decided; delete nothing'],
    ['run', false, 'delete them now, as a client would (events are recorded; garbage collection reclaims the bytes)'],
  ] as const) {
    withSettings(retention.command(name).description(help), 'engine')
      .option('--json', 'print JSON')
      .action(async (flags: { json?: boolean }, command: Command) => {
        const report = await withEngine(configFromOptions(command.opts()).config, ({ registry }) => registry.retention({ dryRun }));
        console.log(flags.json ? JSON.stringify(report) : formatRetention(report, dryRun));
        if (report.failed.length) process.exitCode = 1;
      });
  }

  const policy = program.command('policy').description('quotas and immutable tags, stored in the database every replica reads (docs/policies.md)');
  withSettings(policy.command('list').description('every policy with its id and source (config or api)'), 'engine')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const list = await withEngine(configFromOptions(command.opts()).config, ({ registry }) => registry.policies.listPolicies());
      console.log(flags.json ? JSON.stringify(list) : list.length ? list.map(describe).join('\n') : 'no policies');
    });
  const put = async (input: Record<string, string>, command: Command) => {
    const rule = parsePolicyRule(input, 'policy');
    const stored = await withEngine(configFromOptions(command.opts()).config, ({ registry }) => registry.policies.putPolicy(rule, 'api'));
    console.log(`set ${describe(stored)}`);
  };
  withSettings(policy.command('quota').description('set a storage quota on a repository or namespace pattern').argument('<scope>', 'e.g. team-a/**').argument('<limit>', 'e.g. 10GiB'), 'engine').action(
    (scope: string, limit: string, _flags: unknown, command: Command) => put({ kind: 'quota', scope, limit }, command),
  );
  withSettings(
    policy.command('immutable').description('make matching tags immutable').argument('<repositories>', 'a repository pattern, e.g. team-a/**').argument('<tags>', 'a tag pattern, e.g. v*'),
    'engine',
  ).action((repositories: string, tags: string, _flags: unknown, command: Command) => put({ kind: 'immutable', repositories, tags }, command));
  withSettings(policy.command('delete').description('remove a policy by its id (as `policy list` shows it)').argument('<id>'), 'engine').action(
    async (id: string, _flags: unknown, command: Command) => {
      const deleted = await withEngine(configFromOptions(command.opts()).config, ({ registry }) => registry.policies.deletePolicy(id));
      if (!deleted) throw new Error(`no policy ${id}`);
      console.log(`deleted ${id}`);
    },
  );
  withSettings(policy.command('apply').description('apply the configuration file’s policies now, as serve does at start and on SIGHUP'), 'engine').action(
    async (_flags: unknown, command: Command) => {
      const { config } = configFromOptions(command.opts());
      const result = await withEngine(config, ({ registry }) => registry.policies.applyConfigPolicies(configPolicies(config)));
      console.log(`applied: ${result.added} added or changed, ${result.removed} removed`);
    },
  );
  withSettings(policy.command('usage').description('used bytes and limit per quota scope'), 'engine')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const quotas = await withEngine(configFromOptions(command.opts()).config, ({ registry }) => registry.policies.quotaUsage());
      console.log(flags.json ? JSON.stringify({ quotas }) : formatQuotas(quotas));
    });
}
