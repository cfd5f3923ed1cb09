/**
 * 0030's index for MariaDB, which has no partial indexes (issue 16: listRouters on a zone of 1,000,000 addresses
 * took 25.6 s there). routerPublicNics (src/routers/public-inputs.ts; listRouters and the driver runtime, once per
 * router) groups a network's (or a VPC's) Allocated IPv4 public IPs by range for the first address of each; on
 * `(network_id)` MariaDB read the row of every allocation of the network, its guest NICs too (20,000 rows for a
 * network of 10,000 VMs and 10,000 public IPs).
 *
 * Two virtual columns hold the network (the VPC) of an Allocated IPv4 public IP and NULL for every other row,
 * the predicate 0030 puts in its partial indexes; each is indexed with `(scope, range_id, address)` after it, so
 * the GROUP BY reads the network's entries alone, in order, never a row. MariaDB indexes virtual columns (the
 * value is computed when the row is written); it does not match an expression in a query to such a column, so
 * routerPublicNics names the column on MariaDB. INVISIBLE: `SELECT *` does not return them and an INSERT need not
 * name them.
 *
 * Cost: InnoDB keeps an entry for a NULL key too, so every allocation (guest NICs included) writes one more
 * secondary-index entry, `(NULL, scope, NULL, address, id)`: the price 0030 would not pay with a plain index,
 * here for an index that answers from its entries alone.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { dialectOf } from './helpers.js';

const HELD = `owner_kind = 'publicip' and family = 4 and state = 'Allocated'`;
/** [column, what it holds, its index] */
export const MARIADB_HEADS: [column: string, owner: string, index: string][] = [
  ['held_public_network_id', 'network_id', 'ip_allocations_network_public_heads_ix'],
  ['held_public_vpc_id', 'vpc_id', 'ip_allocations_vpc_public_heads_ix'],
];

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'mysql') return;
  for (const [column, owner] of MARIADB_HEADS)
    await sql
      .raw(
        `alter table ip_allocations add column if not exists ${column} bigint
         as (case when ${HELD} then ${owner} end) virtual invisible`,
      )
      .execute(db);
  for (const [column, , index] of MARIADB_HEADS)
    await sql
      .raw(`create index if not exists ${index} on ip_allocations (${column}, scope, range_id, address)`)
      .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'mysql') return;
  for (const [column, , index] of MARIADB_HEADS) {
    await sql.raw(`drop index if exists ${index} on ip_allocations`).execute(db);
    await sql.raw(`alter table ip_allocations drop column if exists ${column}`).execute(db);
  }
}
