/** An upstream's `repositories` list: the registry's repository patterns (`*` one segment, `**` any number). */
import { RepositoryPattern } from '../core/patterns.js';

/** A test for names below the prefix; no list lets everything through. Throws on a malformed pattern. */
export function compilePatterns(patterns: readonly string[] | undefined, where = 'proxy repositories'): (name: string) => boolean {
  if (!patterns) return () => true;
  const compiled = patterns.map((pattern) => new RepositoryPattern(pattern, where));
  return (name) => compiled.some((p) => p.matches(name));
}
