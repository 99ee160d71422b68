/** Parses `90`, `90s`, `15m`, `24h` or `7d` into milliseconds (a bare number is seconds). */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new Error(`invalid duration ${JSON.stringify(value)} (examples: 30s, 15m, 24h)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(m[1]) * scale);
}

/** Parses `512`, `10k`, `100M`, `5G` (binary units) into bytes. */
export function parseSize(value: string): number {
  const m = /^(\d+)([kKmMgGtT]i?[bB]?)?$/.exec(value.trim());
  if (!m) throw new Error(`invalid size ${JSON.stringify(value)} (examples: 512M, 10G)`);
  const unit = (m[2] ?? '').charAt(0).toLowerCase();
  const scale = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[unit as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * scale;
}

/** `50/s` or `50`: requests per second. */
export function parseRate(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(?:\/s)?$/.exec(value.trim());
  if (!m || Number(m[1]) <= 0) throw new Error(`invalid rate ${JSON.stringify(value)} (example: 50/s)`);
  return Number(m[1]);
}

/** `N/DURATION`: N failed logins in a burst, all back after DURATION. */
export function parseLoginFailures(value: string): { failures: number; periodMs: number } {
  const slash = value.indexOf('/');
  const failures = Number(value.slice(0, slash));
  const periodMs = slash === -1 ? NaN : parseDuration(value.slice(slash + 1));
  if (!Number.isInteger(failures) || failures < 1 || !(periodMs > 0)) throw new Error(`invalid login failures ${JSON.stringify(value)} (example: 20/1m)`);
  return { failures, periodMs };
}
