/**
 * Statements built and compiled by Kysely once per database, then run with new values. Kysely rebuilds and
 * recompiles a query on every call (immutable node trees, frozen, visited to text); on the hot path of an async job
 * that was ~17–24 % of the server's CPU (docs/benchmarks.md "The job path, cut for CPU"). A prepared query keeps the
 * SQL text and the order of its parameters and substitutes the call's values: the same statement Kysely would
 * have sent, without building it again. On SQLite the same SQL string also finds its prepared better-sqlite3
 * statement in the store's cache at once.
 *
 * `build` is called once per dialect with placeholders instead of its arguments. It must use every argument as a
 * plain value Kysely sends as one parameter (a `where` operand, a `set`/`values` member, a `sql` template value),
 * and must not look at an argument's value (no branching on it, no arithmetic, no `in` lists): that is checked
 * when it is compiled, and a query that breaks the rule is refused with an error rather than run wrong.
 */
import { createQueryId } from 'kysely';
import type { Compilable, CompiledQuery, QueryResult, RawBuilder, RootOperationNode } from 'kysely';
import type { Executor } from './db.js';

/** Anything Kysely runs queries on, typed with any set of tables (Executor, a transaction, NetExecutor...). */
type Runner = Pick<Executor, 'getExecutor'>;

interface Template {
  sql: string;
  query: RootOperationNode;
  /** Per parameter: the argument it takes (index) or, for a constant of the query, its value. */
  slots: { arg: number; value: unknown }[];
}

const MARK = '\u0000stacknet-prepared-';
const placeholder = (i: number): string => `${MARK}${i}\u0000`;

/** What a prepared query's build may give: a query builder, or a statement written with `sql`. */
type Buildable<O> = Compilable<O> | RawBuilder<O>;

function compileTemplate(ex: Runner, build: (ex: Runner, ...args: never[]) => Buildable<unknown>, n: number) {
  const marks = Array.from({ length: n }, (_, i) => placeholder(i));
  const built = build(ex, ...(marks as never[]));
  const compiled: CompiledQuery =
    'isRawBuilder' in built ? built.compile(ex as unknown as Executor) : built.compile();
  const seen = new Set<number>();
  const slots = compiled.parameters.map((value) => {
    if (typeof value === 'string' && value.startsWith(MARK)) {
      const arg = marks.indexOf(value);
      if (arg < 0)
        throw new Error(`prepared query: a placeholder was changed by the query (${compiled.sql})`);
      seen.add(arg);
      return { arg, value: undefined };
    }
    if (typeof value === 'string' && value.includes(MARK))
      throw new Error(`prepared query: a placeholder was changed by the query (${compiled.sql})`);
    return { arg: -1, value };
  });
  if (compiled.sql.includes(MARK))
    throw new Error(`prepared query: a placeholder ended up in the SQL text (${compiled.sql})`);
  if (seen.size !== n)
    throw new Error(`prepared query: not every argument is a parameter of the statement (${compiled.sql})`);
  return { sql: compiled.sql, query: compiled.query, slots } satisfies Template;
}

/**
 * The SQL texts of the prepared queries compiled so far, with a statement name each: on PostgreSQL the store sends
 * these as named statements (postgres-pool.ts), which each connection parses and plans once instead of on every
 * call; on MariaDB as server-side prepared statements (mysql-pool.ts), which each connection parses once.
 */
const names = new Map<string, string>();

/** The statement name of a prepared query's SQL text, if it is one. */
export const preparedStatementName = (sql: string): string | undefined => names.get(sql);

const nameOf = (sql: string): void => {
  if (!names.has(sql)) names.set(sql, `stacknet_q${names.size + 1}`);
};

/**
 * A statement written as SQL text rather than built (src/addresses' allocation statements), sent as a named
 * statement on PostgreSQL like a prepared query's: parsed and planned once per connection. Sent unnamed, the
 * allocation's INSERT was parsed and planned at every execution, ~50 µs of the database's CPU per allocation
 * (docs/benchmarks.md "The database's cost per job"). Its text, for the caller to run.
 */
export function namedStatement(sql: string): string {
  nameOf(sql);
  return sql;
}

export interface PreparedQuery<E extends Runner, A extends unknown[], O> {
  /** The statement's result (rows, affected rows, insert id) as Kysely's driver gives it. */
  run(ex: E, ...args: A): Promise<QueryResult<O>>;
  /** Its rows. */
  rows(ex: E, ...args: A): Promise<O[]>;
  /** Its first row. */
  first(ex: E, ...args: A): Promise<O | undefined>;
  /** The number of rows it changed (UPDATE/DELETE/INSERT). */
  changed(ex: E, ...args: A): Promise<number>;
}

/**
 * `build(ex, ...args)` as a prepared query: `const byUuid = preparedQuery((db, uuid: string) =>
 * db.selectFrom('zones').selectAll().where('uuid', '=', uuid)); await byUuid.first(tx, id)`. An `undefined`
 * argument is sent as NULL (Kysely would have left an undefined `values`/`set` member out of the statement).
 */
export function preparedQuery<E extends Runner, A extends unknown[], O>(
  build: (ex: E, ...args: A) => Buildable<O>,
  /** How many arguments follow `ex`, for a `build` that takes them as a rest parameter. */
  arity = build.length - 1,
): PreparedQuery<E, A, O> {
  // One template per dialect: the adapter is shared by a Kysely instance and all its transactions.
  const templates = new WeakMap<object, Template>();
  // One template per dialect: the adapter is shared by a Kysely instance and all its transactions.
  const run = (ex: E, args: A): Promise<QueryResult<O>> => {
    const executor = ex.getExecutor();
    let t = templates.get(executor.adapter);
    if (!t) {
      t = compileTemplate(
        ex,
        build as unknown as (ex: Runner, ...args: never[]) => Compilable<unknown>,
        arity,
      );
      templates.set(executor.adapter, t);
      nameOf(t.sql);
    }
    const parameters = t.slots.map((s) => (s.arg < 0 ? s.value : (args[s.arg] ?? null)));
    return executor.executeQuery<O>({ sql: t.sql, query: t.query, queryId: createQueryId(), parameters });
  };
  return {
    run: (ex, ...args) => run(ex, args),
    rows: async (ex, ...args) => (await run(ex, args)).rows,
    first: async (ex, ...args) => (await run(ex, args)).rows[0],
    changed: async (ex, ...args) => Number((await run(ex, args)).numAffectedRows ?? 0),
  };
}
