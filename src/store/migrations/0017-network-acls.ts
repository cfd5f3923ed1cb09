/**
 * VPC network ACLs (src/network-acls): CloudStack's network_acl and network_acl_item, and networks.network_acl_id
 * for the list a VPC tier enforces. The two built-in lists `default_deny` and `default_allow` are global
 * (vpc_id NULL: CloudStack's vpc_id 0, answered as an empty vpcid) and seeded here with CloudStack's items
 * (schema-410to420.sql: one ingress and one egress item for all protocols and 0.0.0.0/0, numbered 1 and 2). The
 * seeds look for the lists by name first, so a MariaDB re-run of this migration does not seed them twice.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

interface SeedDb {
  network_acl_lists: {
    id?: number;
    uuid: string;
    name: string;
    description: string;
    vpc_id: null;
    for_display: number;
    created: number;
    removed: null;
  };
  network_acl_items: {
    uuid: string;
    acl_id: number;
    number: number;
    action: string;
    traffic_type: string;
    protocol: string;
    cidrs: string;
    for_display: number;
    state: string;
    created: number;
  };
}

const builtIns = [
  { name: 'default_deny', description: 'Default Network ACL Deny All', action: 'Deny' },
  { name: 'default_allow', description: 'Default Network ACL Allow All', action: 'Allow' },
] as const;

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('network_acl_lists'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('description', 'varchar(1024)')
      .addColumn('vpc_id', 'bigint', (c) => c.references('vpcs.id'))
      .addColumn('for_display', 'smallint', (c) => c.notNull().defaultTo(1))
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();
  await db.schema
    .createIndex('network_acl_lists_vpc_ix')
    .on('network_acl_lists')
    .columns(['vpc_id'])
    .execute();
  await tableOptions(
    db,
    withId(db, db.schema.createTable('network_acl_items'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('acl_id', 'bigint', (c) => c.notNull().references('network_acl_lists.id'))
      .addColumn('number', 'integer', (c) => c.notNull())
      .addColumn('action', 'varchar(16)', (c) => c.notNull())
      .addColumn('traffic_type', 'varchar(16)', (c) => c.notNull())
      .addColumn('protocol', 'varchar(16)', (c) => c.notNull())
      .addColumn('start_port', 'integer')
      .addColumn('end_port', 'integer')
      .addColumn('icmp_type', 'integer')
      .addColumn('icmp_code', 'integer')
      .addColumn('cidrs', 'varchar(4096)', (c) => c.notNull())
      .addColumn('reason', 'varchar(2048)')
      .addColumn('for_display', 'smallint', (c) => c.notNull().defaultTo(1))
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      // CloudStack refuses a second item with the same number in a list; the database makes it impossible.
      .addUniqueConstraint('network_acl_items_number_uq', ['acl_id', 'number']),
  ).execute();
  await db.schema
    .alterTable('networks')
    .addColumn('network_acl_id', 'bigint', (c) => c.references('network_acl_lists.id'))
    .execute();

  const sdb = db as unknown as Kysely<SeedDb>;
  const now = Date.now();
  for (const b of builtIns) {
    const have = await sdb
      .selectFrom('network_acl_lists')
      .select('id')
      .where('name', '=', b.name)
      .where('vpc_id', 'is', null)
      .executeTakeFirst();
    if (have) continue;
    await sdb
      .insertInto('network_acl_lists')
      .values({
        uuid: randomUUID(),
        name: b.name,
        description: b.description,
        vpc_id: null,
        for_display: 1,
        created: now,
        removed: null,
      })
      .execute();
    const list = await sdb
      .selectFrom('network_acl_lists')
      .select('id')
      .where('name', '=', b.name)
      .where('vpc_id', 'is', null)
      .executeTakeFirstOrThrow();
    for (const [number, traffic] of [
      [1, 'Ingress'],
      [2, 'Egress'],
    ] as const) {
      await sdb
        .insertInto('network_acl_items')
        .values({
          uuid: randomUUID(),
          acl_id: Number(list.id),
          number,
          action: b.action,
          traffic_type: traffic,
          protocol: 'all',
          cidrs: '0.0.0.0/0',
          for_display: 1,
          state: 'Active',
          created: now,
        })
        .execute();
    }
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('networks').dropColumn('network_acl_id').execute();
  await db.schema.dropTable('network_acl_items').execute();
  await db.schema.dropTable('network_acl_lists').execute();
}
