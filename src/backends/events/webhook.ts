/**
 * An HTTP endpoint that takes events by POST. Any 2xx or 3xx answer means taken (as distribution
 * counts it); anything else, a timeout or a refused connection is a failed attempt.
 */
import type { RegistryEvent } from '../../core/events.js';
import { CLOUDEVENTS_MEDIA_TYPE, cloudEvent, DISTRIBUTION_MEDIA_TYPE, envelope, type EventFormat } from './formats.js';
import { DeliveryError, type EventSink } from './sink.js';

export interface WebhookOptions {
  name: string;
  url: string;
  headers: Record<string, string>;
  format: EventFormat;
  timeoutMs: number;
}

export class WebhookSink implements EventSink {
  readonly name: string;
  private readonly timeoutMs: number;
  /** CloudEvents in structured mode are one per request; distribution envelopes carry many. */
  readonly batch: number;
  readonly streams = 16;

  constructor(private readonly options: WebhookOptions) {
    this.name = options.name;
    this.timeoutMs = options.timeoutMs;
    this.batch = options.format === 'distribution' ? 100 : 16;
  }

  async send(events: RegistryEvent[], signal: AbortSignal): Promise<void> {
    if (this.options.format === 'distribution') return this.post(DISTRIBUTION_MEDIA_TYPE, envelope(events), 0, signal);
    for (let i = 0; i < events.length; i++) await this.post(CLOUDEVENTS_MEDIA_TYPE, cloudEvent(events[i]!), i, signal);
  }

  private async post(contentType: string, body: unknown, delivered: number, signal: AbortSignal): Promise<void> {
    let response: Response;
    try {
      response = await fetch(this.options.url, {
        method: 'POST',
        headers: { ...this.options.headers, 'Content-Type': contentType },
        body: JSON.stringify(body),
        redirect: 'manual',
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new DeliveryError(`POST ${this.options.url}: ${reason}`, delivered);
    }
    // The body is not needed; reading it frees the connection for reuse.
    await response.arrayBuffer().catch(() => undefined);
    if (response.status >= 400) throw new DeliveryError(`POST ${this.options.url}: HTTP ${response.status}`, delivered);
  }

  async close(): Promise<void> {}
}
