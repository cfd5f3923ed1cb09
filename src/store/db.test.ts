import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestStore, testDbKinds } from './testing/test-databases.js';
import {
  isConnectionLost,
  isUniqueViolation,
  migrateToLatest,
  openMigratedStore,
  openStore,
  sqliteSettings,
  transaction,
} from './db.js';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudStackError } from '../errors/catalogue.js';

for (const kind of testDbKinds()) {
  test(`${kind}: a database migrated by a newer stacknet is refused with the migration named, and left as it is`, async () => {
    const { store, cleanup } = await createTestStore(kind);
    try {
      const future = '9999-from-a-newer-stacknet';
      await sql`insert into kysely_migration (name, timestamp) values (${future}, ${new Date().toISOString()})`.execute(
        store.db,
      );
      await assert.rejects(
        migrateToLatest(store),
        (e: unknown) =>
          e instanceof CloudStackError &&
          e.message.includes(`it has migration ${future}, which this server does not know`) &&
          /Run that stacknet version/.test(e.message),
      );
      const { rows } = await sql<{
        n: number;
      }>`select count(*) as n from kysely_migration where name = ${future}`.execute(store.db);
      assert.equal(Number(rows[0]!.n), 1);
      await sql`delete from kysely_migration where name = ${future}`.execute(store.db);
      await migrateToLatest(store);
    } finally {
      await cleanup();
    }
  });

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

for (const kind of testDbKinds().filter((k) => k !== 'sqlite')) {
  test(`${kind}: a value longer than its column is the caller's 431, naming the limit, and nothing is written`, async () => {
    const { store, cleanup } = await createTestStore(kind);
    try {
      let caught: unknown;
      try {
        await transaction(store, async (tx) => {
          await tx.insertInto('stacknet_meta').values({ name: 'kept?', value: '1' }).execute();
          await tx
            .insertInto('stacknet_meta')
            .values({ name: 'x'.repeat(65), value: '1' })
            .execute();
        });
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof CloudStackError, `expected a CloudStackError, got ${String(caught)}`);
      assert.equal(caught.kind, 'InvalidParameterValue');
      assert.match(caught.message, kind === 'postgres' ? /at most 64 characters/ : /for name/);
      const left = await store.db
        .selectFrom('stacknet_meta')
        .select('name')
        .where('name', '=', 'kept?')
        .execute();
      assert.deepEqual(left, []);
    } finally {
      await cleanup();
    }
  });
}

test('sqlite::memory: is an in-memory store: migrated and usable, no file left behind', async () => {
  const cwd = process.cwd();
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-memory-'));
  process.chdir(dir);
  try {
    const store = await openMigratedStore('sqlite::memory:');
    await store.db
      .insertInto('ip_allocations')
      .values({ scope: 'm', family: 4, address: '1', state: 'Allocated', created: 1, updated: 1 })
      .execute();
    const n = await store.db
      .selectFrom('ip_allocations')
      .select(sql<number>`count(*)`.as('n'))
      .executeTakeFirst();
    assert.equal(Number(n?.n), 1);
    await store.close();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sqlite: a new database gets 8 KiB pages, WAL and a 2 MiB page cache; an existing 4 KiB database opens unchanged', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-pages-'));
  try {
    const fresh = await openMigratedStore(`sqlite:${join(dir, 'new.db')}`);
    assert.equal(fresh.sqlite?.pragma('page_size', { simple: true }), 8192);
    assert.equal(fresh.sqlite?.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(fresh.sqlite?.pragma('cache_size', { simple: true }), -2048); // 2 MiB, in KiB
    await fresh.close();

    // A database made before stacknet chose 8 KiB: page_size only applies to a file without tables yet.
    const { default: SqliteDatabase } = await import('better-sqlite3');
    const oldPath = join(dir, 'old.db');
    const old = new SqliteDatabase(oldPath);
    old.pragma('page_size = 4096');
    old.exec(`create table t (x integer); insert into t values (7)`);
    old.close();
    const reopened = await openMigratedStore(`sqlite:${oldPath}`);
    assert.equal(reopened.sqlite?.pragma('page_size', { simple: true }), 4096);
    assert.equal(reopened.sqlite?.prepare('select x from t').pluck().get(), 7);
    await reopened.db
      .insertInto('ip_allocations')
      .values({ scope: 'p', family: 4, address: '1', state: 'Allocated', created: 1, updated: 1 })
      .execute();
    await reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sqlite: rows read through Kysely are better-sqlite3's own rows, member for member, streamed or not", async () => {
  const store = await openMigratedStore('sqlite::memory:');
  try {
    const conn = store.sqlite!;
    conn.exec(`create table rows_t (id integer primary key, name text, n real, b blob, z integer)`);
    conn.exec(
      `insert into rows_t values (1, 'ä "x"', 1.5, x'0102', null), (2, 'b', -3, null, 9007199254740991)`,
    );
    // Duplicate names (the last value in the first place), odd aliases, a `__proto__` column, no rows.
    const statements = [
      'select * from rows_t order by id',
      'select id, name, id as name, n as "a b", z as "\u2028", b as """}; x" from rows_t order by id',
      'select id as __proto__, name from rows_t order by id',
      'select * from rows_t where id < 0',
      "insert into rows_t (name) values ('r') returning id, name",
    ];
    for (const text of statements) {
      const want = text.startsWith('insert') ? undefined : conn.prepare(text).all();
      for (let i = 0; i < 2; i++) {
        // Twice: the second time from the statement cache.
        const got = (await sql.raw(text).execute(store.db)).rows;
        if (want) assert.deepEqual(got, want, text);
        else assert.deepEqual(Object.keys(got[0] as object), ['id', 'name']);
        for (const r of got) {
          assert.equal(Object.getPrototypeOf(r), Object.prototype, text);
          if (want) assert.deepEqual(Object.keys(r as object), Object.keys(want[0] as object), text);
        }
      }
    }
    // A stream left early frees its statement: the same query runs again, streamed or not.
    await store.db
      .insertInto('stacknet_meta')
      .values([
        { name: 'zone5-a', value: '1' },
        { name: 'zone5-b', value: '2' },
      ])
      .execute();
    const q = store.db.selectFrom('stacknet_meta').select(['name', 'value']).orderBy('name');
    const all = await q.execute();
    assert.ok(all.length >= 2);
    for (let i = 0; i < 2; i++) {
      for await (const r of q.stream()) {
        assert.deepEqual(r, all[0]);
        break;
      }
    }
    const streamed = [];
    for await (const r of q.stream()) streamed.push(r);
    assert.deepEqual(streamed, all);
    assert.deepEqual(await q.execute(), all);
  } finally {
    await store.close();
  }
});

test('sqlite: STACKNET_SQLITE_SYNC, _PAGE_SIZE and _CACHE_MIB are checked, and a bad one says what is allowed', () => {
  assert.deepEqual(sqliteSettings({}), { sync: 'FULL', pageSize: 8192, cacheMib: 2 });
  assert.deepEqual(
    sqliteSettings({
      STACKNET_SQLITE_SYNC: 'normal',
      STACKNET_SQLITE_PAGE_SIZE: '4096',
      STACKNET_SQLITE_CACHE_MIB: '64',
    }),
    { sync: 'NORMAL', pageSize: 4096, cacheMib: 64 },
  );
  assert.throws(
    () => sqliteSettings({ STACKNET_SQLITE_SYNC: 'OFF' }),
    (e: unknown) =>
      e instanceof CloudStackError && /STACKNET_SQLITE_SYNC='OFF'.*FULL.*NORMAL/.test(e.message),
  );
  for (const bad of ['8000', 'big', '131072', '256']) {
    assert.throws(
      () => sqliteSettings({ STACKNET_SQLITE_PAGE_SIZE: bad }),
      (e: unknown) =>
        e instanceof CloudStackError && e.message.includes(`STACKNET_SQLITE_PAGE_SIZE='${bad}'`),
    );
  }
  for (const bad of ['0', '1.5', 'lots', '-2']) {
    assert.throws(
      () => sqliteSettings({ STACKNET_SQLITE_CACHE_MIB: bad }),
      (e: unknown) =>
        e instanceof CloudStackError &&
        e.message.includes(`STACKNET_SQLITE_CACHE_MIB='${bad}'`) &&
        e.message.includes('1 to 65536'),
    );
  }
});

for (const kind of testDbKinds().filter((k) => k !== 'sqlite')) {
  test(`${kind}: a connection the database terminates mid-transaction neither ends the process nor fails the transaction`, async () => {
    const { store, cleanup } = await createTestStore(kind, 2);
    const admin = await openStore(store.url, { poolSize: 1 });
    try {
      let attempts = 0;
      await transaction(store, async (tx) => {
        attempts++;
        await tx
          .insertInto('stacknet_meta')
          .values({ name: 'before', value: String(attempts) })
          .execute();
        if (attempts === 1) {
          const me =
            kind === 'postgres'
              ? await sql<{ id: number }>`select pg_backend_pid() as id`.execute(tx)
              : await sql<{ id: number }>`select connection_id() as id`.execute(tx);
          const id = Number(me.rows[0]!.id);
          await (kind === 'postgres'
            ? sql`select pg_terminate_backend(${id})`.execute(admin.db)
            : sql.raw(`KILL CONNECTION ${id}`).execute(admin.db));
          // The driver hears of it between two statements, on a connection Kysely holds: pg emits 'error' on
          // the client there, which with nobody listening ended the process.
          await new Promise((r) => setTimeout(r, 300));
        }
        await tx
          .insertInto('stacknet_meta')
          .values({ name: 'after', value: String(attempts) })
          .execute();
      });
      assert.equal(attempts, 2, 'run again on a fresh connection');
      const rows = await store.db
        .selectFrom('stacknet_meta')
        .selectAll()
        .where('name', 'in', ['before', 'after'])
        .execute();
      // The first attempt rolled back with its connection: only the second attempt's rows.
      assert.deepEqual(rows.map((r) => `${r.name}=${r.value}`).sort(), ['after=2', 'before=2']);
      assert.ok(isConnectionLost(Object.assign(new Error('x'), { code: '57P01' })));
      assert.ok(!isConnectionLost(new CloudStackError('InvalidParameterValue', 'no')));
    } finally {
      await admin.close();
      await cleanup();
    }
  });
}
