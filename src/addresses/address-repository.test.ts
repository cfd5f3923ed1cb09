/**
 * The allocator's statements are SQL text (address-repository.ts HOT), not built with Kysely: on PostgreSQL they
 * must still go as named statements, parsed and planned once per connection (store/prepared.ts namedStatement),
 * or every allocation pays the parse and the plan of its INSERT (docs/benchmarks.md "The database's cost per job").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestStore } from '../store/testing/test-databases.js';
import { transaction } from '../store/db.js';
import { HOT, insertAllocationRow } from './address-repository.js';

test('postgres: an allocation INSERT is a named statement of its connection, prepared once', async () => {
  const { store, cleanup } = await createTestStore('postgres', 1);
  try {
    const row = (n: number) => ({
      scope: 'named-test',
      family: 4,
      address: n.toString(16).padStart(32, '0'),
      state: 'Allocated' as const,
      created: 1,
      updated: 1,
    });
    const prepared = () =>
      transaction(store, async (tx) => {
        const r = await sql<{
          name: string;
          from_sql: boolean;
        }>`select name, from_sql from pg_prepared_statements where statement = ${HOT.postgres.insert}`.execute(
          tx,
        );
        return r.rows;
      });
    for (let i = 1; i <= 3; i++) assert.notEqual(await insertAllocationRow(store.db, row(i)), null);
    // Taken: the conflict is still a return value.
    assert.equal(await insertAllocationRow(store.db, row(1)), null);
    const named = await prepared();
    assert.equal(
      named.length,
      1,
      'one statement of this text, prepared by the protocol, on the one connection',
    );
    assert.match(named[0]!.name, /^stacknet_q\d+$/);
    assert.equal(named[0]!.from_sql, false);
  } finally {
    await cleanup();
  }
});
