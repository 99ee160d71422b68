/** Small formatting helpers shared by the pages. */

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function when(iso: string | null): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

export function shortDigest(digest: string): string {
  const [alg, hex] = digest.split(':');
  return hex ? `${alg}:${hex.slice(0, 12)}` : digest;
}

/** Hash routes: #/, #/r/<name>, #/m/<name>@<reference>, #/usage, #/login. */
export const href = {
  repositories: () => '#/',
  repository: (name: string) => `#/r/${name}`,
  manifest: (name: string, reference: string) => `#/m/${name}@${reference}`,
  usage: () => '#/usage',
  login: () => '#/login',
};
