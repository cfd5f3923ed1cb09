import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';

for (const kind of testDbKinds()) {
  test(`0004-vms migrates on ${kind}`, async () => {
    const t = await createTestStore(kind);
    try {
      const rows = await t.store.db.selectFrom('routers').selectAll().execute();
      assert.equal(rows.length, 0);
    } finally {
      await t.cleanup();
    }
  });
}
