/**
 * Public load balancer rules on the virtual router (src/lb). As in CloudStack, a rule is a `firewall_rules` row
 * (purpose LoadBalancing: its IP, public port, network, owner, state and generation, so conflicts, router bumps
 * and cleanups are the rules module's) plus its own columns in `load_balancing_rules`; members in
 * `load_balancer_vm_map` (one row per VM and guest IP: vmidipmap can add a VM's secondary IPs), stickiness and
 * health check policies in `load_balancer_policies`.
 */
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    db.schema
      .createTable('load_balancing_rules')
      .addColumn('rule_id', 'bigint', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('description', 'varchar(4096)')
      .addColumn('algorithm', 'varchar(16)', (c) => c.notNull())
      .addColumn('private_port', 'integer', (c) => c.notNull())
      .addColumn('lb_protocol', 'varchar(16)', (c) => c.notNull()),
  ).execute();
  await tableOptions(
    db,
    withId(db, db.schema.createTable('load_balancer_vm_map'))
      .addColumn('rule_id', 'bigint', (c) => c.notNull())
      .addColumn('vm_id', 'bigint', (c) => c.notNull())
      .addColumn('vm_ip', 'varchar(64)', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      // CloudStack: "VM ... with <ip> is already mapped to load balancer"; the database makes it impossible.
      .addUniqueConstraint('load_balancer_vm_map_uq', ['rule_id', 'vm_id', 'vm_ip']),
  ).execute();
  await db.schema
    .createIndex('load_balancer_vm_map_vm_ix')
    .on('load_balancer_vm_map')
    .column('vm_id')
    .execute();
  await tableOptions(
    db,
    withId(db, db.schema.createTable('load_balancer_policies'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('rule_id', 'bigint', (c) => c.notNull())
      .addColumn('kind', 'varchar(16)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)')
      .addColumn('description', 'varchar(4096)')
      .addColumn('method', 'varchar(32)')
      .addColumn('params', 'varchar(4096)')
      .addColumn('ping_path', 'varchar(255)')
      .addColumn('interval_time', 'integer')
      .addColumn('response_timeout', 'integer')
      .addColumn('healthy_threshold', 'integer')
      .addColumn('unhealthy_threshold', 'integer')
      .addColumn('for_display', 'smallint', (c) => c.notNull().defaultTo(1))
      .addColumn('created', 'bigint', (c) => c.notNull()),
  ).execute();
  await db.schema
    .createIndex('load_balancer_policies_rule_ix')
    .on('load_balancer_policies')
    .column('rule_id')
    .execute();
}
