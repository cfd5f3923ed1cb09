/**
 * Alerts (src/alerts): what stacknet raises when a capacity crosses its notification threshold or a router's
 * health check fails. `open_key` names the condition while it holds (UNIQUE, NULL once it clears), so one
 * condition makes one alert however many passes and servers see it; NULLs do not collide on any of the three
 * databases.
 */
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('alerts'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('type', 'integer', (c) => c.notNull())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('description', 'varchar(1024)', (c) => c.notNull())
      .addColumn('zone_id', 'bigint')
      .addColumn('open_key', 'varchar(255)', (c) => c.unique())
      .addColumn('sent', 'bigint', (c) => c.notNull())
      .addColumn('cleared', 'bigint')
      .addColumn('archived', 'smallint', (c) => c.notNull().defaultTo(0)),
  ).execute();
  await db.schema.createIndex('alerts_type_ix').on('alerts').columns(['type', 'sent']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('alerts').execute();
}
