/** The id of a row just inserted, on all three databases (MariaDB's RETURNING rows do not reach Kysely). */
import type { InsertQueryBuilder, InsertResult } from 'kysely';
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
