/**
 * Dedicated guest VLAN ranges and guest IPv6 prefixes (issue 20).
 *
 * - `dedicated_guest_vlan_ranges`: CloudStack's account_guest_vlan_map — a span of a physical network's VLANs
 *   reserved for one account. Which VLAN a network takes stays in vnet_allocations (UNIQUE(pn, vnet)).
 * - `guest_ipv6_prefixes`: a zone's prefixes (/64 or shorter) that IPv6 isolated networks and VPC tiers take
 *   their /64 from; `guest_ipv6_subnets`: the /64s handed out, one row each, keyed by the subnet's network
 *   address as the 32-hex-digit sortable key ip_allocations uses. UNIQUE(prefix_id, subnet_key) makes a /64
 *   impossible to hand out twice and UNIQUE(network_id) a second /64 for one network; nothing enumerates a prefix.
 * (`network_offerings.internet_protocol`, IPv4 or DualStack, is 0009's.)
 */
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('dedicated_guest_vlan_ranges'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('physical_network_id', 'bigint', (c) => c.notNull().references('physical_networks.id'))
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('vnet_start', 'integer', (c) => c.notNull())
      .addColumn('vnet_end', 'integer', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();
  await db.schema
    .createIndex('dedicated_guest_vlan_ranges_pn_idx')
    .on('dedicated_guest_vlan_ranges')
    .columns(['physical_network_id', 'vnet_start'])
    .execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('guest_ipv6_prefixes'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('zone_id', 'bigint', (c) => c.notNull().references('zones.id'))
      .addColumn('prefix', 'varchar(64)', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('guest_ipv6_subnets'))
      .addColumn('prefix_id', 'bigint', (c) => c.notNull().references('guest_ipv6_prefixes.id'))
      .addColumn('subnet_key', 'varchar(32)', (c) => c.notNull())
      .addColumn('subnet', 'varchar(64)', (c) => c.notNull())
      .addColumn('network_id', 'bigint', (c) => c.unique())
      .addColumn('zone_id', 'bigint', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('guest_ipv6_subnets_prefix_subnet_uq', ['prefix_id', 'subnet_key']),
  ).execute();
  await db.schema
    .createIndex('guest_ipv6_subnets_zone_idx')
    .on('guest_ipv6_subnets')
    .column('zone_id')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('guest_ipv6_subnets').execute();
  await db.schema.dropTable('guest_ipv6_prefixes').execute();
  await db.schema.dropTable('dedicated_guest_vlan_ranges').execute();
}
