/**
 * Events on a message bus (src/events/README.md): `event_outbox` holds each event, already shaped as the message
 * the broker gets (routing key and body), written in the transaction of the change and deleted once the broker
 * confirmed it. `claim_owner`/`claim_until` is a publisher's claim on a row (a lease, like a job's), taken over
 * once it expires. `resource_key` keeps one resource's events in order. Also `routers.status_reported`: when the
 * router's agent last answered with its status (the "agent stopped reporting" alert, src/alerts).
 */
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('event_outbox'))
      .addColumn('event_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('routing_key', 'varchar(512)', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('resource_key', 'varchar(255)', (c) => c.notNull())
      .addColumn('claim_owner', 'varchar(64)')
      .addColumn('claim_until', 'bigint')
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();
  // No index on the claim: the outbox is drained every 100 ms, so the claim's walk in id order from the oldest row
  // is short, and each index is one more write in the transaction of every event (bench/event-outbox.ts).
  await db.schema
    .createIndex('event_outbox_resource_ix')
    .on('event_outbox')
    .columns(['resource_key', 'id'])
    .execute();
  await db.schema.alterTable('routers').addColumn('status_reported', 'bigint').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('routers').dropColumn('status_reported').execute();
  await db.schema.dropTable('event_outbox').execute();
}
