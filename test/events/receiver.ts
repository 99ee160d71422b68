/**
 * A webhook endpoint for tests: records every event it takes (distribution envelopes and
 * CloudEvents), and can be down (port closed), failing (500) or hanging (never answers).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedEvent {
  id: string;
  action: string;
  timestamp: string;
  target: { repository: string; mediaType?: string; digest?: string; size?: number; length?: number; url?: string; tag?: string; fromRepository?: string };
  request: { id?: string; addr?: string; host?: string; method?: string; useragent?: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

export type Mode = 'ok' | 'fail' | 'hang';

export class Receiver {
  /** Every event taken, in arrival order (duplicates included). */
  readonly events: ReceivedEvent[] = [];
  /** Raw bodies of CloudEvents taken. */
  readonly cloudEvents: Record<string, unknown>[] = [];
  readonly contentTypes = new Set<string>();
  /** Authorization headers of the requests taken. */
  readonly authorizations = new Set<string>();
  mode: Mode = 'ok';
  /** Milliseconds to wait before answering a request it takes. */
  delayMs = 0;
  /** Requests held open in 'hang' mode. */
  readonly hanging: ServerResponse[] = [];
  requests = 0;
  private server: Server | undefined;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/events`;
  }

  /** Listens (again, on the same port once it had one). */
  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Closes the port: deliveries are refused until start() again. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const res of this.hanging.splice(0)) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    this.requests++;
    if (this.mode === 'hang') {
      this.hanging.push(res);
      return;
    }
    if (this.mode === 'fail') {
      res.writeHead(500).end();
      return;
    }
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const type = req.headers['content-type'] ?? '';
    this.contentTypes.add(type);
    this.authorizations.add(req.headers.authorization ?? '');
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { events?: ReceivedEvent[]; data?: ReceivedEvent };
    if (body.events) this.events.push(...body.events);
    else if (body.data) {
      this.cloudEvents.push(body as Record<string, unknown>);
      this.events.push(body.data);
    }
    res.writeHead(200).end();
  }

  /** Distinct events in first-arrival order. */
  distinct(): ReceivedEvent[] {
    const seen = new Set<string>();
    return this.events.filter((e) => !seen.has(e.id) && seen.add(e.id));
  }

  /** Waits until `done` holds for the events taken (polling), or fails with what arrived. */
  async waitFor(done: (events: ReceivedEvent[]) => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.distinct())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${this.distinct().length} events`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Push events by `repository:tag` → digest, from events taken. */
export function pushes(events: ReceivedEvent[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const e of events) if (e.action === 'push' && e.target.tag) map.set(`${e.target.repository}:${e.target.tag}`, e.target.digest!);
  return map;
}
