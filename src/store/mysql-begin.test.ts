/**
 * MariaDB: a transaction's BEGIN is sent in front of its first statement, one COM_QUERY for both (db.ts,
 * beginWithNextQuery). The first statement must run inside the transaction and hand back its own result, a failed
 * first statement must leave nothing open, and a connection killed before BEGIN must fail the transaction as a
 * lost connection, which transaction() runs again on a fresh one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestStore, testDbKinds, MYSQL_ADMIN_URL } from './testing/test-databases.js';
import { isUniqueViolation, openStore, transaction } from './db.js';

const run = testDbKinds().includes('mysql');
const trx = sql<{ x: number }>`select @@in_transaction as x`;

test(
  'mysql: the first statement after BEGIN runs inside the transaction, with its own result',
  { skip: !run },
  async () => {
    const { store, cleanup } = await createTestStore('mysql', 2);
    try {
      await sql`create table mysql_begin_t (n int primary key)`.execute(store.db);
      for (let i = 0; i < 3; i++) {
        const r = await transaction(store, async (tx) => {
          const ins = await tx
            .insertInto('mysql_begin_t' as never)
            .values({ n: i } as never)
            .executeTakeFirst();
          const a = Number((await trx.execute(tx)).rows[0]?.x);
          const rows = (await sql<{ n: number }>`select n from mysql_begin_t where n = ${i}`.execute(tx))
            .rows;
          return { affected: Number(ins.numInsertedOrUpdatedRows), a, rows };
        });
        assert.equal(r.affected, 1, "the INSERT's own result");
        assert.equal(r.a, 1, 'inside a transaction');
        assert.deepEqual(r.rows, [{ n: i }]);
      }
      // A first statement that fails: a unique violation as such, the transaction rolled back, the connection usable.
      const err = await transaction(store, async (tx) => {
        await sql`insert into mysql_begin_t values (0)`.execute(tx);
      }).catch((e: unknown) => e);
      assert.ok(isUniqueViolation((err as { cause?: unknown }).cause ?? err), String(err));
      await assert.rejects(
        transaction(store, async (tx) => {
          await sql`insert into mysql_begin_t values (10)`.execute(tx);
          throw new Error('rolled back on purpose');
        }),
      );
      const left = (await sql<{ n: number }>`select n from mysql_begin_t order by n`.execute(store.db)).rows;
      assert.deepEqual(left, [{ n: 0 }, { n: 1 }, { n: 2 }]);
      // Outside a transaction nothing stays open.
      assert.equal(Number((await trx.execute(store.db)).rows[0]?.x), 0);
    } finally {
      await cleanup();
    }
  },
);

test(
  'mysql: a transaction whose connection was killed before BEGIN runs on a fresh one',
  { skip: !run },
  async () => {
    const { store, cleanup } = await createTestStore('mysql', 1);
    const admin = await openStore(MYSQL_ADMIN_URL, { poolSize: 1 });
    try {
      await sql`create table mysql_begin_k (n int)`.execute(store.db);
      const id = (await sql<{ id: number }>`select connection_id() as id`.execute(store.db)).rows[0]!.id;
      await sql.raw(`kill connection ${Number(id)}`).execute(admin.db);
      await transaction(store, async (tx) => {
        await sql`insert into mysql_begin_k values (1)`.execute(tx);
      });
      const rows = (await sql<{ n: number }>`select n from mysql_begin_k`.execute(store.db)).rows;
      assert.deepEqual(rows, [{ n: 1 }]);
    } finally {
      await admin.close();
      await cleanup();
    }
  },
);
