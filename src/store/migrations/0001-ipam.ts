import type { Kysely } from 'kysely';
import { tableOptions } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    db.schema
      .createTable('stacknet_meta')
      .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('value', 'varchar(255)', (c) => c.notNull()),
  ).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('stacknet_meta').execute();
}
