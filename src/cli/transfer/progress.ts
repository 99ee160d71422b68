/**
 * Progress of long work on stderr: on a terminal one line redrawn in place (items, bytes, rate,
 * time left when the total is known); otherwise a plain line every interval, for logs.
 */
import { formatBytes } from '../../core/bytes.js';

export interface Progress {
  item(): void;
  bytes(n: number): void;
  skipped(n: number): void;
  /** Sets the bytes expected in all, for the time left. */
  expect(bytes: number): void;
  /** A message on its own line. */
  log(message: string): void;
  stop(): void;
}

export function createProgress(label: string, stream: NodeJS.WriteStream = process.stderr, intervalMs?: number): Progress {
  const tty = Boolean(stream.isTTY);
  const started = Date.now();
  let items = 0;
  let bytes = 0;
  let skipped = 0;
  let total = 0;
  let drawn = false;
  let stopped = false;
  const line = () => {
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    const rate = bytes / seconds;
    const parts = [`${label}: ${items} items`, `${formatBytes(bytes)} copied`, `${formatBytes(skipped)} skipped`, `${formatBytes(rate)}/s`];
    const left = total - bytes - skipped;
    if (total > 0 && rate > 0 && left > 0) parts.push(`about ${formatSeconds(left / rate)} left`);
    return parts.join(', ');
  };
  const draw = () => {
    if (tty) {
      stream.write(`\r\x1b[K${line()}`);
      drawn = true;
    } else {
      stream.write(`${line()}\n`);
    }
  };
  const timer = setInterval(draw, intervalMs ?? (tty ? 250 : 10_000));
  timer.unref();
  return {
    item: () => void items++,
    bytes: (n) => void (bytes += n),
    skipped: (n) => void (skipped += n),
    expect: (n) => void (total = n),
    log(message) {
      if (tty && drawn) stream.write('\r\x1b[K');
      stream.write(`${message}\n`);
      if (tty && drawn) draw();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      if (tty && drawn) stream.write('\r\x1b[K');
      if (!tty && Date.now() - started > 1000) stream.write(`${line()}\n`);
    },
  };
}

function formatSeconds(s: number): string {
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
