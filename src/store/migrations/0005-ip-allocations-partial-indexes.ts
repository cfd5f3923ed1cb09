/**
 * The four secondary indexes 0003-networking put on ip_allocations (uuid, account, range, network) become partial
 * (`WHERE <column> IS NOT NULL`) on SQLite and PostgreSQL. Every query that uses them compares the column with a
 * value (`= ?`, a join), which both databases prove implies IS NOT NULL, so each query keeps its index; what
 * changes is that a row whose column is NULL writes no entry. That is most rows for `uuid` (only public IPs have
 * one) and `range_id` (isolated guest networks have no range row), and an index entry is a B-tree page written to
 * the WAL at every commit: on SQLite about 4 µs of the ~50 µs an allocation costs, per index
 * (docs/benchmarks.md "IPAM allocation"). MariaDB has no partial indexes; its indexes stay as they are.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { dialectOf } from './helpers.js';

const INDEXES: [name: string, columns: string, notNull: string][] = [
  ['ip_allocations_uuid_idx', 'uuid', 'uuid'],
  ['ip_allocations_account_idx', 'account_id, scope', 'account_id'],
  ['ip_allocations_range_idx', 'range_id', 'range_id'],
  ['ip_allocations_network_idx', 'network_id', 'network_id'],
];

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) === 'mysql') return;
  for (const [name, columns, notNull] of INDEXES) {
    await sql.raw(`drop index ${name}`).execute(db);
    await sql
      .raw(`create index ${name} on ip_allocations (${columns}) where ${notNull} is not null`)
      .execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) === 'mysql') return;
  for (const [name, columns] of INDEXES) {
    await sql.raw(`drop index ${name}`).execute(db);
    await sql.raw(`create index ${name} on ip_allocations (${columns})`).execute(db);
  }
}
