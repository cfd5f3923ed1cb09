/**
 * Port forwarding, firewall and egress rules (src/rules): one `firewall_rules` row per rule (CloudStack's
 * firewall_rules with its port_forwarding_rules columns folded in: a PF row carries the guest side), and its
 * CIDRs in `firewall_rule_cidrs` (source = cidrlist, dest = destcidrlist). Deleted rules are kept, marked
 * `removed` (state Revoke), so a job's re-run can tell a deletion it committed from an id that never existed.
 */
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('firewall_rules'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('purpose', 'varchar(16)', (c) => c.notNull())
      .addColumn('traffic_type', 'varchar(8)', (c) => c.notNull())
      .addColumn('ip_allocation_id', 'bigint')
      .addColumn('network_id', 'bigint', (c) => c.notNull())
      .addColumn('account_id', 'bigint', (c) => c.notNull())
      .addColumn('domain_id', 'bigint', (c) => c.notNull())
      .addColumn('protocol', 'varchar(16)', (c) => c.notNull())
      .addColumn('start_port', 'integer')
      .addColumn('end_port', 'integer')
      .addColumn('icmp_type', 'integer')
      .addColumn('icmp_code', 'integer')
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('related_rule_id', 'bigint')
      .addColumn('for_display', 'smallint', (c) => c.notNull().defaultTo(1))
      .addColumn('generation', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('dest_ip', 'varchar(64)')
      .addColumn('private_start_port', 'integer')
      .addColumn('private_end_port', 'integer')
      .addColumn('vm_id', 'bigint')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();
  await db.schema
    .createIndex('firewall_rules_network_ix')
    .on('firewall_rules')
    .column('network_id')
    .execute();
  await db.schema
    .createIndex('firewall_rules_ip_ix')
    .on('firewall_rules')
    .column('ip_allocation_id')
    .execute();
  await db.schema.createIndex('firewall_rules_vm_ix').on('firewall_rules').column('vm_id').execute();
  await tableOptions(
    db,
    withId(db, db.schema.createTable('firewall_rule_cidrs'))
      .addColumn('rule_id', 'bigint', (c) => c.notNull())
      .addColumn('cidr', 'varchar(64)', (c) => c.notNull())
      .addColumn('kind', 'varchar(8)', (c) => c.notNull()),
  ).execute();
  await db.schema
    .createIndex('firewall_rule_cidrs_rule_ix')
    .on('firewall_rule_cidrs')
    .column('rule_id')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('firewall_rule_cidrs').execute();
  await db.schema.dropTable('firewall_rules').execute();
}
