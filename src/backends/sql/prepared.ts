/**
 * Queries that Kysely builds and compiles once per dialect and then runs many times with new
 * values (Kysely's "split build, compile and execute" recipe). Building and compiling a query
 * costs ~25 µs, several times what SQLite needs to run most of the registry's statements, so the
 * statements on the push and pull paths are prepared.
 *
 * `build` receives stand-ins for its arguments; each must reach the SQL as a bound parameter,
 * and the SQL text must not depend on the arguments' values (no `$if` on an argument).
 */
import type { Compilable, QueryResult } from 'kysely';
import type { Dialect } from './schema.js';
import type { Executor } from './database.js';

const STAND_IN = '\u0000portfolio-argument-';

interface Template {
  sql: CompiledFrom;
  /** Per parameter: the argument it takes, or -1 for a constant of the query. */
  slots: number[];
}

type CompiledFrom = ReturnType<Compilable<unknown>['compile']>;

export class Prepared<A extends unknown[], R> {
  private readonly templates = new Map<Dialect, Template>();

  constructor(private readonly build: (exec: Executor, postgres: boolean, ...args: A) => Compilable<R>) {}

  async execute(exec: Executor, dialect: Dialect, ...args: A): Promise<QueryResult<R>> {
    const template = this.templates.get(dialect) ?? this.compile(exec, dialect, args.length);
    const parameters = template.slots.map((slot, i) => (slot === -1 ? template.sql.parameters[i] : args[slot]));
    return exec.executeQuery<R>({ ...template.sql, parameters } as ReturnType<Compilable<R>['compile']>);
  }

  async first(exec: Executor, dialect: Dialect, ...args: A): Promise<R | undefined> {
    return (await this.execute(exec, dialect, ...args)).rows[0];
  }

  /** Rows an INSERT, UPDATE or DELETE changed. */
  async affected(exec: Executor, dialect: Dialect, ...args: A): Promise<bigint> {
    return (await this.execute(exec, dialect, ...args)).numAffectedRows ?? 0n;
  }

  private compile(exec: Executor, dialect: Dialect, arity: number): Template {
    const standIns = Array.from({ length: arity }, (_, i) => `${STAND_IN}${i}`) as unknown as A;
    const sql = this.build(exec, dialect === 'postgres', ...standIns).compile();
    const slots = sql.parameters.map((p) => (typeof p === 'string' && p.startsWith(STAND_IN) ? Number(p.slice(STAND_IN.length)) : -1));
    const used = new Set(slots);
    for (let i = 0; i < arity; i++) {
      if (!used.has(i)) throw new Error(`prepared query: argument ${i} is not a bound parameter of ${sql.sql}`);
    }
    const template = { sql, slots };
    this.templates.set(dialect, template);
    return template;
  }
}

export function prepare<A extends unknown[], R>(build: (exec: Executor, postgres: boolean, ...args: A) => Compilable<R>): Prepared<A, R> {
  return new Prepared(build);
}

/**
 * A prepared query whose first argument is a list (an IN list, the rows of an insert): the SQL
 * text depends on the list's length, so each length is compiled once. Lengths stay within a
 * slice (batches.ts), which bounds the templates kept.
 */
export class PreparedList<T, F extends unknown[], R> {
  private readonly byLength = new Map<number, Prepared<unknown[], R>>();

  constructor(private readonly build: (exec: Executor, postgres: boolean, list: T[], ...fixed: F) => Compilable<R>) {}

  execute(exec: Executor, dialect: Dialect, list: T[], ...fixed: F): Promise<QueryResult<R>> {
    const n = list.length;
    let prepared = this.byLength.get(n);
    if (!prepared) {
      prepared = new Prepared<unknown[], R>((e, pg, ...args) => this.build(e, pg, args.slice(0, n) as T[], ...(args.slice(n) as F)));
      this.byLength.set(n, prepared);
    }
    return prepared.execute(exec, dialect, ...list, ...fixed);
  }

  async rows(exec: Executor, dialect: Dialect, list: T[], ...fixed: F): Promise<R[]> {
    return (await this.execute(exec, dialect, list, ...fixed)).rows;
  }
}

export function prepareList<T, F extends unknown[], R>(build: (exec: Executor, postgres: boolean, list: T[], ...fixed: F) => Compilable<R>): PreparedList<T, F, R> {
  return new PreparedList(build);
}
