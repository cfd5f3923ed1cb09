/**
 * Failed logins, counted per user and per source address (accounts/login-throttle.ts): in the database, not in a
 * server's memory, so that an attacker spreading guesses over several management servers meets one limit.
 * `key_hash` is the SHA-256 of the counted key (user or address), so the table holds no usernames or addresses.
 */
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('login_failures'))
      .addColumn('key_hash', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('failures', 'integer', (c) => c.notNull())
      .addColumn('last_failure', 'bigint', (c) => c.notNull())
      .addColumn('locked_until', 'bigint', (c) => c.notNull()),
  ).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('login_failures').execute();
}
