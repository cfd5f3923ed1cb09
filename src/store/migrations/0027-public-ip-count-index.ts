/**
 * The index the COUNT(*) of listPublicIpAddresses walks on PostgreSQL (issue 16: a zone with 500,000 public IPs,
 * pagesize=500 in ≤ 50 ms p99). CloudStack always answers `count`, so a full page counts the zone's public IPs;
 * an exact count is a walk over the matching index entries, and its cost is the width of an entry. On 0024's
 * `(zone_id, scope, address, id)` PostgreSQL spends ~230–290 ns per entry (10 MB for 100,000 public IPs); on
 * `(zone_id)`, partial like 0024 and deduplicated by the B-tree, ~50–85 ns (696 kB). The planner takes it for the
 * count by itself (the smaller index for the same `owner_kind = 'publicip' AND zone_id = ?`); the page's ids
 * still come from 0024, which orders them. Cost: one more index entry per public IP allocation (guest NICs
 * write none: it is partial).
 *
 * `zone_id IS NOT NULL` is in the predicate so that only queries that name the zone can use it (`zone_id = ?`
 * implies it, a parameter too). Without it the planner took the index as "every public IP" for queries that
 * filter on owner_kind and something else: routerPublicNics' `owner_kind = 'publicip' AND network_id = ?` became
 * an Index Scan over the zone's 100,000 entries and their rows instead of a bitmap scan of the network's
 * (listRouters 1.5–2× slower at 200,000 addresses).
 *
 * PostgreSQL only. SQLite walks 0024 at ~20 ns an entry and a narrow index measured the same (2.0 against
 * 2.1–2.4 ms for 100,000). MariaDB has no partial indexes: `(owner_kind, zone_id)` would take an entry from every
 * allocation, guest NICs included, for ~140 instead of ~190 ns per counted entry (10,000 public IPs: 1.4 against
 * 1.9 ms at best), still ~70 ms at 500,000; not worth a write on the deploy path.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { dialectOf } from './helpers.js';

const NAME = 'ip_allocations_public_count_ix';

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return;
  await sql
    .raw(
      `create index ${NAME} on ip_allocations (zone_id) where owner_kind = 'publicip' and zone_id is not null`,
    )
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return;
  await sql.raw(`drop index ${NAME}`).execute(db);
}
