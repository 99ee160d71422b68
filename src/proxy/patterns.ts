/** Repository patterns of an upstream's `repositories` list: `*` one path segment (or part of one), `**` any number. */
export function compilePatterns(patterns: readonly string[] | undefined): (name: string) => boolean {
  if (!patterns) return () => true;
  const regexes = patterns.map((pattern) => {
    const body = pattern
      .split('/')
      .map((segment) => (segment === '**' ? '\u0000' : segment.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')))
      .join('/')
      // `**` matches zero or more whole segments, with the slashes around it.
      .replace(/\u0000\//g, '(?:[^/]+/)*')
      .replace(/\/\u0000/g, '(?:/[^/]+)*')
      .replace(/\u0000/g, '.*');
    return new RegExp(`^${body}$`);
  });
  return (name) => regexes.some((r) => r.test(name));
}
