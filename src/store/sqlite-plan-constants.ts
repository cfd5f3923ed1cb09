/**
 * SQLite plans a statement again at every run when a parameter's value may change its plan: a term `col = ?`
 * where a partial index says `WHERE col = 'literal'` (the index is usable only if the value is that literal), so
 * SQLite marks the parameter and re-prepares the statement each time it is bound (sqlite3_reprepare, "as if there
 * had been a schema change"). better-sqlite3 binds every parameter at every run, and Kysely sends every value as
 * a parameter, constants of the query included (`where('owner_kind', '=', 'publicip')`): the association job's
 * read of its address (ip_allocations' partial indexes on owner_kind and state) was parsed and planned anew on
 * every job, 57 µs where the statement itself costs 11 (docs/benchmarks.md, branch sqlite6).
 *
 * Such a parameter is written into the statement's text as a literal instead, when its value is a short plain
 * string: the statement is prepared once per value (the literal is what the plan was made for anyway) and a run
 * only binds the rest. Only strings, so the result is the same as with the parameter: a string literal and a bound
 * string both have no affinity and compare the same way, where a bound JavaScript number is a REAL and a literal
 * number an INTEGER (`'4.0'` and `'4'` against a TEXT column). Only values of a safe alphabet, so the text never
 * needs more than the quotes around it. A statement takes at most VARIANTS values (they are meant to be an
 * enumeration's, `publicip`, `Allocated`): past that, the rest run as sent.
 */
import type { Database as SqliteConnection } from 'better-sqlite3';
import type { SqliteStatement } from 'kysely';

/** Distinct inlined values (tuples) one statement keeps a prepared variant for. */
export const VARIANTS = 16;

/** What may be written as a literal: short, and nothing a string literal would need escaped. */
const PLAIN = /^[A-Za-z0-9_.:-]{0,64}$/;

/** The columns a partial index compares to a string literal (`col = 'x'`), per the schema now. */
export function planConstantColumns(conn: SqliteConnection): Set<string> {
  const cols = new Set<string>();
  const rows = conn
    .prepare("select sql from sqlite_master where type = 'index' and sql is not null")
    .pluck()
    .all() as string[];
  for (const text of rows) {
    const at = text.search(/\swhere\s/i);
    if (at < 0) continue;
    for (const m of text.slice(at).matchAll(/[`"[]?(\w+)[`"\]]?\s*=\s*'/g)) cols.add(m[1]!.toLowerCase());
  }
  return cols;
}

/** Where a statement's plan-sensitive parameters are (planConstantsOf). */
export interface PlanConstants {
  /** Offset in the text of each positional parameter (`?`), in order. */
  offsets: number[];
  /** The indexes (into `offsets`) of the `col = ?` terms for a column of the set. */
  slots: number[];
}

/** The offsets of the positional parameters of `sql` (outside quotes and comments); undefined for any other kind. */
function placeholders(sql: string): number[] | undefined {
  const at: number[] = [];
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === '`') {
      // A quoted string or identifier: its end is the next lone quote (a doubled one is part of it).
      for (i++; i < sql.length; i++) {
        if (sql[i] === c) {
          if (sql[i + 1] === c) i++;
          else break;
        }
      }
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === '?') {
      if (/[0-9]/.test(sql[i + 1] ?? '')) return undefined;
      at.push(i);
    } else if ((c === ':' || c === '@' || c === '$') && /[A-Za-z_]/.test(sql[i + 1] ?? '')) return undefined;
  }
  return at;
}

/**
 * The `col = ?` terms of `sql` for a column of `cols`; undefined when there is none, or when the text has
 * parameters of another kind than `?` (`?NNN`, `:name`), which are left alone.
 */
export function planConstantsOf(sql: string, cols: ReadonlySet<string>): PlanConstants | undefined {
  if (cols.size === 0) return undefined;
  const offsets = placeholders(sql);
  if (!offsets) return undefined;
  const slots: number[] = [];
  offsets.forEach((at, n) => {
    const m = /(?:^|[^\w"`\]])[`"[]?(\w+)[`"\]]?\s*=\s*$/.exec(sql.slice(Math.max(0, at - 80), at));
    if (m && cols.has(m[1]!.toLowerCase())) slots.push(n);
  });
  return slots.length > 0 ? { offsets, slots } : undefined;
}

/** The values at `plan.slots` when every one is a plain string (else undefined: run the statement as sent). */
function plainValues(plan: PlanConstants, params: readonly unknown[]): string[] | undefined {
  const values: string[] = [];
  for (const s of plan.slots) {
    const v = params[s];
    if (typeof v !== 'string' || !PLAIN.test(v)) return undefined;
    values.push(v);
  }
  return values;
}

/** `sql` with the parameters at `plan.slots` written as the string literals `values`. */
export function inlinedSql(sql: string, plan: PlanConstants, values: readonly string[]): string {
  let out = sql;
  // From the last, so the earlier offsets stay right.
  for (let k = plan.slots.length - 1; k >= 0; k--) {
    const at = plan.offsets[plan.slots[k]!]!;
    out = `${out.slice(0, at)}'${values[k]}'${out.slice(at + 1)}`;
  }
  return out;
}

/** The parameters that stay parameters. */
function paramsLeft(plan: PlanConstants, params: readonly unknown[]): unknown[] {
  const rest = params.slice();
  for (let k = plan.slots.length - 1; k >= 0; k--) rest.splice(plan.slots[k]!, 1);
  return rest;
}

/** A statement as the store's cache hands it to Kysely (sqlite-connection.ts cachingStatements). */
export type CachedStatement = SqliteStatement & { readonly busy: boolean };

/**
 * The statement `sql` (prepared as `base`) that runs each plain value of its plan constants as a statement of its
 * own, prepared by `prepare` with the values inlined (VARIANTS of them at most; any other runs `base`).
 */
export function planConstantStatement(
  sql: string,
  plan: PlanConstants,
  base: CachedStatement,
  prepare: (text: string) => CachedStatement,
): CachedStatement {
  const variants = new Map<string, CachedStatement>();
  const pick = (params: readonly unknown[]): { stmt: CachedStatement; params: readonly unknown[] } => {
    const values = plainValues(plan, params);
    if (!values) return { stmt: base, params };
    const key = values.join('\u0000');
    let stmt = variants.get(key);
    if (!stmt || stmt.busy) {
      if (!stmt && variants.size >= VARIANTS) return { stmt: base, params };
      // One still being iterated is not handed out twice: a fresh one for this run, kept only if none was.
      const fresh = prepare(inlinedSql(sql, plan, values));
      if (!stmt) variants.set(key, fresh);
      stmt = fresh;
    }
    return { stmt, params: paramsLeft(plan, params) };
  };
  return {
    reader: base.reader,
    get busy() {
      return base.busy;
    },
    all(parameters) {
      const p = pick(parameters);
      return p.stmt.all(p.params);
    },
    run(parameters) {
      const p = pick(parameters);
      return p.stmt.run(p.params);
    },
    iterate(parameters) {
      const p = pick(parameters);
      return p.stmt.iterate(p.params);
    },
  };
}
