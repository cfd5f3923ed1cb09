/**
 * PostgreSQL allocation statements on the pg pool itself, as named prepared statements: each connection parses
 * and plans the INSERT and the window read once instead of at every allocation (Kysely sends unnamed statements,
 * which PostgreSQL parses anew each time), and a query is one pool checkout instead of Kysely's connection
 * provider around it. Only for statements that are their own transaction (`allocateAddress(store, ...)`); the
 * SQL is address-repository.ts's HOT.postgres, so both paths run the same statements.
 */
import type { Pool } from 'pg';
import { HOT, insertedFirst, insertFirstParams, insertParams } from './address-repository.js';
import type { InsertedFirst, InsertedFirstRow, NewAllocationRow, WindowQuery } from './address-repository.js';

/** The new row's id, or null when the address is taken (ON CONFLICT DO NOTHING returned no row). */
export async function pgInsertAllocation(pool: Pool, row: NewAllocationRow): Promise<number | null> {
  const r = await pool.query<{ id: number }>({
    name: 'stacknet_alloc_insert',
    text: HOT.postgres.insert,
    values: insertParams(row),
  });
  const first = r.rows[0];
  return first ? Number(first.id) : null;
}

export async function pgTakenWindow(pool: Pool, q: WindowQuery): Promise<string[]> {
  const up = q.direction === 'up';
  const r = await pool.query<{ address: string }>({
    name: up ? 'stacknet_alloc_window_up' : 'stacknet_alloc_window_down',
    text: up ? HOT.postgres.windowUp : HOT.postgres.windowDown,
    values: [q.scope, q.family, q.fromKey, q.boundKey, q.limit],
  });
  return r.rows.map((row) => row.address);
}

/** The first of the candidate rows that is not taken, inserted; null when all are taken (or lost a race). */
export async function pgInsertFirstFree(
  pool: Pool,
  rows: readonly NewAllocationRow[],
): Promise<InsertedFirst | null> {
  const r = await pool.query<InsertedFirstRow>({
    name: 'stacknet_alloc_insert_first',
    text: HOT.postgres.insertFirst,
    values: insertFirstParams('postgres', rows),
  });
  return insertedFirst(r.rows[0]);
}
