/**
 * The index routerPublicNics reads (src/routers/public-inputs.ts; listRouters and the driver runtime, once per
 * router): for a network's (or a VPC's) Allocated public IPs, the first address of each range. On `(network_id)`
 * alone that GROUP BY read the row of every allocation of the network, its guest NICs too: 20,000 rows for a
 * network of 10,000 VMs and 10,000 public IPs, 55–70 ms on SQLite at 200,000 addresses and ~175 ms per router
 * at 1,000,000 (listRouters 8.8 s for a page of 50). This index holds only those public IPs, in the order the
 * GROUP BY wants, so the heads come from index entries alone (2 ms at 200,000).
 *
 * Partial, with the predicate routerPublicNics writes as literals (SQLite uses a partial index only when it can
 * prove at prepare time that the query implies the predicate, which a bound parameter never does). Cost: one
 * entry per Allocated public IP (guest NICs write none). SQLite and PostgreSQL only: MariaDB has no partial
 * indexes, and a full one would put an entry of every allocation, every guest NIC of every deploy, in it.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { dialectOf } from './helpers.js';

const HELD = `owner_kind = 'publicip' and family = 4 and state = 'Allocated'`;
const INDEXES: [name: string, owner: string][] = [
  ['ip_allocations_network_public_heads_ix', 'network_id'],
  ['ip_allocations_vpc_public_heads_ix', 'vpc_id'],
];

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) === 'mysql') return;
  for (const [name, owner] of INDEXES)
    await sql
      .raw(
        `create index ${name} on ip_allocations (${owner}, scope, range_id, address) where ${HELD} and ${owner} is not null`,
      )
      .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) === 'mysql') return;
  for (const [name] of INDEXES) await sql.raw(`drop index ${name}`).execute(db);
}
