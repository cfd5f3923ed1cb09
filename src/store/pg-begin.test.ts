/**
 * PostgreSQL: a transaction's BEGIN is written with its first statement rather than on its own (postgres-pool.ts,
 * namePreparedStatements). The first statement must still run inside the transaction, and a BEGIN that finds its
 * connection gone must fail the transaction as a lost connection, which transaction() runs again on a fresh one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestStore, testDbKinds } from './testing/test-databases.js';
import { openStore, transaction } from './db.js';

const run = testDbKinds().includes('postgres');

test('postgres: the first statement after BEGIN runs inside the transaction', { skip: !run }, async () => {
  const { store, cleanup } = await createTestStore('postgres', 2);
  try {
    const xid = sql<{ x: string }>`select txid_current()::text as x`;
    for (let i = 0; i < 3; i++) {
      const [a, b] = await transaction(store, async (tx) => {
        const first = (await xid.execute(tx)).rows[0]!.x;
        const second = (await xid.execute(tx)).rows[0]!.x;
        return [first, second];
      });
      assert.equal(a, b, 'both statements in one transaction');
    }
    // Outside a transaction each statement is its own.
    const a = (await xid.execute(store.db)).rows[0]!.x;
    const b = (await xid.execute(store.db)).rows[0]!.x;
    assert.notEqual(a, b);
    // A transaction whose only statement fails rolls back whatever BEGIN opened; the connection is usable after.
    await assert.rejects(
      transaction(store, async (tx) => {
        await sql`select 1/0`.execute(tx);
      }),
    );
    const again = await transaction(store, async (tx) => (await xid.execute(tx)).rows[0]!.x);
    assert.ok(again);
  } finally {
    await cleanup();
  }
});

test(
  'postgres: a transaction whose connection was terminated before BEGIN runs on a fresh one',
  { skip: !run },
  async () => {
    const { store, cleanup } = await createTestStore('postgres', 1);
    const admin = await openStore(
      process.env.STACKNET_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      {
        poolSize: 1,
      },
    );
    try {
      await sql`create table pg_begin_t (n int)`.execute(store.db);
      const pid = (await sql<{ p: number }>`select pg_backend_pid() as p`.execute(store.db)).rows[0]!.p;
      await sql`select pg_terminate_backend(${pid})`.execute(admin.db);
      // The pool's one idle connection is the terminated one (unless the pool noticed first and dropped it): then
      // BEGIN goes out on it with the INSERT, and both fail as a lost connection.
      await transaction(store, async (tx) => {
        await sql`insert into pg_begin_t values (1)`.execute(tx);
      });
      const rows = (await sql<{ n: number }>`select n from pg_begin_t`.execute(store.db)).rows;
      assert.deepEqual(rows, [{ n: 1 }]);
    } finally {
      await admin.close();
      await cleanup();
    }
  },
);
