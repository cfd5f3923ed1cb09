/** The id of a row just inserted, on all three databases (MariaDB's RETURNING rows do not reach Kysely). */
import type { InsertQueryBuilder, InsertResult, QueryResult } from 'kysely';
import type { Executor } from '../store/db.js';
import type { Database } from '../store/schema.js';

function isMysql(ex: Executor): boolean {
  return ex.getExecutor().adapter.constructor.name.toLowerCase().includes('mysql');
}

export async function insertReturningId<T extends keyof Database & string>(
  ex: Executor,
  qb: InsertQueryBuilder<Database, T, InsertResult>,
): Promise<number> {
  if (isMysql(ex)) {
    const r = await qb.executeTakeFirstOrThrow();
    return Number(r.insertId);
  }
  const r = (await (qb as unknown as InsertQueryBuilder<Database, T, { id: number }>)
    .returning('id' as never)
    .executeTakeFirstOrThrow()) as { id: number };
  return Number(r.id);
}

/**
 * An INSERT for a prepared query (src/store/prepared.ts) whose result gives the new row's id to `insertedId`:
 * `RETURNING id` where the database has it, MariaDB's insert id otherwise.
 */
export function returningId<T extends keyof Database & string>(
  ex: Executor,
  qb: InsertQueryBuilder<Database, T, InsertResult>,
): InsertQueryBuilder<Database, T, InsertResult | { id: number }> {
  return isMysql(ex) ? qb : (qb.returning('id' as never) as never);
}

/** The new row's id from the result of a `returningId` INSERT. */
export function insertedId(r: QueryResult<unknown>): number {
  const row = r.rows[0] as { id?: number | bigint } | undefined;
  if (row?.id !== undefined) return Number(row.id);
  if (r.insertId === undefined) throw new Error('the INSERT gave no id');
  return Number(r.insertId);
}
