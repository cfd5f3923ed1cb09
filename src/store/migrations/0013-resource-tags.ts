/** Resource tags (src/tags): one key per resource, as CloudStack refuses a second tag with the same key. */
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('resource_tags'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('key', 'varchar(255)', (c) => c.notNull())
      .addColumn('value', 'varchar(255)', (c) => c.notNull())
      .addColumn('resource_type', 'varchar(64)', (c) => c.notNull())
      .addColumn('resource_id', 'bigint', (c) => c.notNull())
      .addColumn('resource_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('account_id', 'bigint')
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('customer', 'varchar(255)')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('resource_tags_key_uq', ['resource_type', 'resource_id', 'key']),
  ).execute();
  await db.schema
    .createIndex('resource_tags_resource_ix')
    .on('resource_tags')
    .columns(['resource_type', 'resource_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('resource_tags').execute();
}
