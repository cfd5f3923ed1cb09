import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { createTestStore } from './testing/test-databases.js';
import { openStore, transaction } from './db.js';
import { WalFlush } from './sqlite-flush.js';
import type { Store } from './db.js';

const insertZone = (store: Store, name: string) =>
  transaction(store, (tx) =>
    tx
      .insertInto('zones')
      .values({
        uuid: `uuid-${name}`,
        name,
        network_type: 'Advanced',
        allocation_state: 'Enabled',
        created: Date.now(),
      } as never)
      .execute(),
  );

test('FULL on a file: SQLite runs NORMAL and every commit waits for our flush of the WAL (sqlite)', async () => {
  const t = await createTestStore('sqlite');
  try {
    const { store } = t;
    const wal = store.wal;
    assert.ok(wal, 'a file store under the default FULL has a WAL flush');
    assert.equal(store.sqlite!.pragma('synchronous', { simple: true }), 1, 'SQLite itself does not flush');
    const before = wal.flushes;
    await insertZone(store, 'z-one');
    assert.equal(wal.pending, 0, 'the commit is flushed before the transaction returns');
    assert.ok(wal.flushes > before, 'a flush ran for it');

    // 100 transactions at once: each is answered after a flush covering it, and they share flushes.
    const start = wal.flushes;
    await Promise.all(Array.from({ length: 100 }, (_, i) => insertZone(store, `z-many-${i}`)));
    assert.equal(wal.pending, 0);
    const used = wal.flushes - start;
    assert.ok(used >= 1 && used < 100, `100 commits took ${used} flushes`);

    // A commit made beside the driver (better-sqlite3 directly, as the allocator's lone path does) is not
    // flushed yet; a mere read through the store, which could see it, is not answered before it is.
    store
      .sqlite!.prepare(
        "INSERT INTO zones (uuid, name, network_type, allocation_state, created) VALUES ('u-direct', 'direct', 'Advanced', 'Enabled', 0)",
      )
      .run();
    wal.note();
    assert.equal(wal.pending, 1);
    const rows = await store.db.selectFrom('zones').select('name').where('name', '=', 'direct').execute();
    assert.equal(rows.length, 1);
    assert.equal(wal.pending, 0, 'the read waited for the flush of what it could see');

    // Reads alone flush nothing.
    const idle = wal.flushes;
    for (let i = 0; i < 20; i++) await store.db.selectFrom('zones').select('id').execute();
    assert.equal(wal.flushes, idle);
  } finally {
    await t.cleanup();
  }
});

test('NORMAL, EXTRA and :memory: keep SQLite’s own synchronous and no flush of ours (sqlite)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-flush-'));
  const saved = process.env.STACKNET_SQLITE_SYNC;
  try {
    for (const [sync, level] of [
      ['NORMAL', 1],
      ['EXTRA', 3],
    ] as const) {
      process.env.STACKNET_SQLITE_SYNC = sync;
      const store = await openStore(`sqlite:${join(dir, `${sync}.db`)}`);
      try {
        assert.equal(store.wal, undefined, sync);
        assert.equal(store.sqlite!.pragma('synchronous', { simple: true }), level, sync);
      } finally {
        await store.close();
      }
    }
    delete process.env.STACKNET_SQLITE_SYNC;
    const mem = await openStore('sqlite::memory:');
    try {
      assert.equal(mem.wal, undefined);
    } finally {
      await mem.close();
    }
  } finally {
    if (saved === undefined) delete process.env.STACKNET_SQLITE_SYNC;
    else process.env.STACKNET_SQLITE_SYNC = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a flush that fails is the waiting callers’ error, and the next commit flushes again (sqlite)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-flush-'));
  const store = await openStore(`sqlite:${join(dir, 'a.db')}`);
  try {
    const conn = store.sqlite!;
    await sql`CREATE TABLE t (x INTEGER)`.execute(store.db);
    // A flush of a WAL file that is not there: what an fsync error looks like to the waiters.
    const broken = new WalFlush(conn, join(dir, 'missing', 'a.db-wal'));
    conn.prepare('INSERT INTO t VALUES (1)').run();
    await assert.rejects(broken.durable()!, /ENOENT/);
    assert.equal(broken.pending, 1, 'not counted as flushed');
    // The store's own flush carries on.
    conn.prepare('INSERT INTO t VALUES (2)').run();
    await store.wal!.durable();
    assert.equal(store.wal!.pending, 0);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
