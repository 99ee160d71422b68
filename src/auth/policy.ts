/**
 * The access policy: which users, groups and anonymous callers may pull, push and delete in
 * which repositories. Loaded from the YAML file given with `--config` (format: docs/auth.md).
 *
 * Rules map repository patterns to actions; `*` matches one path segment (or, inside a segment,
 * any characters but `/`), `**` any number of segments, zero included. For a repository only
 * the most specific matching rule applies: patterns are compared segment by segment from the
 * left, a literal segment beating a partial wildcard (`app-*`), beating `*`, beating `**`; a
 * pattern that ends where another goes on with `**` is the more specific one.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { CatalogFilter } from '../core/interfaces.js';
import { RepositoryPattern } from '../core/patterns.js';
import { ACTIONS, type Action } from './actions.js';

const actionList = z
  .union([z.array(z.string()), z.string()])
  .transform((value, ctx) => {
    const items = (Array.isArray(value) ? value : value.split(',')).map((s) => s.trim()).filter(Boolean);
    const out = new Set<Action>();
    for (const item of items) {
      if (item === '*') ACTIONS.forEach((a) => out.add(a));
      else if ((ACTIONS as readonly string[]).includes(item)) out.add(item as Action);
      else ctx.addIssue({ code: 'custom', message: `unknown action ${JSON.stringify(item)} (use pull, push, delete or *)` });
    }
    return [...out];
  });

const ruleSchema = z
  .object({
    repository: z.string().min(1),
    anonymous: actionList.optional(),
    authenticated: actionList.optional(),
    users: z.record(z.string(), actionList).optional(),
    groups: z.record(z.string(), actionList).optional(),
  })
  .strict();

const configSchema = z
  .object({
    groups: z.record(z.string(), z.array(z.string())).optional(),
    admins: z
      .object({ users: z.array(z.string()).optional(), groups: z.array(z.string()).optional() })
      .strict()
      .optional(),
    rules: z.array(ruleSchema).optional(),
  })
  .strict();

export type PolicyConfig = z.input<typeof configSchema>;

interface Rule {
  pattern: string;
  segments: string[];
  matcher: RepositoryPattern;
  anonymous: Set<Action>;
  authenticated: Set<Action>;
  users: Map<string, Set<Action>>;
  groups: Map<string, Set<Action>>;
}

const NO_ACTIONS: ReadonlySet<Action> = new Set();
const ALL_ACTIONS: ReadonlySet<Action> = new Set(ACTIONS);

export class Policy {
  private constructor(
    /** Sorted most specific first. */
    private readonly rules: Rule[],
    private readonly memberOf: Map<string, string[]>,
    private readonly adminUsers: Set<string>,
    private readonly adminGroups: Set<string>,
    /** The policy of `--htpasswd` alone: every authenticated user is an admin. */
    private readonly authenticatedAreAdmins: boolean,
  ) {}

  /** Every authenticated user may do everything; anonymous callers nothing. */
  static authenticatedFullAccess(): Policy {
    return new Policy([], new Map(), new Set(), new Set(), true);
  }

  /** Parses and validates the YAML text of a policy file; errors name the offending key. */
  static fromYaml(text: string, source = 'config'): Policy {
    let raw: unknown;
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new Error(`${source}: invalid YAML: ${(err as Error).message}`);
    }
    return Policy.fromConfig(raw, source);
  }

  static fromConfig(raw: unknown, source = 'config'): Policy {
    const parsed = configSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new Error(`${source}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    }
    const config = parsed.data;
    const memberOf = new Map<string, string[]>();
    for (const [group, members] of Object.entries(config.groups ?? {})) {
      for (const user of members) memberOf.set(user, [...(memberOf.get(user) ?? []), group]);
    }
    const seen = new Set<string>();
    const rules = (config.rules ?? []).map((r, i) => {
      const where = `${source}: rules[${i}]`;
      if (seen.has(r.repository)) throw new Error(`${where}: a rule for ${JSON.stringify(r.repository)} already exists`);
      seen.add(r.repository);
      for (const group of Object.keys(r.groups ?? {})) {
        if (!config.groups?.[group]) throw new Error(`${where}: group ${JSON.stringify(group)} is not defined under groups`);
      }
      return compileRule(r.repository, where, {
        anonymous: new Set(r.anonymous ?? []),
        authenticated: new Set(r.authenticated ?? []),
        users: new Map(Object.entries(r.users ?? {}).map(([k, v]) => [k, new Set(v)])),
        groups: new Map(Object.entries(r.groups ?? {}).map(([k, v]) => [k, new Set(v)])),
      });
    });
    rules.sort(compareSpecificity);
    for (const group of config.admins?.groups ?? []) {
      if (!config.groups?.[group]) throw new Error(`${source}: admins.groups: group ${JSON.stringify(group)} is not defined under groups`);
    }
    return new Policy(rules, memberOf, new Set(config.admins?.users ?? []), new Set(config.admins?.groups ?? []), false);
  }

  /** Admins may do everything everywhere and see the whole catalog. `null` is the anonymous caller. */
  isAdmin(user: string | null): boolean {
    if (user === null) return false;
    if (this.authenticatedAreAdmins || this.adminUsers.has(user)) return true;
    return (this.memberOf.get(user) ?? []).some((g) => this.adminGroups.has(g));
  }

  /** The rule that decides for `name`: the most specific one that matches. */
  ruleFor(name: string): string | undefined {
    return this.match(name)?.pattern;
  }

  /** The actions `user` (null: anonymous) may perform on repository `name`. */
  actions(user: string | null, name: string): ReadonlySet<Action> {
    if (this.isAdmin(user)) return ALL_ACTIONS;
    const rule = this.match(name);
    return rule ? this.ruleActions(rule, user) : NO_ACTIONS;
  }

  /** What one rule grants `user` (null: anonymous). */
  private ruleActions(rule: Rule, user: string | null): Set<Action> {
    const out = new Set(rule.anonymous);
    if (user !== null) {
      rule.authenticated.forEach((a) => out.add(a));
      rule.users.get(user)?.forEach((a) => out.add(a));
      for (const group of this.memberOf.get(user) ?? []) rule.groups.get(group)?.forEach((a) => out.add(a));
    }
    return out;
  }

  allows(user: string | null, name: string, action: Action): boolean {
    return this.actions(user, name).has(action);
  }

  /** True for the policy of `--htpasswd` alone, where every user the file knows is an admin. */
  get everyUserIsAdmin(): boolean {
    return this.authenticatedAreAdmins;
  }

  /**
   * Names `user` may possibly pull, for the backend to narrow a catalog with (null: every name).
   * It is a superset: a name is pullable only if its most specific rule grants pull, that rule's
   * pattern matches it, and so the name equals the pattern or starts with its literal part before
   * the first wildcard. `actions()` still decides for each name.
   */
  pullFilter(user: string | null): CatalogFilter | null {
    if (this.isAdmin(user)) return null;
    const names = new Set<string>();
    const prefixes = new Set<string>();
    for (const rule of this.rules) {
      if (!this.ruleActions(rule, user).has('pull')) continue;
      const star = rule.pattern.indexOf('*');
      if (star === -1) {
        names.add(rule.pattern);
        continue;
      }
      // `a/**` matches `a` itself: the prefix stops before the slash.
      const prefix = rule.pattern.slice(0, star).replace(/\/$/, '');
      if (prefix === '') return null;
      prefixes.add(prefix);
    }
    return { names: [...names], prefixes: [...prefixes] };
  }

  /** Whether some rule lets anonymous callers pull (then they may list the catalog, filtered). */
  anonymousMayPullSomething(): boolean {
    return this.rules.some((r) => r.anonymous.has('pull'));
  }

  private match(name: string): Rule | undefined {
    return this.rules.find((r) => r.matcher.matches(name));
  }
}

function compileRule(pattern: string, where: string, grants: Pick<Rule, 'anonymous' | 'authenticated' | 'users' | 'groups'>): Rule {
  const matcher = new RepositoryPattern(pattern, where);
  return { pattern, segments: matcher.segments, matcher, ...grants };
}

/** 0 literal, 1 partial wildcard, 2 `*`, 3 `**`; a pattern that has ended ranks 2.5 (see the header). */
function rank(segment: string | undefined): number {
  if (segment === undefined) return 2.5;
  if (segment === '**') return 3;
  if (segment === '*') return 2;
  return segment.includes('*') ? 1 : 0;
}

function compareSpecificity(a: Rule, b: Rule): number {
  const length = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < length; i++) {
    const d = rank(a.segments[i]) - rank(b.segments[i]);
    if (d !== 0) return d;
  }
  const literal = (r: Rule) => r.pattern.replace(/\*/g, '').length;
  return literal(b) - literal(a);
}
