/**
 * Portable column types for migrations: one schema on SQLite, PostgreSQL and MariaDB.
 * Conventions: ids are auto-increment integers plus a `uuid` varchar(36) for the API; times are BIGINT epoch
 * milliseconds; booleans are SMALLINT 0/1; indexed strings are varchar (MariaDB cannot index TEXT).
 */
import { sql } from 'kysely';
import type { CreateTableBuilder, Kysely } from 'kysely';

export type MigrationDialect = 'sqlite' | 'postgres' | 'mysql';

export function dialectOf(db: Kysely<unknown>): MigrationDialect {
  const name = db.getExecutor().adapter.constructor.name.toLowerCase();
  if (name.includes('postgres')) return 'postgres';
  if (name.includes('mysql')) return 'mysql';
  return 'sqlite';
}

/** Adds `id` (auto-increment primary key) the way each database spells it. */
export function withId<T extends string>(
  db: Kysely<unknown>,
  table: CreateTableBuilder<T, never>,
): CreateTableBuilder<T, 'id'> {
  const d = dialectOf(db);
  if (d === 'postgres') return table.addColumn('id', 'bigserial', (c) => c.primaryKey());
  if (d === 'mysql') return table.addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement());
  return table.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
}

/** MariaDB tables must be InnoDB with utf8mb4; the others ignore this. */
export function tableOptions<T extends string, C extends string>(
  db: Kysely<unknown>,
  table: CreateTableBuilder<T, C>,
): CreateTableBuilder<T, C> {
  return dialectOf(db) === 'mysql'
    ? table.modifyEnd(sql`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
    : table;
}
