/**
 * VMs, NICs (and their secondary IPs), virtual routers and SSH key pairs (src/vms/tables.ts declares the shape).
 */
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('vms'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('instance_name', 'varchar(255)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('display_name', 'varchar(255)', (c) => c.notNull())
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('zone_id', 'bigint', (c) => c.notNull().references('zones.id'))
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('user_id', 'bigint')
      .addColumn('service_offering_id', 'bigint')
      .addColumn('template_id', 'bigint')
      .addColumn('user_data', 'text')
      .addColumn('keypairs', 'varchar(1024)')
      .addColumn('ssh_public_keys', 'text')
      .addColumn('password', 'varchar(255)')
      .addColumn('destroyed', 'bigint')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();
  await db.schema.createIndex('vms_account_idx').on('vms').columns(['account_id']).execute();
  await db.schema.createIndex('vms_state_idx').on('vms').columns(['state', 'destroyed']).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('nics'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('vm_id', 'bigint', (c) => c.notNull().references('vms.id'))
      .addColumn('network_id', 'bigint', (c) => c.notNull().references('networks.id'))
      .addColumn('zone_id', 'bigint', (c) => c.notNull())
      .addColumn('mac', 'varchar(17)', (c) => c.notNull())
      .addColumn('ipv4', 'varchar(64)')
      .addColumn('ipv6', 'varchar(64)')
      .addColumn('ip_allocation_id', 'bigint')
      .addColumn('is_default', 'smallint', (c) => c.notNull())
      .addColumn('device_id', 'integer', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      // MACs unique per zone: a second NIC with the same MAC on one L2 domain would break DHCP and ARP.
      .addUniqueConstraint('nics_zone_mac_uq', ['zone_id', 'mac']),
  ).execute();
  await db.schema.createIndex('nics_vm_idx').on('nics').columns(['vm_id']).execute();
  await db.schema.createIndex('nics_network_idx').on('nics').columns(['network_id']).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('nic_secondary_ips'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('nic_id', 'bigint', (c) => c.notNull().references('nics.id'))
      .addColumn('vm_id', 'bigint', (c) => c.notNull())
      .addColumn('network_id', 'bigint', (c) => c.notNull())
      .addColumn('ipv4', 'varchar(64)', (c) => c.notNull())
      .addColumn('ip_allocation_id', 'bigint')
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();
  await db.schema
    .createIndex('nic_secondary_ips_nic_idx')
    .on('nic_secondary_ips')
    .columns(['nic_id'])
    .execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('routers'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('network_id', 'bigint', (c) => c.notNull().references('networks.id'))
      .addColumn('zone_id', 'bigint', (c) => c.notNull())
      .addColumn('account_id', 'bigint')
      .addColumn('domain_id', 'bigint')
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('role', 'varchar(16)', (c) => c.notNull())
      .addColumn('guest_ip', 'varchar(64)')
      .addColumn('guest_mac', 'varchar(17)')
      .addColumn('control_ip', 'varchar(64)')
      .addColumn('control_port', 'integer')
      .addColumn('secret_sealed', 'varchar(512)', (c) => c.notNull())
      .addColumn('public_ip', 'varchar(64)')
      .addColumn('desired_generation', 'bigint', (c) => c.notNull())
      .addColumn('applied_generation', 'bigint')
      .addColumn('applied_hash', 'varchar(128)')
      .addColumn('health', 'text')
      .addColumn('health_checked', 'bigint')
      .addColumn('last_error', 'varchar(2048)')
      .addColumn('lease_owner', 'varchar(64)')
      .addColumn('lease_until', 'bigint')
      .addColumn('version', 'varchar(32)', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();
  await db.schema.createIndex('routers_network_idx').on('routers').columns(['network_id']).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('ssh_keypairs'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('public_key', 'text', (c) => c.notNull())
      .addColumn('fingerprint', 'varchar(128)', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('ssh_keypairs_account_name_uq', ['account_id', 'name']),
  ).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['ssh_keypairs', 'routers', 'nic_secondary_ips', 'nics', 'vms']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
