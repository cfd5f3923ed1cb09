/** For tests that race two transactions: whether one of them is waiting for a row lock the other holds. */
import { sql } from 'kysely';
import type { DbKind, Store } from '../db.js';

/**
 * Statements of this database's other sessions waiting for a row lock (PostgreSQL, MariaDB). MariaDB does not list a
 * transaction whose first statement waits (its BEGIN was sent on its own) in innodb_trx until it holds something,
 * so there the waiting statement is found in processlist: a locking read, or any statement running this long on a
 * test's few rows.
 */
export async function rowLockWaits(kind: DbKind, store: Store): Promise<number> {
  const r =
    kind === 'postgres'
      ? await sql<{ n: string }>`select count(*) as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`.execute(store.db)
      : await sql<{ n: string }>`select count(*) as n from information_schema.processlist
          where db = database() and id <> connection_id() and command = 'Query'
            and (info like '%for update%' or time_ms > 300)`.execute(store.db);
  return Number(r.rows[0]!.n);
}
