/**
 * Bytes in binary units with one decimal, as people read them: `3.0 MiB` in reports and progress
 * lines; with `trim`, a whole number drops its `.0` (`10 GiB`), for sentences like quota messages.
 */
export function formatBytes(n: number, trim = false): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  const text = v.toFixed(1);
  return `${trim ? text.replace(/\.0$/, '') : text} ${units[i]}`;
}
