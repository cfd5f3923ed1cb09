import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestStore, testDbKinds } from './testing/test-databases.js';
import { transaction, isUniqueViolation } from './db.js';
import { CloudStackError } from '../errors/catalogue.js';

for (const kind of testDbKinds()) {
  test(`${kind}: migrations apply, transactions commit and roll back, unique violations are recognised`, async () => {
    const { store, cleanup } = await createTestStore(kind);
    try {
      await transaction(store, async (tx) => {
        await tx.insertInto('stacknet_meta').values({ name: 'a', value: '1' }).execute();
      });
      await assert.rejects(
        transaction(store, async (tx) => {
          await tx.insertInto('stacknet_meta').values({ name: 'b', value: '2' }).execute();
          throw new CloudStackError('InvalidParameterValue', 'stop');
        }),
        CloudStackError,
      );
      const rows = await store.db.selectFrom('stacknet_meta').selectAll().execute();
      assert.deepEqual(
        rows.map((r) => r.name),
        ['a'],
      );
      let caught: unknown;
      try {
        await store.db.insertInto('stacknet_meta').values({ name: 'a', value: '3' }).execute();
      } catch (e) {
        caught = e;
      }
      assert.ok(isUniqueViolation(caught), `expected a unique violation, got ${String(caught)}`);
      const one = await sql<{ one: number }>`select 1 as one`.execute(store.db);
      assert.equal(Number(one.rows[0]?.one), 1);
    } finally {
      await cleanup();
    }
  });
}
