import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore } from './testing/test-databases.js';
import { transaction } from './db.js';

// better-sqlite3 answers synchronously: without the fair dialect a chain of statements is one run of microtasks
// and a setImmediate (or a socket read, or a timer) waits for its end.
test('a long chain of SQLite statements and transactions lets the event loop turn (sqlite)', async () => {
  const t = await createTestStore('sqlite');
  try {
    const db = t.store.db;
    for (const kind of ['statements', 'transactions'] as const) {
      let turned = false;
      setImmediate(() => (turned = true));
      let n = 0;
      // Ends on the first turn; 20,000 statements (hundreds of milliseconds) would mean none came.
      for (; n < 20_000 && !turned; n++) {
        if (kind === 'statements') await db.selectFrom('zones').select('id').execute();
        else await transaction(t.store, (tx) => tx.selectFrom('zones').select('id').execute());
      }
      assert.ok(turned, `the loop turned during a chain of ${kind}`);
      assert.ok(n < 20_000, `${kind}: turned after ${n}`);
    }
  } finally {
    await t.cleanup();
  }
});
