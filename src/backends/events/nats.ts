/**
 * NATS JetStream: each event is one message on the subject, published with the event's id as
 * `Nats-Msg-Id`, so the stream drops a redelivered event inside its duplicate window. The
 * stream itself is the operator's (it decides retention and replicas); a publish to a subject no
 * stream takes fails and is retried like any other failure.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { RegistryEvent } from '../../core/events.js';
import { cloudEvent, envelope, type EventFormat } from './formats.js';
import { DeliveryError, type EventSink } from './sink.js';

export interface NatsOptions {
  name: string;
  /** nats://HOST:PORT (comma-separated for a cluster); credentials in the URL or as user/password. */
  url: string;
  subject: string;
  format: EventFormat;
  timeoutMs: number;
  user?: string;
  password?: string;
  token?: string;
}

export class NatsSink implements EventSink {
  readonly name: string;
  private readonly timeoutMs: number;
  readonly batch = 100;
  readonly streams = 16;
  private connection: Promise<{ nc: NatsConnection; js: JetStreamClient }> | undefined;

  constructor(private readonly options: NatsOptions) {
    this.name = options.name;
    this.timeoutMs = options.timeoutMs;
  }

  /** Connects on first use and again after the connection closed (the client reconnects by itself meanwhile). */
  private connect(): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
    if (!this.connection) {
      const { url, user, password, token, timeoutMs } = this.options;
      // The client libraries load on first use: a server without a NATS sink never holds them.
      const attempt = Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]).then(async ([{ connect }, { jetstream }]) => {
        const nc = await connect({
          servers: url.split(',').map((s) => s.trim()),
          timeout: timeoutMs,
          maxReconnectAttempts: -1,
          ...(user !== undefined ? { user, pass: password } : {}),
          ...(token !== undefined ? { token } : {}),
        });
        void nc.closed().then(() => {
          if (this.connection === attempt) this.connection = undefined;
        });
        return { nc, js: jetstream(nc, { timeout: timeoutMs }) };
      });
      attempt.catch(() => {
        if (this.connection === attempt) this.connection = undefined;
      });
      this.connection = attempt;
    }
    return this.connection;
  }

  async send(events: RegistryEvent[], signal: AbortSignal): Promise<void> {
    let js: JetStreamClient;
    try {
      js = (await this.connect()).js;
    } catch (err) {
      throw new DeliveryError(`NATS ${this.options.url}: ${(err as Error).message}`);
    }
    // One at a time: each is acknowledged by the stream before the next, so the order holds.
    for (let i = 0; i < events.length; i++) {
      if (signal.aborted) throw new DeliveryError('stopped', i);
      const event = events[i]!;
      const body = this.options.format === 'cloudevents' ? cloudEvent(event) : envelope([event]);
      try {
        await js.publish(this.options.subject, JSON.stringify(body), { msgID: event.id, timeout: this.timeoutMs });
      } catch (err) {
        throw new DeliveryError(`NATS publish to ${this.options.subject}: ${(err as Error).message}`, i);
      }
    }
  }

  async close(): Promise<void> {
    const pending = this.connection;
    this.connection = undefined;
    if (pending) await pending.then(({ nc }) => nc.drain()).catch(() => undefined);
  }
}
