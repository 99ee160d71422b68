/**
 * The two wire formats a sink can speak: CNCF distribution's notification envelope (so existing
 * consumers work unchanged) and CloudEvents 1.0 in structured JSON mode.
 */
import type { RegistryEvent } from '../../core/events.js';

export const EVENT_FORMATS = ['distribution', 'cloudevents'] as const;
export type EventFormat = (typeof EVENT_FORMATS)[number];

export const DISTRIBUTION_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';
export const CLOUDEVENTS_MEDIA_TYPE = 'application/cloudevents+json';

/** An event as one CloudEvent: the distribution event is its data, its id the CloudEvent's id. */
export function cloudEvent(event: RegistryEvent): Record<string, unknown> {
  const { target } = event;
  const subject = target.tag ? `${target.repository}:${target.tag}` : target.digest ? `${target.repository}@${target.digest}` : target.repository;
  return {
    specversion: '1.0',
    id: event.id,
    source: `/portfolio/${event.source.instanceID || 'registry'}`,
    type: `dev.portfolio.registry.${event.action}`,
    subject,
    time: event.timestamp,
    datacontenttype: 'application/json',
    data: event,
  };
}

/** A distribution envelope around events (several at once is allowed, and cheaper). */
export function envelope(events: RegistryEvent[]): { events: RegistryEvent[] } {
  return { events };
}
