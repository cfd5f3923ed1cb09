/**
 * MariaDB's side of opening the store: the mysql2 pool, its connections' error listeners and their session's
 * isolation level, and its connections' prepared queries sent as server-side prepared statements. db.ts wraps the
 * pool in its Kysely; migrateToLatest opens a one-connection pool of its own.
 */
import type { Pool as MysqlPool, PoolConnection } from 'mysql2';
import { preparedStatementName } from './prepared.js';

export async function createMysqlPool(url: string, size: number): Promise<MysqlPool> {
  const mysql = await import('mysql2');
  const pool = mysql.createPool({
    uri: url.replace(/^mariadb:/, 'mysql:'),
    connectionLimit: size,
    supportBigNumbers: true,
    bigNumberStrings: false,
    decimalNumbers: true,
    timezone: 'Z',
    // The statements a connection keeps prepared (mysql2 closes the least recently used beyond it): the prepared
    // queries and src/addresses' statements are a few dozen texts; the bound keeps a connection's share of the
    // server's max_prepared_stmt_count (16,382 for all its clients by default) small whatever runs.
    maxPreparedStatements: PREPARED_PER_CONNECTION,
  });
  pool.on('connection', (conn) => {
    // mysql2 listens for one 'error' per pooled connection (to drop it); a KILL CONNECTION or a lost server
    // can bubble more than one, and an unheard one would end the process.
    conn.on('error', () => undefined);
    // READ COMMITTED, as PostgreSQL's default: every statement sees what has committed before it. The code is
    // written for that ("lock the row, then read": a network being implemented, an account's IP count, a VLAN
    // window read again after a lost race); under MariaDB's default REPEATABLE READ those reads come from the
    // snapshot taken at the transaction's first read and miss what the lock waited for. The first command on
    // the connection: mysql2 queues the caller's statements behind it.
    conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', () => undefined);
    executePreparedQueries(conn);
  });
  return pool;
}

const PREPARED_PER_CONNECTION = 64;
/** ER_MAX_PREPARED_STMT_COUNT_REACHED: the server holds as many prepared statements as it allows. */
const TOO_MANY_PREPARED = 1461;

/**
 * A prepared query's statement (src/store/prepared.ts, src/addresses' statements) goes to MariaDB as a server-side
 * prepared statement (mysql2 `execute`, binary protocol): parsed once per connection, then only executed with
 * its values. Sent as text (Kysely's `query`), MariaDB parsed every one of them at every execution: the
 * association's zone read, with its caller check, is a four-table join and two subqueries (docs/benchmarks.md
 * "The association's statements prepared on MariaDB"). Kysely's driver calls `query(text, values, callback)`;
 * any other call, and any other text, passes through as it was. Where the server refuses to prepare one more
 * statement (its global limit, shared by every client), the statement goes as text, as before.
 */
function executePreparedQueries(conn: PoolConnection): void {
  const query = conn.query.bind(conn) as (...a: unknown[]) => unknown;
  const execute = conn.execute.bind(conn) as (...a: unknown[]) => unknown;
  conn.query = ((...a: unknown[]) => {
    const [text, values, callback] = a;
    if (
      a.length === 3 &&
      typeof text === 'string' &&
      Array.isArray(values) &&
      typeof callback === 'function' &&
      preparedStatementName(text) !== undefined
    ) {
      const cb = callback as (err: unknown, ...r: unknown[]) => void;
      return execute(text, values, (err: { errno?: number } | null, ...r: unknown[]) => {
        if (err?.errno === TOO_MANY_PREPARED) query(text, values, cb);
        else cb(err, ...r);
      });
    }
    return query(...a);
  }) as PoolConnection['query'];
}
