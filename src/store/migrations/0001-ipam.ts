/**
 * The IPAM schema (src/addresses/tables.ts declares its TypeScript shape): zones, pods, physical networks,
 * VLAN/VNI ranges and their allocations, public IP ranges, networks, the address table and the MAC counter.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { dialectOf, tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  const d = dialectOf(db);
  // Address keys are fixed-width lowercase hex compared as strings; PostgreSQL's default (locale) collation
  // would order them correctly too but compares slower than bytes, and the allocator's window scans and
  // capacity counts are range scans on exactly this column.
  const key = d === 'postgres' ? sql`varchar(32) collate "C"` : sql`varchar(32)`;

  await tableOptions(
    db,
    db.schema
      .createTable('stacknet_meta')
      .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('value', 'varchar(255)', (c) => c.notNull()),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('zones'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('description', 'varchar(255)')
      .addColumn('dns1', 'varchar(64)')
      .addColumn('dns2', 'varchar(64)')
      .addColumn('internaldns1', 'varchar(64)')
      .addColumn('internaldns2', 'varchar(64)')
      .addColumn('ip6dns1', 'varchar(64)')
      .addColumn('ip6dns2', 'varchar(64)')
      .addColumn('guest_cidr', 'varchar(64)')
      .addColumn('domain', 'varchar(255)')
      .addColumn('network_type', 'varchar(16)', (c) => c.notNull().defaultTo('Advanced'))
      .addColumn('allocation_state', 'varchar(16)', (c) => c.notNull().defaultTo('Enabled'))
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('pods'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('zone_id', 'bigint', (c) => c.notNull().references('zones.id'))
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('gateway', 'varchar(64)', (c) => c.notNull())
      .addColumn('netmask', 'varchar(64)', (c) => c.notNull())
      .addColumn('start_ip', 'varchar(64)', (c) => c.notNull())
      .addColumn('end_ip', 'varchar(64)')
      .addColumn('allocation_state', 'varchar(16)', (c) => c.notNull().defaultTo('Enabled'))
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('physical_networks'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('zone_id', 'bigint', (c) => c.notNull().references('zones.id'))
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('isolation', 'varchar(8)', (c) => c.notNull())
      .addColumn('state', 'varchar(16)', (c) => c.notNull().defaultTo('Disabled'))
      .addColumn('tags', 'varchar(255)')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('vnet_ranges'))
      .addColumn('physical_network_id', 'bigint', (c) => c.notNull().references('physical_networks.id'))
      .addColumn('vnet_start', 'integer', (c) => c.notNull())
      .addColumn('vnet_end', 'integer', (c) => c.notNull()),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('vnet_allocations'))
      .addColumn('zone_id', 'bigint', (c) => c.notNull().references('zones.id'))
      .addColumn('physical_network_id', 'bigint', (c) => c.notNull().references('physical_networks.id'))
      .addColumn('vnet', 'integer', (c) => c.notNull())
      .addColumn('network_id', 'bigint')
      .addColumn('account_id', 'bigint')
      .addColumn('taken', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('vnet_allocations_pn_vnet_uq', ['physical_network_id', 'vnet']),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('networks'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('zone_id', 'bigint', (c) => c.notNull().references('zones.id'))
      .addColumn('physical_network_id', 'bigint', (c) => c.references('physical_networks.id'))
      .addColumn('account_id', 'bigint')
      .addColumn('domain_id', 'bigint')
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('display_text', 'varchar(255)')
      .addColumn('type', 'varchar(16)', (c) => c.notNull())
      .addColumn('state', 'varchar(32)', (c) => c.notNull())
      .addColumn('cidr', 'varchar(64)')
      .addColumn('gateway', 'varchar(64)')
      .addColumn('netmask', 'varchar(64)')
      .addColumn('network_cidr', 'varchar(64)')
      .addColumn('ip6_cidr', 'varchar(64)')
      .addColumn('ip6_gateway', 'varchar(64)')
      .addColumn('network_domain', 'varchar(255)')
      .addColumn('vnet', 'integer')
      .addColumn('vpc_id', 'bigint')
      .addColumn('offering_id', 'bigint')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();
  await db.schema.createIndex('networks_zone_idx').on('networks').columns(['zone_id']).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('public_ip_ranges'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('zone_id', 'bigint', (c) => c.notNull().references('zones.id'))
      .addColumn('physical_network_id', 'bigint', (c) => c.references('physical_networks.id'))
      .addColumn('vlan_tag', 'varchar(64)', (c) => c.notNull())
      .addColumn('gateway', 'varchar(64)')
      .addColumn('netmask', 'varchar(64)')
      .addColumn('family', 'smallint', (c) => c.notNull())
      .addColumn('start_key', key)
      .addColumn('end_key', key)
      .addColumn('ip6_gateway', 'varchar(64)')
      .addColumn('ip6_cidr', 'varchar(64)')
      .addColumn('ip6_start_key', key)
      .addColumn('ip6_end_key', key)
      .addColumn('vlan_type', 'varchar(16)', (c) => c.notNull())
      .addColumn('network_id', 'bigint', (c) => c.references('networks.id'))
      .addColumn('account_id', 'bigint')
      .addColumn('domain_id', 'bigint')
      .addColumn('for_system_vms', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();
  await db.schema
    .createIndex('public_ip_ranges_zone_idx')
    .on('public_ip_ranges')
    .columns(['zone_id'])
    .execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('ip_allocations'))
      .addColumn('scope', 'varchar(64)', (c) => c.notNull())
      .addColumn('family', 'smallint', (c) => c.notNull())
      .addColumn('address', key, (c) => c.notNull())
      .addColumn('range_id', 'bigint')
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('owner_kind', 'varchar(32)')
      .addColumn('owner_id', 'bigint')
      .addColumn('zone_id', 'bigint')
      .addColumn('account_id', 'bigint')
      .addColumn('domain_id', 'bigint')
      .addColumn('network_id', 'bigint')
      .addColumn('vpc_id', 'bigint')
      .addColumn('vm_id', 'bigint')
      .addColumn('source_nat', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('is_system', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('updated', 'bigint', (c) => c.notNull())
      // Guarantee 2's last line of defence, and (same column order) the index the allocator walks in
      // address order and capacity counts scan.
      .addUniqueConstraint('ip_allocations_scope_addr_uq', ['scope', 'family', 'address']),
  ).execute();
  await db.schema
    .createIndex('ip_allocations_owner_idx')
    .on('ip_allocations')
    .columns(['owner_kind', 'owner_id'])
    .execute();

  await tableOptions(
    db,
    db.schema
      .createTable('mac_sequences')
      .addColumn('zone_id', 'bigint', (c) => c.primaryKey())
      .addColumn('next_value', 'bigint', (c) => c.notNull()),
  ).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of [
    'mac_sequences',
    'ip_allocations',
    'public_ip_ranges',
    'networks',
    'vnet_allocations',
    'vnet_ranges',
    'physical_networks',
    'pods',
    'zones',
    'stacknet_meta',
  ]) {
    await db.schema.dropTable(t).execute();
  }
}
