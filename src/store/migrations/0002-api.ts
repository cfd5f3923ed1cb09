/**
 * The API server's schema (src/api/tables.ts declares its TypeScript shape): domains, accounts, users,
 * sessions, async jobs, configuration values, events and usage records. Sessions and jobs live here, not in a
 * server's memory, so several management servers can share one database.
 */
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('domains'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('path', 'varchar(767)', (c) => c.notNull().unique())
      .addColumn('parent_id', 'bigint')
      .addColumn('level', 'integer', (c) => c.notNull())
      .addColumn('network_domain', 'varchar(255)')
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('accounts'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('type', 'smallint', (c) => c.notNull())
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('network_domain', 'varchar(255)')
      .addColumn('is_default', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('accounts_domain_name', ['domain_id', 'name']),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('users'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('username', 'varchar(255)', (c) => c.notNull())
      .addColumn('password_hash', 'varchar(255)', (c) => c.notNull())
      .addColumn('firstname', 'varchar(255)', (c) => c.notNull())
      .addColumn('lastname', 'varchar(255)', (c) => c.notNull())
      .addColumn('email', 'varchar(255)')
      .addColumn('timezone', 'varchar(64)')
      .addColumn('api_key', 'varchar(255)', (c) => c.unique())
      .addColumn('secret_key', 'varchar(255)')
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('is_default', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('users_domain_username', ['domain_id', 'username']),
  ).execute();
  await db.schema.createIndex('users_account').on('users').column('account_id').execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('sessions'))
      .addColumn('key_hash', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('user_id', 'bigint', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('last_seen', 'bigint', (c) => c.notNull())
      .addColumn('expires', 'bigint', (c) => c.notNull()),
  ).execute();
  await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('async_jobs'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('command', 'varchar(255)', (c) => c.notNull())
      .addColumn('params', 'text', (c) => c.notNull())
      .addColumn('user_id', 'bigint', (c) => c.notNull())
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('status', 'smallint', (c) => c.notNull())
      .addColumn('result_code', 'integer', (c) => c.notNull())
      .addColumn('result', 'text')
      .addColumn('instance_type', 'varchar(64)')
      .addColumn('instance_id', 'varchar(64)')
      .addColumn('lease_owner', 'varchar(64)')
      .addColumn('lease_until', 'bigint')
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('completed', 'bigint'),
  ).execute();
  await db.schema
    .createIndex('async_jobs_status')
    .on('async_jobs')
    .columns(['status', 'lease_until'])
    .execute();
  await db.schema.createIndex('async_jobs_account').on('async_jobs').column('account_id').execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('configurations'))
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('scope', 'varchar(16)', (c) => c.notNull())
      .addColumn('scope_id', 'bigint', (c) => c.notNull())
      .addColumn('value', 'varchar(4096)', (c) => c.notNull())
      .addColumn('updated', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('configurations_name_scope', ['name', 'scope', 'scope_id']),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('events'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('type', 'varchar(64)', (c) => c.notNull())
      .addColumn('level', 'varchar(16)', (c) => c.notNull())
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('user_id', 'bigint')
      .addColumn('username', 'varchar(255)')
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('account_name', 'varchar(255)', (c) => c.notNull())
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('domain_path', 'varchar(767)', (c) => c.notNull())
      .addColumn('resource_type', 'varchar(64)')
      .addColumn('resource_id', 'varchar(64)')
      .addColumn('resource_name', 'varchar(255)')
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();
  await db.schema.createIndex('events_account').on('events').columns(['account_id', 'created']).execute();
  await db.schema.createIndex('events_domain').on('events').columns(['domain_id', 'created']).execute();
  await db.schema.createIndex('events_type').on('events').column('type').execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('usage_events'))
      .addColumn('type', 'varchar(64)', (c) => c.notNull())
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('zone_id', 'bigint')
      .addColumn('resource_id', 'bigint')
      .addColumn('resource_uuid', 'varchar(64)')
      .addColumn('resource_name', 'varchar(255)')
      .addColumn('resource_type', 'varchar(64)')
      .addColumn('offering_id', 'bigint')
      .addColumn('size', 'bigint')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('processed', 'smallint', (c) => c.notNull().defaultTo(0)),
  ).execute();
  await db.schema
    .createIndex('usage_events_account')
    .on('usage_events')
    .columns(['account_id', 'created'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of [
    'usage_events',
    'events',
    'configurations',
    'async_jobs',
    'sessions',
    'users',
    'accounts',
    'domains',
  ]) {
    await db.schema.dropTable(t).execute();
  }
}
