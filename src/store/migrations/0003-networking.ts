/**
 * Networking (issue 4): traffic types, offerings, templates, VPCs, portable ranges, and the columns the public
 * IP and network APIs need on the IPAM tables of 0001 (added here, not edited there). Seeds the built-in
 * offerings and template with CloudStack's names.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { dialectOf, tableOptions, withId } from './helpers.js';
import {
  defaultNetworkOfferings,
  defaultServiceOfferings,
  defaultTemplates,
  defaultVpcOfferings,
  encodeServices,
} from '../../offerings/defaults.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  const d = dialectOf(db);
  const key = d === 'postgres' ? sql`varchar(32) collate "C"` : sql`varchar(32)`;

  await tableOptions(
    db,
    withId(db, db.schema.createTable('traffic_types'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('physical_network_id', 'bigint', (c) => c.notNull().references('physical_networks.id'))
      .addColumn('traffic_type', 'varchar(16)', (c) => c.notNull())
      .addColumn('kvm_label', 'varchar(255)')
      .addColumn('xen_label', 'varchar(255)')
      .addColumn('vmware_label', 'varchar(255)')
      .addColumn('hyperv_label', 'varchar(255)')
      .addColumn('ovm3_label', 'varchar(255)')
      .addColumn('vlan', 'varchar(64)')
      .addColumn('created', 'bigint', (c) => c.notNull())
      // One Guest/Public/... per physical network, as CloudStack's addTrafficType refuses a second.
      .addUniqueConstraint('traffic_types_pn_type_uq', ['physical_network_id', 'traffic_type']),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('network_offerings'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('display_text', 'varchar(255)', (c) => c.notNull())
      .addColumn('guest_ip_type', 'varchar(16)', (c) => c.notNull())
      .addColumn('traffic_type', 'varchar(16)', (c) => c.notNull().defaultTo('Guest'))
      .addColumn('services', 'varchar(1024)', (c) => c.notNull().defaultTo(''))
      .addColumn('for_vpc', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('specify_vlan', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('specify_ip_ranges', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('is_persistent', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('conserve_mode', 'smallint', (c) => c.notNull().defaultTo(1))
      .addColumn('egress_default_policy', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('availability', 'varchar(16)', (c) => c.notNull().defaultTo('Optional'))
      .addColumn('state', 'varchar(16)', (c) => c.notNull().defaultTo('Enabled'))
      .addColumn('is_default', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('network_rate', 'integer')
      .addColumn('tags', 'varchar(255)')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('vpc_offerings'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('display_text', 'varchar(255)', (c) => c.notNull())
      .addColumn('services', 'varchar(1024)', (c) => c.notNull().defaultTo(''))
      .addColumn('state', 'varchar(16)', (c) => c.notNull().defaultTo('Enabled'))
      .addColumn('is_default', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('service_offerings'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('display_text', 'varchar(255)', (c) => c.notNull())
      .addColumn('cpu_number', 'integer', (c) => c.notNull())
      .addColumn('cpu_speed', 'integer', (c) => c.notNull())
      .addColumn('memory', 'integer', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('templates'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('display_text', 'varchar(255)', (c) => c.notNull())
      .addColumn('os_type_name', 'varchar(255)', (c) => c.notNull())
      .addColumn('format', 'varchar(16)', (c) => c.notNull())
      .addColumn('hypervisor', 'varchar(32)', (c) => c.notNull())
      .addColumn('template_type', 'varchar(16)', (c) => c.notNull())
      .addColumn('password_enabled', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('is_public', 'smallint', (c) => c.notNull().defaultTo(1))
      .addColumn('is_featured', 'smallint', (c) => c.notNull().defaultTo(1))
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('vpcs'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('zone_id', 'bigint', (c) => c.notNull().references('zones.id'))
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('display_text', 'varchar(255)')
      .addColumn('cidr', 'varchar(64)', (c) => c.notNull())
      .addColumn('vpc_offering_id', 'bigint', (c) => c.notNull().references('vpc_offerings.id'))
      .addColumn('network_domain', 'varchar(255)')
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('restart_required', 'smallint', (c) => c.notNull().defaultTo(0))
      .addColumn('dns1', 'varchar(64)')
      .addColumn('dns2', 'varchar(64)')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();
  await db.schema.createIndex('vpcs_account_idx').on('vpcs').columns(['account_id']).execute();

  await tableOptions(
    db,
    withId(db, db.schema.createTable('portable_ip_ranges'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('region_id', 'integer', (c) => c.notNull())
      .addColumn('gateway', 'varchar(64)', (c) => c.notNull())
      .addColumn('netmask', 'varchar(64)', (c) => c.notNull())
      .addColumn('start_key', key, (c) => c.notNull())
      .addColumn('end_key', key, (c) => c.notNull())
      .addColumn('vlan_tag', 'varchar(64)')
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();

  // The public IP API needs a stable id per allocation, static NAT and display flags on the one address table.
  const addColumns: [
    string,
    string,
    (t: ReturnType<Kysely<unknown>['schema']['alterTable']>) => { execute(): Promise<void> },
  ][] = [
    ['ip_allocations', 'uuid', (t) => t.addColumn('uuid', 'varchar(36)')],
    [
      'ip_allocations',
      'static_nat',
      (t) => t.addColumn('static_nat', 'smallint', (c) => c.notNull().defaultTo(0)),
    ],
    ['ip_allocations', 'vm_ip', (t) => t.addColumn('vm_ip', 'varchar(64)')],
    [
      'ip_allocations',
      'for_display',
      (t) => t.addColumn('for_display', 'smallint', (c) => c.notNull().defaultTo(1)),
    ],
    ['networks', 'acl_type', (t) => t.addColumn('acl_type', 'varchar(16)')],
    [
      'networks',
      'restart_required',
      (t) => t.addColumn('restart_required', 'smallint', (c) => c.notNull().defaultTo(0)),
    ],
    ['networks', 'dns1', (t) => t.addColumn('dns1', 'varchar(64)')],
    ['networks', 'dns2', (t) => t.addColumn('dns2', 'varchar(64)')],
    [
      'networks',
      'specify_vlan',
      (t) => t.addColumn('specify_vlan', 'smallint', (c) => c.notNull().defaultTo(0)),
    ],
    ['physical_networks', 'network_speed', (t) => t.addColumn('network_speed', 'varchar(32)')],
    ['physical_networks', 'domain_id', (t) => t.addColumn('domain_id', 'bigint')],
  ];
  for (const [table, , add] of addColumns) await add(db.schema.alterTable(table)).execute();

  await db.schema.createIndex('ip_allocations_uuid_idx').on('ip_allocations').columns(['uuid']).execute();
  // Account limit counts and "in use" checks (range delete, capacity types 8) walk these, never the whole table.
  await db.schema
    .createIndex('ip_allocations_account_idx')
    .on('ip_allocations')
    .columns(['account_id', 'scope'])
    .execute();
  await db.schema
    .createIndex('ip_allocations_range_idx')
    .on('ip_allocations')
    .columns(['range_id'])
    .execute();
  await db.schema
    .createIndex('ip_allocations_network_idx')
    .on('ip_allocations')
    .columns(['network_id'])
    .execute();
  await db.schema
    .createIndex('vnet_allocations_zone_idx')
    .on('vnet_allocations')
    .columns(['zone_id'])
    .execute();

  const now = Date.now();
  const anyDb = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
  // Each seed row only if its name is not there yet: on MariaDB a migration interrupted after some of them is
  // run again from the top (store/resumable-mysql.ts). A fresh database gets every row, as before.
  const seeded = async (table: string, name: string) =>
    (await anyDb.selectFrom(table).select('name').where('name', '=', name).executeTakeFirst()) !== undefined;
  for (const o of defaultNetworkOfferings) {
    if (await seeded('network_offerings', o.name)) continue;
    await anyDb
      .insertInto('network_offerings')
      .values({
        uuid: randomUUID(),
        name: o.name,
        display_text: o.displayText,
        guest_ip_type: o.guestIpType,
        traffic_type: 'Guest',
        services: encodeServices(o.services),
        for_vpc: o.forVpc ? 1 : 0,
        specify_vlan: o.specifyVlan ? 1 : 0,
        specify_ip_ranges: o.specifyIpRanges ? 1 : 0,
        is_persistent: o.isPersistent ? 1 : 0,
        conserve_mode: o.conserveMode ? 1 : 0,
        egress_default_policy: o.egressDefaultPolicy ? 1 : 0,
        availability: o.availability,
        state: 'Enabled',
        is_default: 1,
        created: now,
      })
      .execute();
  }
  for (const o of defaultVpcOfferings) {
    if (await seeded('vpc_offerings', o.name)) continue;
    await anyDb
      .insertInto('vpc_offerings')
      .values({
        uuid: randomUUID(),
        name: o.name,
        display_text: o.displayText,
        services: encodeServices(o.services),
        state: 'Enabled',
        is_default: 1,
        created: now,
      })
      .execute();
  }
  for (const o of defaultServiceOfferings) {
    if (await seeded('service_offerings', o.name)) continue;
    await anyDb
      .insertInto('service_offerings')
      .values({
        uuid: randomUUID(),
        name: o.name,
        display_text: o.displayText,
        cpu_number: o.cpuNumber,
        cpu_speed: o.cpuSpeed,
        memory: o.memory,
        created: now,
      })
      .execute();
  }
  for (const t of defaultTemplates) {
    if (await seeded('templates', t.name)) continue;
    await anyDb
      .insertInto('templates')
      .values({
        uuid: randomUUID(),
        name: t.name,
        display_text: t.displayText,
        os_type_name: t.osTypeName,
        format: t.format,
        hypervisor: t.hypervisor,
        template_type: t.templateType,
        password_enabled: t.passwordEnabled ? 1 : 0,
        is_public: 1,
        is_featured: 1,
        created: now,
      })
      .execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const idx of [
    'ip_allocations_uuid_idx',
    'ip_allocations_account_idx',
    'ip_allocations_range_idx',
    'ip_allocations_network_idx',
  ]) {
    const drop = db.schema.dropIndex(idx);
    await (dialectOf(db) === 'mysql' ? drop.on('ip_allocations') : drop).execute();
  }
  const dropVnet = db.schema.dropIndex('vnet_allocations_zone_idx');
  await (dialectOf(db) === 'mysql' ? dropVnet.on('vnet_allocations') : dropVnet).execute();
  for (const [table, column] of [
    ['ip_allocations', 'uuid'],
    ['ip_allocations', 'static_nat'],
    ['ip_allocations', 'vm_ip'],
    ['ip_allocations', 'for_display'],
    ['networks', 'acl_type'],
    ['networks', 'restart_required'],
    ['networks', 'dns1'],
    ['networks', 'dns2'],
    ['networks', 'specify_vlan'],
    ['physical_networks', 'network_speed'],
    ['physical_networks', 'domain_id'],
  ] as const) {
    await db.schema.alterTable(table).dropColumn(column).execute();
  }
  for (const t of [
    'portable_ip_ranges',
    'vpcs',
    'templates',
    'service_offerings',
    'vpc_offerings',
    'network_offerings',
    'traffic_types',
  ]) {
    await db.schema.dropTable(t).execute();
  }
}
