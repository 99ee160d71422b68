/**
 * The logger of `serve`: JSON lines for machines (log collectors, the test suite) and one
 * readable line per record for a person at a terminal. Text is the JSON record re-read and
 * printed as `TIME LEVEL message key=value …`, so both formats carry the same fields. A page of
 * code rather than pino-pretty: no dozen extra packages, no transport worker thread, and records
 * stay on one line (pino-pretty prints fields on lines of their own unless told otherwise).
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

/** Text on a terminal, JSON otherwise (a pipe, a file, a container's log driver). */
export function defaultLogFormat(stdoutIsTty: boolean | undefined = process.stdout.isTTY): LogFormat {
  return stdoutIsTty ? 'text' : 'json';
}

export function createLogger(level: string, format: LogFormat): Logger {
  const options = { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime };
  // Asynchronous writes: at the default level every request logs a line, and a write system call
  // per line costs more than the rest of a manifest GET's logging. Lines logged while a write is
  // in flight go out together in the next one; what is pending is flushed synchronously on exit.
  const out = pino.destination({ dest: 1, minLength: 0, sync: false });
  if (format === 'json') return pino(options, out);
  const colors = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  return pino(options, textStream(out, colors));
}

function textStream(out: DestinationStream & { flush?(cb: (err?: Error) => void): void }, colors: boolean): DestinationStream {
  return {
    write: (line: string) => out.write(formatRecord(line, colors)),
    ...(out.flush ? { flush: (cb: (err?: Error) => void) => out.flush!(cb) } : {}),
  };
}

const LEVELS: Record<number, { name: string; color: number }> = {
  10: { name: 'TRACE', color: 90 },
  20: { name: 'DEBUG', color: 36 },
  30: { name: 'INFO', color: 32 },
  40: { name: 'WARN', color: 33 },
  50: { name: 'ERROR', color: 31 },
  60: { name: 'FATAL', color: 35 },
};

interface ErrorRecord {
  type?: string;
  message?: string;
  stack?: string;
}

/** One JSON record → `HH:MM:SS.mmm LEVEL msg key=value …\n` (an error's stack follows, indented). */
export function formatRecord(line: string, colors = false): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const { level, time, msg, err, ...fields } = record;
  const paint = (code: number, text: string) => (colors ? `\x1b[${code}m${text}\x1b[0m` : text);
  const known = typeof level === 'number' ? LEVELS[level] : undefined;
  const parts = [
    paint(90, clock(time)),
    paint(known?.color ?? 0, (known?.name ?? String(level)).padEnd(5)),
    typeof msg === 'string' ? (colors ? `\x1b[1m${msg}\x1b[0m` : msg) : '',
  ];
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) parts.push(`${paint(90, `${key}=`)}${formatValue(value)}`);
  }
  let stack = '';
  if (err && typeof err === 'object') {
    const e = err as ErrorRecord;
    parts.push(`${paint(90, 'err=')}${formatValue(e.message ?? e.type ?? 'error')}`);
    if (e.stack) stack = e.stack.split('\n').slice(1).map((l) => `    ${l.trim()}\n`).join('');
  }
  return `${parts.filter(Boolean).join(' ')}\n${stack}`;
}

function clock(time: unknown): string {
  const date = typeof time === 'string' || typeof time === 'number' ? new Date(time) : new Date();
  if (Number.isNaN(date.getTime())) return String(time);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

/** Bare when unambiguous, JSON-quoted when the value has spaces, quotes or `=`; at most 3 decimals. */
function formatValue(value: unknown): string {
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Number(value.toFixed(3)));
  if (typeof value === 'string') return value !== '' && /^[^\s"'=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}
