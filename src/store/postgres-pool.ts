/**
 * PostgreSQL's side of opening the store: the pg pool (bigints as numbers, pipelined clients, error listeners
 * that keep a dying connection from ending the process) and its clients' prepared queries sent as named
 * statements, with a transaction's BEGIN written together with its first statement. db.ts wraps the pool in its
 * Kysely.
 */
import type { Pool as PgPool, PoolClient as PgClient } from 'pg';
import { preparedStatementName } from './prepared.js';

export async function createPostgresPool(url: string, poolSize: number): Promise<PgPool> {
  const pg = await import('pg');
  // int8 (bigint, COUNT(*)) as a JS number: our ids, counters and epoch-ms times fit in 2^53.
  pg.default.types.setTypeParser(20, (v: string) => Number(v));
  pg.default.types.setTypeParser(1700, (v: string) => Number(v));
  const pool = new pg.default.Pool({
    connectionString: url.replace(/^postgresql:/, 'postgres:'),
    max: poolSize,
    // Queries given to a client before the previous one's answer are written at once (namePreparedStatements'
    // BEGIN goes out with the transaction's first statement). Kysely awaits every statement, so nothing else
    // is ever in flight behind another; cursors (pg-cursor), which pipelining refuses, are not used.
    pipeline: true,
  } as ConstructorParameters<typeof pg.default.Pool>[0]);
  pool.on('error', () => {
    /* an idle client lost its connection; the pool replaces it */
  });
  // pg emits 'error' on a client whose connection dies (pg_terminate_backend, a database restart, a cut
  // network) even while it is checked out and between queries, where pg-pool listens for nothing: with no
  // listener that is an uncaught exception and the process exits. The query in flight, if any, fails on its
  // own and the pool drops the broken client when it is released; the listener only keeps the process up.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    namePreparedStatements(client);
  });
  return pool;
}

/**
 * A prepared query's statement (src/store/prepared.ts) goes to PostgreSQL as a named statement: parsed and planned
 * once per connection, then only bound and executed (what src/addresses' fast path does for its own). Kysely's
 * driver calls `query(text, values)`; any other call passes through as it was.
 */
function namePreparedStatements(client: PgClient): void {
  const query = client.query.bind(client) as (...a: unknown[]) => unknown;
  // A transaction's BEGIN is not sent on its own: it is answered "done" at once, then written in the same write
  // as the transaction's next statement (the pipelined client sends it without waiting for BEGIN's answer), and
  // its real answer is awaited with that statement's. One round trip less per transaction: one wake-up less of
  // this process and of the backend. BEGIN fails only when the connection is gone; then the statement fails with
  // it, and transaction() treats that as a lost connection, as it would a failed BEGIN.
  let beginDue = false;
  // Looked up per use: pg replaces the socket with a TLS one after an SSL negotiation.
  const stream = () =>
    (client as unknown as { connection?: { stream?: { cork?(): void; uncork?(): void } } }).connection
      ?.stream;
  const send = (...a: unknown[]): unknown => {
    const [text, values] = a;
    if (a.length === 2 && typeof text === 'string' && Array.isArray(values)) {
      const name = preparedStatementName(text);
      if (name) return query({ name, text, values });
    }
    return query(...a);
  };
  client.query = ((...a: unknown[]) => {
    if (a.length === 2 && a[0] === 'begin' && Array.isArray(a[1]) && a[1].length === 0 && !beginDue) {
      beginDue = true;
      return Promise.resolve({ command: 'BEGIN', rowCount: null, rows: [], fields: [] });
    }
    if (!beginDue) return send(...a);
    beginDue = false;
    const out = stream();
    out?.cork?.();
    let b: Promise<unknown>;
    let r: unknown;
    try {
      b = query('begin') as Promise<unknown>;
      r = send(...a);
    } finally {
      out?.uncork?.();
    }
    b.catch(() => undefined);
    return Promise.all([b, r]).then(([, x]) => x);
  }) as PgClient['query'];
}
