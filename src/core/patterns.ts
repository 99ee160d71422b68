/**
 * Repository patterns, as the access policy, event filters and (later) other policies write them:
 * `*` matches within one path segment, `**` as a whole segment matches any number of segments
 * (`team-a/**` matches `team-a/x` and `team-a/x/y`).
 */
export class RepositoryPattern {
  readonly segments: string[];
  private readonly matchers: (RegExp | null)[];

  /** Throws an Error starting with `where` when the pattern is malformed. */
  constructor(
    readonly pattern: string,
    where: string,
  ) {
    const segments = pattern.split('/');
    if (segments.some((s) => s === '')) throw new Error(`${where}: repository pattern ${JSON.stringify(pattern)} has an empty path segment`);
    // Each `**` multiplies the matching work by the name's depth; a handful is plenty.
    if (segments.filter((s) => s === '**').length > 4) throw new Error(`${where}: repository pattern ${JSON.stringify(pattern)} has more than four **`);
    this.matchers = segments.map((s) => {
      if (s === '**') return null;
      if (s.includes('**')) throw new Error(`${where}: ** must be a whole path segment in ${JSON.stringify(pattern)}`);
      if (!/^[a-z0-9._*-]+$/.test(s)) throw new Error(`${where}: invalid characters in repository pattern ${JSON.stringify(pattern)}`);
      const body = s.split('*').map((part) => part.replace(/[.]/g, '\\.')).join('[^/]*');
      return new RegExp(`^${body}$`);
    });
    this.segments = segments;
  }

  matches(name: string): boolean {
    return this.matchFrom(0, name.split('/'), 0);
  }

  private matchFrom(pi: number, name: string[], ni: number): boolean {
    if (pi === this.segments.length) return ni === name.length;
    if (this.segments[pi] === '**') {
      for (let k = ni; k <= name.length; k++) if (this.matchFrom(pi + 1, name, k)) return true;
      return false;
    }
    if (ni === name.length) return false;
    return this.matchers[pi]!.test(name[ni]!) && this.matchFrom(pi + 1, name, ni + 1);
  }
}

/** A shell-style pattern for other strings (media types, tags): `*` matches any run of characters. */
export function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*')}$`);
}
