/**
 * The index listPublicIpAddresses pages a zone with (issue 16: a zone with 500,000 public IPs). The list orders
 * a zone's public IPs by (scope, address) and pages with OFFSET; with this index the page's ids, a deep OFFSET and
 * the COUNT(*) of the total are index-only scans, and no sort of the zone's rows is needed. `id` is a column so
 * that PostgreSQL can answer the id query from the index alone (SQLite's rowid and InnoDB's primary key are in
 * every index already).
 *
 * On SQLite and PostgreSQL it is partial (`WHERE owner_kind = 'publicip'`): guest NIC addresses, the bulk of the
 * table and of the allocations a deploy burst makes, write no entry (the cost 0005 describes). The query names
 * the kind as a literal so both planners can prove the index applies. MariaDB has no partial indexes: there the
 * kind is the index's first column.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { dialectOf } from './helpers.js';

const NAME = 'ip_allocations_public_list_ix';

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) === 'mysql') {
    await sql.raw(`create index ${NAME} on ip_allocations (owner_kind, zone_id, scope, address)`).execute(db);
    return;
  }
  await sql
    .raw(`create index ${NAME} on ip_allocations (zone_id, scope, address, id) where owner_kind = 'publicip'`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(`drop index ${NAME}${dialectOf(db) === 'mysql' ? ' on ip_allocations' : ''}`).execute(db);
}
