/**
 * MariaDB's side of opening the store: the mysql2 pool, its connections' error listeners and their session's
 * isolation level. db.ts wraps the pool in its Kysely; migrateToLatest opens a one-connection pool of its own.
 */
import type { Pool as MysqlPool } from 'mysql2';

export async function createMysqlPool(url: string, size: number): Promise<MysqlPool> {
  const mysql = await import('mysql2');
  const pool = mysql.createPool({
    uri: url.replace(/^mariadb:/, 'mysql:'),
    connectionLimit: size,
    supportBigNumbers: true,
    bigNumberStrings: false,
    decimalNumbers: true,
    timezone: 'Z',
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
  });
  return pool;
}
