/**
 * A server that dies part-way through the migrations must be able to start again: on PostgreSQL and SQLite the
 * migrations run in transactions (on SQLite because migrateToLatest opens one; Kysely does not), but MariaDB
 * commits every DDL statement on its own, so there a migration stopped in the middle has some of its tables,
 * columns and indexes and is not recorded as applied. The next start runs it again from the top. Here the migrations are stopped before their k-th statement (a plugin that throws, as a
 * kill would leave them), for several k, then run again: the schema and the seeded rows must come out exactly as
 * on a database migrated in one go.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import type { KyselyPlugin, RootOperationNode } from 'kysely';
import { migrateToLatest, openStore } from './db.js';
import type { Store } from './db.js';
import { createEmptyTestDatabase, testDbKinds } from './testing/test-databases.js';

/** Counts the statements the migrations run; throws before the `stopAt`-th (1-based) if given. */
class StatementCounter implements KyselyPlugin {
  count = 0;
  firstSeed = 0;
  constructor(private readonly stopAt?: number) {}
  transformQuery(args: { node: RootOperationNode }): RootOperationNode {
    this.count += 1;
    const node = args.node;
    if (
      this.firstSeed === 0 &&
      node.kind === 'InsertQueryNode' &&
      node.into?.table.identifier.name === 'network_offerings'
    )
      this.firstSeed = this.count;
    if (this.stopAt !== undefined && this.count === this.stopAt)
      throw new Error(`stopped before statement ${this.count}`);
    return node;
  }
  async transformResult<R>(args: { result: R }): Promise<R> {
    return args.result;
  }
}

/** What the schema and the seeds look like, in a form two databases of the same kind can be compared by. */
async function fingerprint(store: Store): Promise<string[]> {
  const schemaQueries = {
    sqlite: [
      `select type, name, tbl_name, sql from sqlite_master where name not like 'kysely_%' and name not like 'sqlite_%' order by name`,
    ],
    postgres: [
      `select table_name, column_name, data_type, is_nullable, column_default from information_schema.columns where table_schema = 'public' and table_name not like 'kysely_%' order by table_name, column_name`,
      `select tablename, indexname, indexdef from pg_indexes where schemaname = 'public' and tablename not like 'kysely_%' order by indexname`,
    ],
    mysql: [
      `select table_name, column_name, column_type, is_nullable, column_default from information_schema.columns where table_schema = database() and table_name not like 'kysely_%' order by table_name, column_name`,
      `select table_name, index_name, seq_in_index, column_name, non_unique from information_schema.statistics where table_schema = database() and table_name not like 'kysely_%' order by table_name, index_name, seq_in_index`,
    ],
  }[store.kind];
  const out: string[] = [];
  for (const q of schemaQueries) {
    for (const r of (await sql.raw<Record<string, unknown>>(q).execute(store.db)).rows)
      out.push(JSON.stringify(r));
  }
  for (const table of ['network_offerings', 'vpc_offerings', 'service_offerings', 'templates']) {
    const names = await sql<{ name: string }>`select name from ${sql.table(table)} order by name`.execute(
      store.db,
    );
    out.push(`${table}: ${names.rows.map((r) => r.name).join(', ')}`);
  }
  return out;
}

for (const kind of testDbKinds()) {
  test(`${kind}: migrations stopped part-way (as by a kill) finish on the next start, with the same schema and seeds`, async () => {
    const reference = await createEmptyTestDatabase(kind);
    let expected: string[];
    let total: number;
    let firstSeed: number;
    {
      const store = await openStore(reference.url, { poolSize: 2 });
      try {
        const counter = new StatementCounter();
        await migrateToLatest(store, { plugins: [counter] });
        total = counter.count;
        firstSeed = counter.firstSeed;
        expected = await fingerprint(store);
      } finally {
        await store.close();
        await reference.drop();
      }
    }
    assert.ok(firstSeed > 0, 'the migrations seed network_offerings');
    // Early, in the middle of 0001..0003's DDL, just after the first seed row, late.
    const stops = [
      ...new Set([Math.floor(total * 0.1), Math.floor(total * 0.4), firstSeed + 1, Math.floor(total * 0.9)]),
    ];
    for (const stopAt of stops) {
      const tdb = await createEmptyTestDatabase(kind);
      const store = await openStore(tdb.url, { poolSize: 2 });
      try {
        await assert.rejects(
          migrateToLatest(store, { plugins: [new StatementCounter(stopAt)] }),
          /migrating the database/,
        );
        await migrateToLatest(store);
        assert.deepEqual(
          await fingerprint(store),
          expected,
          `stopped before statement ${stopAt} of ${total}`,
        );
      } finally {
        await store.close();
        await tdb.drop();
      }
    }
  });
}
