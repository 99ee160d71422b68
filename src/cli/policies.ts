/**
 * Policies from the configuration file (applied at start and on SIGHUP) and `portfolio policy …`,
 * which manages them at run time in the database every replica reads (docs/policies.md).
 */
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { humanBytes, parsePolicyRule, type PolicyAdmin, type PolicyRule, type QuotaUsage, type StoredPolicy } from '../core/policies.js';
import { configFromOptions, withSettings } from './config.js';
import { openEngine, type Engine } from './engine.js';
import { engineFrom } from './flags.js';
import type { Config } from './settings.js';

/** The rules the configuration file declares, in file order. */
export function configPolicies(config: Config): PolicyRule[] {
  return [...(config.policies.quotas ?? []), ...(config.policies.immutableTags ?? [])];
}

/** Makes the database's `config` rules those of the file; logs what changed. */
export async function applyConfigPolicies(admin: PolicyAdmin, config: Config, logger: Logger): Promise<void> {
  const { added, removed } = await admin.applyConfigPolicies(configPolicies(config));
  if (added || removed) logger.info({ added, removed }, 'policies from the configuration file applied');
}

async function withEngine<T>(config: Config, work: (engine: Engine) => Promise<T>): Promise<T> {
  const engine = await openEngine(engineFrom(config, true));
  try {
    return await work(engine);
  } finally {
    await engine.registry.close();
  }
}

export function formatQuotas(quotas: QuotaUsage[]): string {
  if (quotas.length === 0) return 'no quotas';
  return [
    `${'QUOTA SCOPE'.padEnd(40)} ${'USED'.padStart(11)} ${'LIMIT'.padStart(11)} ${'USED%'.padStart(6)}`,
    ...quotas.map(
      (q) =>
        `${q.scope.padEnd(40)} ${humanBytes(q.used).padStart(11)} ${humanBytes(q.limit).padStart(11)} ${(q.limit ? ((100 * q.used) / q.limit).toFixed(1) : '-').padStart(6)}`,
    ),
  ].join('\n');
}

function describe(p: StoredPolicy): string {
  const what = p.rule.kind === 'quota' ? `quota ${p.rule.scope} limit ${humanBytes(p.rule.limit)}` : `immutable tags ${p.rule.tags} in ${p.rule.repositories}`;
  return `${p.id.padEnd(50)} ${p.source.padEnd(7)} ${what}`;
}

export function registerPolicyCommands(program: Command): void {
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
