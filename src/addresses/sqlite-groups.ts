/**
 * Allocations on SQLite without a transaction of the caller's (address-service.ts allocateAddress): a lone one
 * runs autocommitted on better-sqlite3's prepared statements; those that arrive together share one BEGIN IMMEDIATE
 * transaction, each in a savepoint (group commit).
 */
import type { Database as SqliteConnection } from 'better-sqlite3';
import { isCloudStackError } from '../errors/catalogue.js';
import { sqliteTransaction } from '../store/db.js';
import type { Executor, Store } from '../store/db.js';
import {
  sqliteBegin,
  sqliteCommit,
  sqliteInsertAllocation,
  sqliteInsertFirstFree,
  sqliteSavepoint,
  sqliteTakenWindow,
} from './sqlite-fast-path.js';
import { allocateWith, kyselyPort, withRetries } from './allocation-search.js';
import type { Port } from './allocation-search.js';
import type { AllocateRequest, Allocation } from './allocation.js';

// SQLite. A lone allocation (nobody else of this process waiting) runs its statements autocommitted, straight on
// better-sqlite3 with prepared statements: a `random` one is a single INSERT ... ON CONFLICT DO NOTHING RETURNING,
// which is its own durable transaction (no BEGIN/COMMIT/SAVEPOINT statements, no Kysely). The UNIQUE constraint
// settles races with other processes exactly as it does on PostgreSQL/MariaDB, so no transaction is needed
// around a window read and the INSERT that follows it.
//
// Group commit. SQLite commits one transaction at a time; callers of one process that arrive in the same turn of
// the event loop (or while a commit is running) are carried by one BEGIN IMMEDIATE transaction together (each in
// its own savepoint, so one caller's refusal does not undo another's address) and all answered after its COMMIT
// and the WAL's flush (src/store/sqlite-flush.ts): every allocation is durable before its caller hears of it.
interface GroupJob {
  req: AllocateRequest;
  resolve(a: Allocation): void;
  reject(e: unknown): void;
}

interface GroupQueue {
  pending: GroupJob[];
  draining: boolean;
}

type Outcome = { ok: true; allocation: Allocation } | { ok: false; error: unknown };

/** Most allocations one SQLite transaction carries. */
const GROUP_MAX = 64;
const groupQueues = new WeakMap<SqliteConnection, GroupQueue>();

export function sqliteAllocate(
  store: Store,
  conn: SqliteConnection,
  req: AllocateRequest,
): Promise<Allocation> {
  let q = groupQueues.get(conn);
  if (!q) {
    q = { pending: [], draining: false };
    groupQueues.set(conn, q);
  }
  const queue = q;
  return new Promise<Allocation>((resolve, reject) => {
    queue.pending.push({ req, resolve, reject });
    if (!queue.draining) {
      queue.draining = true;
      // Callers resumed in the same microtask batch (e.g. all those answered by the previous COMMIT) queue up
      // before the drain starts, and share a transaction.
      queueMicrotask(() => void drainGroups(store, conn, queue));
    }
  });
}

async function drainGroups(store: Store, conn: SqliteConnection, q: GroupQueue): Promise<void> {
  try {
    while (q.pending.length > 0) {
      const group = q.pending.splice(0, GROUP_MAX);
      if (group.length === 1) {
        const job = group[0] as GroupJob;
        try {
          const allocation = await withRetries('allocating an address', () =>
            allocateWith(lonePort(store, conn), job.req),
          );
          // Its statements ran on better-sqlite3 directly, past the driver that waits for the WAL's flush: the
          // caller hears after that flush, and the next allocation need not wait for it.
          const flushed = store.wal?.durable();
          if (flushed) flushed.then(() => job.resolve(allocation), job.reject);
          else job.resolve(allocation);
        } catch (e) {
          job.reject(e);
        }
        continue;
      }
      let outcomes: Outcome[];
      try {
        outcomes = await withRetries('allocating an address', () =>
          store.db.connection().execute((c) => runGroup(conn, sqliteTransaction(store, c), group)),
        );
      } catch (e) {
        for (const job of group) job.reject(e);
        continue;
      }
      group.forEach((job, i) => {
        const o = outcomes[i] as Outcome;
        if (o.ok) job.resolve(o.allocation);
        else job.reject(o.error);
      });
    }
  } finally {
    q.draining = false;
  }
}

/**
 * Autocommitted statements for a lone allocation. better-sqlite3 is synchronous, so a statement run while the
 * connection is outside any transaction cannot land inside another caller's; while a Kysely transaction of this
 * process is open on the connection (it may await between its statements), the statement goes through Kysely,
 * which waits for that transaction to end.
 */
function lonePort(store: Store, conn: SqliteConnection): Port {
  const viaKysely = kyselyPort(store.db);
  const direct = sqlitePort(conn, store.db);
  const pick = () => (conn.inTransaction ? viaKysely : direct);
  return {
    ...viaKysely,
    window: (q) => pick().window(q),
    insert: (row) => pick().insert(row),
    insertFirst: (rows) => pick().insertFirst(rows),
  };
}

/** The statements of the search straight on better-sqlite3; the rare find/update through `ex`. */
const sqlitePort = (conn: SqliteConnection, ex: Executor): Port => ({
  ...kyselyPort(ex),
  window: (q) => sqliteTakenWindow(conn, q),
  insert: (row) => sqliteInsertAllocation(conn, row),
  insertFirst: (rows) => sqliteInsertFirstFree(conn, rows),
});

async function runGroup(conn: SqliteConnection, c: Executor, group: GroupJob[]): Promise<Outcome[]> {
  const port = sqlitePort(conn, c);
  sqliteBegin(conn);
  try {
    const out: Outcome[] = [];
    for (const job of group) {
      sqliteSavepoint(conn, 'begin');
      try {
        out.push({ ok: true, allocation: await allocateWith(port, job.req) });
        sqliteSavepoint(conn, 'release');
      } catch (e) {
        // A driver failure fails (or retries) the whole group; a refusal is this caller's alone.
        if (!isCloudStackError(e)) throw e;
        sqliteSavepoint(conn, 'rollback');
        out.push({ ok: false, error: e });
      }
    }
    sqliteCommit(conn);
    return out;
  } catch (e) {
    if (conn.inTransaction) conn.exec('ROLLBACK');
    throw e;
  }
}
