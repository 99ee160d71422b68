/**
 * SIGHUP: build the configuration again (file, environment, flags) and apply what can change
 * without a restart — the access policy (re-read even when its file name is unchanged), the log
 * level and the event sinks. Anything else that differs is logged as needing a restart. A configuration or policy that
 * does not load leaves the running one in place, and the log says why.
 */
import type { Logger } from 'pino';
import type { AccessControl } from '../http/auth/access.js';
import { loadPolicy } from './auth.js';
import type { LoadedConfig } from './config.js';
import { leaves, type Config } from './settings.js';

export interface ReloadContext {
  running: Config;
  load: () => LoadedConfig;
  logger: Logger;
  authorizer?: AccessControl;
  /** Applies the event settings (sinks, the flag's webhook, pulls). */
  applyEvents?: (config: Config) => Promise<void>;
  /** Applies the file's policies (quotas, immutable tags) to the database. */
  applyPolicies?: (config: Config) => Promise<void>;
}

export function watchReloads(context: ReloadContext): void {
  let busy: Promise<void> = Promise.resolve();
  process.on('SIGHUP', () => {
    busy = busy.then(() => reload(context)).catch((err: unknown) => context.logger.error({ err }, 'reload failed'));
  });
}

async function reload(context: ReloadContext): Promise<void> {
  const { logger } = context;
  let next: Config;
  try {
    next = context.load().config;
  } catch (err) {
    logger.error({ reason: (err as Error).message }, 'configuration not reloaded: keeping the running one');
    return;
  }
  const changed: string[] = [];
  const needRestart: string[] = [];
  for (const leaf of leaves()) {
    const before = valueAt(context.running, leaf.path);
    const after = valueAt(next, leaf.path);
    if (JSON.stringify(before) === JSON.stringify(after)) continue;
    (leaf.setting.spec.reloadable ? changed : needRestart).push(leaf.key);
  }
  if (context.authorizer) {
    try {
      context.authorizer.options.policy = await loadPolicy(next.auth.policy);
      if (!changed.includes('auth.policy')) changed.push('auth.policy (re-read)');
    } catch (err) {
      logger.error({ reason: (err as Error).message }, 'access policy not reloaded: keeping the running one');
      return;
    }
  } else if (changed.includes('auth.policy')) {
    changed.splice(changed.indexOf('auth.policy'), 1);
    needRestart.push('auth.policy (access control is off)');
  }
  if (next.log.level !== context.running.log.level) logger.level = next.log.level;
  const eventsChanged = changed.some((key) => key.startsWith('events.'));
  if (eventsChanged && context.applyEvents) await context.applyEvents(next);
  // Always: the file wins over API changes to the same rules on every reload (docs/policies.md).
  if (context.applyPolicies) await context.applyPolicies(next);
  context.running = {
    ...context.running,
    log: { ...context.running.log, level: next.log.level },
    auth: { ...context.running.auth, policy: next.auth.policy },
    events: { ...context.running.events, webhook: next.events.webhook, sinks: next.events.sinks, pulls: next.events.pulls },
    policies: next.policies,
  };
  if (needRestart.length) logger.warn({ settings: needRestart }, 'changed settings take effect at the next restart');
  logger.info({ changed }, 'configuration reloaded');
}

function valueAt(config: Config, path: string[]): unknown {
  return path.reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), config);
}
