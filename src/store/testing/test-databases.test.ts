/**
 * A test database copied from the template (test-databases.ts) is the database the migrations make: the same
 * tables, columns, indexes, constraints, triggers and functions, and the same rows, on PostgreSQL and MariaDB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { openStore } from '../db.js';
import type { Executor } from '../db.js';
import { createEmptyTestDatabase, createTestDatabase, testDbKinds } from './test-databases.js';
import { migrateToLatest } from '../db.js';

/** What a database holds, as text that two equal databases print alike. */
async function fingerprint(kind: 'postgres' | 'mysql', db: Executor): Promise<Record<string, unknown>> {
  const rows = async (q: ReturnType<typeof sql>) => (await q.execute(db)).rows as Record<string, unknown>[];
  const tables = (
    kind === 'postgres'
      ? await rows(sql`select tablename as t from pg_tables where schemaname = 'public' order by 1`)
      : await rows(sql`select TABLE_NAME as t from information_schema.TABLES
          where TABLE_SCHEMA = database() order by 1`)
  ).map((r) => String(r.t));
  const out: Record<string, unknown> = {};
  for (const t of tables) {
    const data = await rows(sql`select * from ${sql.id(t)}`);
    // Row order is not part of a table. What the migrations seed gets a new uuid and creation time per run (the
    // copies share the template's), and so does each migration's row.
    const cells = data
      .map((r) => {
        const { uuid, created, timestamp, ...rest } = r;
        return JSON.stringify({
          ...rest,
          uuid: typeof uuid,
          created: typeof created,
          timestamp: typeof timestamp,
        });
      })
      .sort();
    out[`rows ${t}`] = cells;
    if (kind === 'mysql') {
      const shown = await rows(sql`show create table ${sql.id(t)}`);
      out[`table ${t}`] = String(shown[0]!['Create Table']).replace(/ AUTO_INCREMENT=\d+/, '');
    }
  }
  if (kind === 'postgres') {
    out.columns = await rows(sql`select table_name, column_name, data_type, column_default, is_nullable,
      is_generated, generation_expression from information_schema.columns where table_schema = 'public'
      order by 1, 2`);
    out.indexes = await rows(sql`select indexdef from pg_indexes where schemaname = 'public' order by 1`);
    out.constraints =
      await rows(sql`select conrelid::regclass::text as t, conname, pg_get_constraintdef(oid) as d
      from pg_constraint where connamespace = 'public'::regnamespace order by 1, 2`);
    out.triggers = await rows(sql`select tgname, pg_get_triggerdef(oid) as d from pg_trigger
      where not tgisinternal order by 1`);
    out.functions = await rows(sql`select proname, pg_get_functiondef(oid) as d from pg_proc
      where pronamespace = 'public'::regnamespace order by 1`);
    out.sequences = await rows(sql`select sequencename, last_value from pg_sequences
      where schemaname = 'public' order by 1`);
  } else {
    const triggers = await rows(sql`select TRIGGER_NAME as n from information_schema.TRIGGERS
      where TRIGGER_SCHEMA = database() order by 1`);
    for (const { n } of triggers) {
      const shown = await rows(sql`show create trigger ${sql.id(String(n))}`);
      out[`trigger ${n}`] = [shown[0]!['SQL Original Statement'], shown[0]!.sql_mode];
    }
  }
  return out;
}

for (const kind of testDbKinds()) {
  if (kind === 'sqlite') continue;
  test(`${kind}: a test database copied from the template is what the migrations make`, async () => {
    const copied = await createTestDatabase(kind);
    const migrated = await createEmptyTestDatabase(kind);
    const a = await openStore(copied.url, { poolSize: 1 });
    const b = await openStore(migrated.url, { poolSize: 1 });
    try {
      await migrateToLatest(b);
      const [fa, fb] = [await fingerprint(kind, a.db), await fingerprint(kind, b.db)];
      assert.ok(
        Object.keys(fb).some((k) => k.startsWith('rows ip_allocations')),
        'the fingerprint saw the tables',
      );
      assert.deepEqual(fa, fb);
      // The copy is a database of its own: what one test writes, another's copy does not see.
      await sql`delete from kysely_migration`.execute(a.db);
      const again = await createTestDatabase(kind);
      const c = await openStore(again.url, { poolSize: 1 });
      try {
        assert.deepEqual(await fingerprint(kind, c.db), fb);
      } finally {
        await c.close();
        await again.drop();
      }
    } finally {
      await a.close();
      await b.close();
      await copied.drop();
      await migrated.drop();
    }
  });
}
