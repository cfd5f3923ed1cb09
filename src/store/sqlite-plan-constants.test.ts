/**
 * The SQLite statements whose plan depends on a parameter (sqlite-plan-constants.ts): which parameters are found,
 * the text they become, and that a query through the store answers the same whatever its values are (inlined,
 * kept as parameters, past the VARIANTS a statement keeps).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestStore } from './testing/test-databases.js';
import { VARIANTS, inlinedSql, planConstantColumns, planConstantsOf } from './sqlite-plan-constants.js';

const cols = new Set(['owner_kind', 'state']);

test('the parameters of col = ? terms for the columns a partial index compares to a string are found', () => {
  const q = 'select "ip".* from "ip_allocations" as "ip" where "ip"."uuid" = ? and "ip"."owner_kind" = ?';
  const plan = planConstantsOf(q, cols);
  assert.deepEqual(plan?.slots, [1]);
  assert.equal(
    inlinedSql(q, plan!, ['publicip']),
    'select "ip".* from "ip_allocations" as "ip" where "ip"."uuid" = ? and "ip"."owner_kind" = \'publicip\'',
  );
  // Unquoted, several, and only `=`: `!=`, `<=`, `in (...)` do not make SQLite plan again.
  const raw =
    'select 1 from t a where a.state = ? and owner_kind=? and state != ? and state in (?) and x = ?';
  assert.deepEqual(planConstantsOf(raw, cols)?.slots, [0, 1]);
  // Question marks inside strings, identifiers and comments are not parameters.
  const quoted = `select '?' as "a?", state = ? /* owner_kind = ? */ from t -- state = ?\n where owner_kind = ?`;
  const p2 = planConstantsOf(quoted, cols);
  assert.deepEqual(p2?.offsets.length, 2);
  assert.deepEqual(p2?.slots, [0, 1]);
  assert.equal(
    inlinedSql(quoted, p2!, ['Allocated', 'nic']),
    `select '?' as "a?", state = 'Allocated' /* owner_kind = ? */ from t -- state = ?\n where owner_kind = 'nic'`,
  );
  // Not one of the columns, or numbered or named parameters: left alone.
  assert.equal(planConstantsOf('select 1 from t where "scope" = ?', cols), undefined);
  assert.equal(planConstantsOf('select 1 from t where state = ?1', cols), undefined);
  assert.equal(planConstantsOf('select 1 from t where state = :s', cols), undefined);
  assert.equal(planConstantsOf('select 1 from t where state = ?', new Set()), undefined);
});

test('sqlite: the schema names owner_kind and state, and a query answers the same whatever the values', async () => {
  const { store, cleanup } = await createTestStore('sqlite');
  try {
    const found = planConstantColumns(store.sqlite!);
    assert.ok(found.has('owner_kind') && found.has('state'), [...found].join(','));
    // Rows of every kind of value: plain strings (inlined), a quote and a NUL (kept as parameters), a number.
    const kinds = [
      'publicip',
      'nic',
      "o'x",
      'a\u0000b',
      'sp ace',
      ...Array.from({ length: VARIANTS + 4 }, (_, i) => `k${i}`),
    ];
    await sql`create table plan_probe (id integer primary key, owner_kind text, state text, n integer)`.execute(
      store.db,
    );
    await sql`create index plan_probe_pub on plan_probe (id) where owner_kind = 'publicip'`.execute(store.db);
    let id = 0;
    for (const k of kinds)
      for (const state of ['Allocated', 'Free'])
        await sql`insert into plan_probe (id, owner_kind, state, n) values (${++id}, ${k}, ${state}, ${id % 3})`.execute(
          store.db,
        );
    await sql`insert into plan_probe (id, owner_kind, state, n) values (${++id}, '4', 'Allocated', 0)`.execute(
      store.db,
    );
    const direct = store.sqlite!.prepare(
      'select id from plan_probe where owner_kind = ? and state = ? order by id',
    );
    for (let round = 0; round < 2; round++) {
      for (const k of [...kinds, '4', 4, 'missing'])
        for (const state of ['Allocated', 'Free']) {
          const viaStore = await store.db
            .selectFrom('plan_probe' as never)
            .select('id' as never)
            .where('owner_kind' as never, '=', k as never)
            .where('state' as never, '=', state as never)
            .orderBy('id' as never)
            .execute();
          assert.deepEqual(
            viaStore.map((r) => Number((r as { id: number }).id)),
            (direct.all(k, state) as { id: number }[]).map((r) => r.id),
            `owner_kind ${JSON.stringify(k)}, state ${state}`,
          );
        }
    }
  } finally {
    await cleanup();
  }
});
