/**
 * SQLite allocation without Kysely: the same two statements as address-repository.ts (HOT.sqlite), prepared
 * once per connection. Kysely's SQLite driver prepares every statement anew and adds a few promise hops per query,
 * which halves the commit rate of a one-allocation transaction (measured: ~7,600/s vs ~15,000/s with
 * synchronous=NORMAL on the bench machine); see docs/benchmarks.md "IPAM allocation".
 *
 * A transaction here (BEGIN/SAVEPOINT/COMMIT) needs Kysely's connection held (`store.db.connection().execute(...)`):
 * better-sqlite3 has one connection per store, and Kysely's mutex around it is what keeps our BEGIN/COMMIT from
 * interleaving with a Kysely transaction of another caller in this process. Other processes are kept out by BEGIN
 * IMMEDIATE. A single autocommitted statement may run without the mutex while `conn.inTransaction` is false:
 * better-sqlite3 is synchronous, so it cannot end up inside anybody's transaction (address-service.ts lonePort).
 */
import type { Database as SqliteConnection, Statement } from 'better-sqlite3';
import { HOT, insertedAs, insertParams } from './address-repository.js';
import type { InsertedFirst, NewAllocationRow, WindowQuery } from './address-repository.js';

interface Prepared {
  begin: Statement;
  commit: Statement;
  savepoint: Statement;
  release: Statement;
  rollbackTo: Statement;
  windowUp: Statement;
  windowDown: Statement;
  insert: Statement;
  taken: Statement;
}

const cache = new WeakMap<SqliteConnection, Prepared>();

function prepared(conn: SqliteConnection): Prepared {
  let p = cache.get(conn);
  if (!p) {
    p = {
      begin: conn.prepare('BEGIN IMMEDIATE'),
      commit: conn.prepare('COMMIT'),
      savepoint: conn.prepare('SAVEPOINT stacknet_alloc'),
      release: conn.prepare('RELEASE stacknet_alloc'),
      rollbackTo: conn.prepare('ROLLBACK TO stacknet_alloc'),
      windowUp: conn.prepare(HOT.sqlite.windowUp).pluck(),
      windowDown: conn.prepare(HOT.sqlite.windowDown).pluck(),
      insert: conn.prepare(HOT.sqlite.insert).pluck(),
      taken: conn.prepare(HOT.sqlite.taken).pluck(),
    };
    cache.set(conn, p);
  }
  return p;
}

export function sqliteBegin(conn: SqliteConnection): void {
  prepared(conn).begin.run();
}

export function sqliteCommit(conn: SqliteConnection): void {
  prepared(conn).commit.run();
}

/** One caller's part of a group transaction: begin, keep (release) or undo (rollback) it. */
export function sqliteSavepoint(conn: SqliteConnection, step: 'begin' | 'release' | 'rollback'): void {
  const p = prepared(conn);
  if (step === 'begin') p.savepoint.run();
  else if (step === 'release') p.release.run();
  else {
    p.rollbackTo.run();
    p.release.run();
  }
}

export function sqliteTakenWindow(conn: SqliteConnection, q: WindowQuery): string[] {
  const p = prepared(conn);
  return (q.direction === 'up' ? p.windowUp : p.windowDown).all(
    q.scope,
    q.family,
    q.fromKey,
    q.boundKey,
    q.limit,
  ) as string[];
}

/** The new row's id, or null when the address is taken. */
export function sqliteInsertAllocation(conn: SqliteConnection, row: NewAllocationRow): number | null {
  const id = prepared(conn).insert.get(...insertParams(row)) as number | undefined;
  return id === undefined ? null : Number(id);
}

/**
 * The first of the candidate rows that is not taken, inserted; null when all are taken (or lost in races with
 * other processes). Not the `INSERT ... SELECT` of HOT.insertFirst: autocommitted on SQLite it cost several times
 * a one-row INSERT, more the bigger the scope (0.10 vs 0.025 ms p50 at concurrency 1 in a scope of 60,000 rows;
 * docs/benchmarks.md). SQLite has no round trips, so the cheapest statements instead: each candidate is looked up
 * in the UNIQUE index (~4 µs in a scope of 850,000 rows, where a refused INSERT costs ~11 µs and a read of all 8
 * ~23 µs), and the first free one is inserted with the one-row INSERT.
 */
export function sqliteInsertFirstFree(
  conn: SqliteConnection,
  rows: readonly NewAllocationRow[],
): InsertedFirst | null {
  const { taken } = prepared(conn);
  for (const row of rows) {
    if (taken.get(row.scope, row.family, row.address) !== undefined) continue;
    const id = sqliteInsertAllocation(conn, row);
    if (id !== null) return insertedAs(id, row);
  }
  return null;
}
