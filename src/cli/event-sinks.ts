/**
 * Events from the configuration: which sinks get what (recorded by every command that changes
 * the store) and how the sinks are reached (delivered by `serve`).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { EventAction, EventRoute, EventRouting } from '../core/events.js';
import type { SinkRunner } from '../backends/events/dispatcher.js';
import { NatsSink } from '../backends/events/nats.js';
import { WebhookSink } from '../backends/events/webhook.js';
import type { Config, SinkConfig } from './settings.js';

/** The sink `--events-webhook` adds: distribution's envelope, every action but pulls. */
const FLAG_SINK = 'webhook';
const FLAG_SINK_ACTIONS: EventAction[] = ['push', 'delete', 'mount'];
const DEFAULTS = { timeoutMs: 5_000, initialMs: 1_000, maxMs: 5 * 60_000, maxAttempts: 20 };

/** Identifies this process in the events it records (distribution's `source.instanceID`). */
const INSTANCE_ID = randomUUID();

function sinksOf(config: Config): SinkConfig[] {
  const sinks = [...(config.events.sinks ?? [])];
  if (config.events.webhook && !sinks.some((s) => s.name === FLAG_SINK)) {
    sinks.push({ name: FLAG_SINK, type: 'webhook', url: config.events.webhook, format: 'distribution', filter: { actions: FLAG_SINK_ACTIONS } });
  }
  return sinks;
}

/** Who gets which events, for the backend to decide inside each change's transaction. */
export function eventRouting(config: Config): EventRouting {
  const port = /:(\d+)$/.exec(config.http.addr)?.[1] ?? '';
  const routes: EventRoute[] = sinksOf(config).map((s) => ({
    sink: s.name,
    filter: { actions: s.filter?.actions, repositories: s.filter?.repositories, mediaTypes: s.filter?.media_types },
  }));
  return { routes, pulls: config.events.pulls, source: { addr: `${hostname()}:${port}`, instanceID: INSTANCE_ID } };
}

/** The configured sinks, ready for the dispatcher. */
export function sinkRunners(config: Config): SinkRunner[] {
  return sinksOf(config).map((s) => {
    const timeoutMs = s.timeout ?? DEFAULTS.timeoutMs;
    const backoff = {
      initialMs: s.backoff?.initial ?? DEFAULTS.initialMs,
      maxMs: s.backoff?.max ?? DEFAULTS.maxMs,
      maxAttempts: s.max_attempts ?? DEFAULTS.maxAttempts,
    };
    const sink =
      s.type === 'webhook'
        ? new WebhookSink({ name: s.name, url: s.url, headers: s.headers ?? {}, format: s.format ?? 'distribution', timeoutMs })
        : new NatsSink({ name: s.name, url: s.url, subject: s.subject!, format: s.format ?? 'cloudevents', timeoutMs, user: s.user, password: s.password, token: s.token });
    return { sink, backoff };
  });
}

