/**
 * 0027's `ip_allocations_public_count_ix` goes: nothing reads it since 0031. It was the narrow index the COUNT(*)
 * of a whole zone's public IPs walked on PostgreSQL; 0031's counters answer that count now, and any other count
 * of listPublicIpAddresses filters on a column it does not hold (account, state, network, …), so the planner
 * visits the rows either way, through 0024's `ip_allocations_public_list_ix` (the same entries, ordered).
 *
 * What it cost (issue 16, docs/benchmarks.md "The database's cost per job"): an entry written by every public IP
 * allocation and again by every UPDATE of it that PostgreSQL cannot make HOT (an association's Allocating →
 * Allocated: `state` is in 0030's predicates), and one more relation for every statement that writes
 * ip_allocations to open and lock. PostgreSQL only, as 0027.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { dialectOf } from './helpers.js';

const NAME = 'ip_allocations_public_count_ix';

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return;
  await sql.raw(`drop index if exists ${NAME}`).execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return;
  await sql
    .raw(
      `create index if not exists ${NAME} on ip_allocations (zone_id) where owner_kind = 'publicip' and zone_id is not null`,
    )
    .execute(db);
}
