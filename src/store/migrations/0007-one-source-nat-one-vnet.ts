/**
 * The database itself refuses a second source-NAT public IP for one network (or one VPC) and a second VLAN/VNI
 * for one network: implementing a network holds the network row (networks/lifecycle.ts), and these constraints
 * are the last line of defence behind it, as UNIQUE(scope, family, address) is for addresses.
 *
 * - SQLite and PostgreSQL: partial unique indexes (`WHERE source_nat = 1 AND owner_kind = 'publicip' ...`).
 * - MariaDB has no partial indexes: an invisible virtual column that is the network (VPC) id for a source-NAT
 *   public IP and NULL otherwise, with a unique index on it (a unique index takes any number of NULLs).
 * - vnet_allocations.network_id: a plain unique index on all three (NULLs again are not compared).
 *
 * Before the indexes, the duplicates an earlier version could leave (issue 12) are settled: the oldest
 * source-NAT IP of a network/VPC stays its source NAT, the others stay associated as ordinary IPs; a VLAN the
 * network does not carry as its vnet is given back. Both statements are safe to run twice (MariaDB re-runs an
 * interrupted migration from the top).
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { dialectOf } from './helpers.js';

const SNAT = `owner_kind = 'publicip' and source_nat = 1`;

export async function up(db: Kysely<unknown>): Promise<void> {
  const d = dialectOf(db);
  if (d === 'mysql') {
    // MariaDB cannot name the target table in a subquery of its UPDATE/DELETE: joins instead.
    await sql
      .raw(
        `update ip_allocations a join ip_allocations b on b.network_id = a.network_id
           and b.owner_kind = 'publicip' and b.source_nat = 1 and b.id < a.id
         set a.source_nat = 0 where a.owner_kind = 'publicip' and a.source_nat = 1`,
      )
      .execute(db);
    await sql
      .raw(
        `update ip_allocations a join ip_allocations b on b.vpc_id = a.vpc_id and b.network_id is null
           and b.owner_kind = 'publicip' and b.source_nat = 1 and b.id < a.id
         set a.source_nat = 0 where a.owner_kind = 'publicip' and a.source_nat = 1 and a.network_id is null`,
      )
      .execute(db);
    await sql
      .raw(
        `delete v from vnet_allocations v join networks n on n.id = v.network_id
         where n.vnet is null or n.vnet <> v.vnet`,
      )
      .execute(db);
    await sql
      .raw(
        `delete v1 from vnet_allocations v1 join vnet_allocations v2 on v2.network_id = v1.network_id and v2.id < v1.id`,
      )
      .execute(db);
    await db.schema
      .alterTable('ip_allocations')
      .addColumn('snat_network_id', 'bigint', (c) =>
        c.generatedAlwaysAs(sql.raw(`case when ${SNAT} then network_id end`)).modifyEnd(sql`invisible`),
      )
      .execute();
    await db.schema
      .alterTable('ip_allocations')
      .addColumn('snat_vpc_id', 'bigint', (c) =>
        c
          .generatedAlwaysAs(sql.raw(`case when ${SNAT} and network_id is null then vpc_id end`))
          .modifyEnd(sql`invisible`),
      )
      .execute();
    await db.schema
      .createIndex('ip_allocations_snat_network_uq')
      .unique()
      .on('ip_allocations')
      .column('snat_network_id')
      .execute();
    await db.schema
      .createIndex('ip_allocations_snat_vpc_uq')
      .unique()
      .on('ip_allocations')
      .column('snat_vpc_id')
      .execute();
  } else {
    await sql
      .raw(
        `update ip_allocations set source_nat = 0 where ${SNAT} and network_id is not null and exists (
           select 1 from ip_allocations b where b.network_id = ip_allocations.network_id
             and b.owner_kind = 'publicip' and b.source_nat = 1 and b.id < ip_allocations.id)`,
      )
      .execute(db);
    await sql
      .raw(
        `update ip_allocations set source_nat = 0 where ${SNAT} and network_id is null and vpc_id is not null
           and exists (select 1 from ip_allocations b where b.vpc_id = ip_allocations.vpc_id
             and b.network_id is null and b.owner_kind = 'publicip' and b.source_nat = 1
             and b.id < ip_allocations.id)`,
      )
      .execute(db);
    await sql
      .raw(
        `delete from vnet_allocations where network_id is not null and exists (
           select 1 from networks n where n.id = vnet_allocations.network_id
             and (n.vnet is null or n.vnet <> vnet_allocations.vnet))`,
      )
      .execute(db);
    await sql
      .raw(
        `delete from vnet_allocations where exists (select 1 from vnet_allocations v2
           where v2.network_id = vnet_allocations.network_id and v2.id < vnet_allocations.id)`,
      )
      .execute(db);
    await sql
      .raw(
        `create unique index ip_allocations_snat_network_uq on ip_allocations (network_id)
           where ${SNAT} and network_id is not null`,
      )
      .execute(db);
    await sql
      .raw(
        `create unique index ip_allocations_snat_vpc_uq on ip_allocations (vpc_id)
           where ${SNAT} and network_id is null and vpc_id is not null`,
      )
      .execute(db);
  }
  await db.schema
    .createIndex('vnet_allocations_network_uq')
    .unique()
    .on('vnet_allocations')
    .column('network_id')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const d = dialectOf(db);
  if (d === 'mysql') {
    await db.schema.dropIndex('vnet_allocations_network_uq').on('vnet_allocations').execute();
    await db.schema.dropIndex('ip_allocations_snat_network_uq').on('ip_allocations').execute();
    await db.schema.dropIndex('ip_allocations_snat_vpc_uq').on('ip_allocations').execute();
    await db.schema.alterTable('ip_allocations').dropColumn('snat_network_id').execute();
    await db.schema.alterTable('ip_allocations').dropColumn('snat_vpc_id').execute();
    return;
  }
  await db.schema.dropIndex('vnet_allocations_network_uq').execute();
  await db.schema.dropIndex('ip_allocations_snat_network_uq').execute();
  await db.schema.dropIndex('ip_allocations_snat_vpc_uq').execute();
}
