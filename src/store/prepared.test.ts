import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, testDbKinds } from './testing/test-databases.js';
import { transaction } from './db.js';
import type { Executor } from './db.js';
import { preparedQuery } from './prepared.js';
import { CloudStackError } from '../errors/catalogue.js';
import { CompiledQuery, sql } from 'kysely';

const byName = preparedQuery((db: Executor, name: string) =>
  db.selectFrom('stacknet_meta').select(['name', 'value']).where('name', '=', name),
);
const setValue = preparedQuery((db: Executor, value: string, name: string) =>
  db.updateTable('stacknet_meta').set({ value }).where('name', '=', name).where('value', '<>', 'frozen'),
);
const insert = preparedQuery((db: Executor, name: string, value: string) =>
  db.insertInto('stacknet_meta').values({ name, value }),
);

for (const kind of testDbKinds()) {
  test(`${kind}: a prepared query sends what Kysely would, with each call's values, in and out of transactions`, async () => {
    const { store, cleanup } = await createTestStore(kind);
    try {
      const before = store.statements.count;
      await insert.run(store.db, 'p-a', '1');
      await insert.run(store.db, 'p-b', '2');
      assert.deepEqual(await byName.first(store.db, 'p-a'), { name: 'p-a', value: '1' });
      assert.deepEqual(await byName.rows(store.db, 'p-b'), [{ name: 'p-b', value: '2' }]);
      assert.equal(await byName.first(store.db, 'nobody'), undefined);
      // The constant of the query ('frozen') stays where it was; the arguments go where they were placed.
      assert.equal(await setValue.changed(store.db, 'frozen', 'p-a'), 1);
      assert.equal(await setValue.changed(store.db, 'thawed', 'p-a'), 0);
      assert.equal(await setValue.changed(store.db, 'x', 'nobody'), 0);
      // In a transaction, on its connection: rolled back with it.
      await assert.rejects(
        transaction(store, async (tx) => {
          assert.equal(await setValue.changed(tx, '3', 'p-b'), 1);
          assert.deepEqual(await byName.first(tx, 'p-b'), { name: 'p-b', value: '3' });
          throw new CloudStackError('InvalidParameterValue', 'roll back');
        }),
        /roll back/,
      );
      assert.deepEqual(await byName.first(store.db, 'p-b'), { name: 'p-b', value: '2' });
      // undefined is sent as NULL (which the NOT NULL column refuses).
      await assert.rejects(setValue.changed(store.db, undefined as unknown as string, 'p-b'), /null/i);
      assert.deepEqual(await byName.first(store.db, 'p-b'), { name: 'p-b', value: '2' });
      // Counted like any other statement (stacknet_db_statements_total); on SQLite the transaction's BEGIN,
      // ROLLBACK too.
      assert.ok(store.statements.count - before >= 11);
      // The SQL is Kysely's own: the same text as the builder compiles.
      const text = store.db
        .selectFrom('stacknet_meta')
        .select(['name', 'value'])
        .where('name', '=', 'x')
        .compile();
      let sent = '';
      const spy = preparedQuery((db: Executor, name: string) => {
        const q = db.selectFrom('stacknet_meta').select(['name', 'value']).where('name', '=', name);
        sent = q.compile().sql;
        return q;
      });
      await spy.first(store.db, 'p-a');
      assert.equal(sent, text.sql);
    } finally {
      await cleanup();
    }
  });
}

test('a query that does not send an argument as one parameter is refused, not run wrong', async () => {
  const { store, cleanup } = await createTestStore('sqlite');
  try {
    const inText = preparedQuery((db: Executor, n: number) =>
      db
        .selectFrom('stacknet_meta')
        .select('name')
        .limit(Number(n) + 1),
    );
    await assert.rejects(inText.rows(store.db, 1), /prepared query/);
    const unused = preparedQuery((db: Executor, _name: string) =>
      db.selectFrom('stacknet_meta').select('name'),
    );
    await assert.rejects(unused.rows(store.db, 'x'), /not every argument/);
    const changed = preparedQuery((db: Executor, name: string) =>
      db.selectFrom('stacknet_meta').select('name').where('name', '=', `${name}%`),
    );
    await assert.rejects(changed.rows(store.db, 'x'), /placeholder was changed/);
  } finally {
    await cleanup();
  }
});

if (testDbKinds().includes('mysql'))
  test('mysql: a prepared query is a server-side prepared statement, prepared once per connection, with the values the text protocol gives', async () => {
    const { store, cleanup } = await createTestStore('mysql');
    try {
      await insert.run(store.db, 'p-typed', 'abc');
      // What a row can hold that the two protocols encode differently: an integer past 2^53 (a string either
      // way), a small one, a COUNT (BIGINT), a SUM (DECIMAL, a number with decimalNumbers), a NULL, a text.
      const typedSql = (name: unknown) =>
        sql<Record<string, unknown>>`select name, value, cast(9007199254740993 as signed) as big,
          cast(42 as signed) as small, (select count(*) from stacknet_meta) as n,
          (select sum(length(value)) from stacknet_meta where name = ${name}) as total, null as nothing
          from stacknet_meta where name = ${name}`;
      const typed = preparedQuery((db: Executor, name: string) => typedSql(name), 1);
      const status = async (c: Executor) => {
        const { rows } = await c.executeQuery<{ Variable_name: string; Value: string }>(
          CompiledQuery.raw(
            "show session status where variable_name in ('Com_stmt_prepare', 'Com_stmt_execute')",
          ),
        );
        return Object.fromEntries(rows.map((r) => [r.Variable_name, Number(r.Value)]));
      };
      await store.db.connection().execute(async (c) => {
        const before = await status(c);
        const first = await typed.first(c, 'p-typed');
        const again = await typed.first(c, 'p-typed');
        const after = await status(c);
        assert.equal(after.Com_stmt_prepare! - before.Com_stmt_prepare!, 1);
        assert.equal(after.Com_stmt_execute! - before.Com_stmt_execute!, 2);
        // The same statement sent as text (not a prepared query's text: a space more).
        const compiled = typedSql('p-typed').compile(c);
        const { rows } = await c.executeQuery(
          CompiledQuery.raw(`${compiled.sql} `, [...compiled.parameters]),
        );
        assert.deepEqual(first, rows[0]);
        assert.deepEqual(again, rows[0]);
        assert.deepEqual(first, {
          name: 'p-typed',
          value: 'abc',
          big: '9007199254740993',
          small: 42,
          n: (await c
            .selectFrom('stacknet_meta')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirst())!.n,
          total: 3,
          nothing: null,
        });
      });
    } finally {
      await cleanup();
    }
  });
