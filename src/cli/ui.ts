/** Wires the web interface: its JSON API over the engine's read queries, and the built files. */
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Browse } from '../core/browse.js';
import type { SinkBacklog } from '../core/events.js';
import type { ImmutableRule, PolicyAdmin } from '../core/policies.js';
import { Sessions } from '../http/api/sessions.js';
import type { ApiOptions, GcStatus } from '../http/api/api.js';
import { UiAssets } from '../http/ui.js';
import type { Config } from './settings.js';

/** Where `npm run build` puts the interface (dist/ui, beside dist/src). */
export const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

export function uiFrom(
  config: Config,
  engine: { browse: Browse; eventBacklog(): Promise<SinkBacklog[]>; policies: PolicyAdmin },
  logger: Logger,
  gcStatus: () => GcStatus | null,
): { api?: ApiOptions; ui?: UiAssets } {
  if (!config.ui.enabled) return {};
  const api: ApiOptions = {
    browse: engine.browse,
    sessions: new Sessions(config.ui.session_ttl),
    eventBacklog: () => engine.eventBacklog(),
    immutableRules: async () => (await engine.policies.listPolicies()).map((p) => p.rule).filter((r): r is ImmutableRule => r.kind === 'immutable'),
    quotas: () => engine.policies.quotaUsage(),
    gcStatus,
  };
  try {
    return { api, ui: new UiAssets(UI_DIR) };
  } catch (err) {
    logger.warn({ dir: UI_DIR, err: (err as Error).message }, 'the web interface is not built (npm run build): serving its API only');
    return { api };
  }
}
