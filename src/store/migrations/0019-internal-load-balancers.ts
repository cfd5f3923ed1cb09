/**
 * Internal load balancing in a VPC tier (issue 18 item 2, src/lb): CloudStack's load_balancing_rules.scheme
 * (Public | Internal) and, for an internal rule, its source address in the tier (`source_ip`, CloudStack's
 * source_ip_address) and the internal LB appliance serving it (`lb_vm_id`: the routers row of role `internallb`
 * that holds the address; the address itself is that router's guest allocation, released when it is destroyed).
 * Public rules keep NULLs.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('load_balancing_rules')
    .addColumn('scheme', 'varchar(16)', (c) => c.notNull().defaultTo('Public'))
    .execute();
  await db.schema.alterTable('load_balancing_rules').addColumn('source_ip', 'varchar(64)').execute();
  await db.schema.alterTable('load_balancing_rules').addColumn('lb_vm_id', 'bigint').execute();
  await db.schema
    .createIndex('load_balancing_rules_lb_vm_ix')
    .on('load_balancing_rules')
    .column('lb_vm_id')
    .execute();
}
