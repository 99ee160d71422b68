/** What a dispatcher sends events to. */
import type { RegistryEvent } from '../../core/events.js';

/** A failed send after the first `delivered` events were taken (they need not be sent again). */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly delivered = 0,
  ) {
    super(message);
  }
}

export interface EventSink {
  readonly name: string;
  /** Most events in one send (several repositories' queues, each in order). */
  readonly batch: number;
  /** Repositories' queues claimed at once. */
  readonly streams: number;
  /**
   * Sends the events in order; throws a DeliveryError (or any error: none taken) when they were
   * not all taken. `signal` aborts a send in progress (the process is stopping).
   */
  send(events: RegistryEvent[], signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}
