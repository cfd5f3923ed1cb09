/**
 * SQLite allocation without Kysely: the same two statements as address-repository.ts, prepared once per
 * connection. Kysely's SQLite driver prepares every statement anew and adds a few promise hops per query,
 * which halves the commit rate of a one-allocation transaction (measured: ~7,600/s vs ~15,000/s with
 * synchronous=NORMAL on the bench machine); see docs/benchmarks.md "IPAM allocation".
 *
 * Callers must hold Kysely's connection (`store.db.connection().execute(...)`): better-sqlite3 has one
 * connection per store, and Kysely's mutex around it is what keeps our BEGIN/COMMIT from interleaving with a
 * Kysely transaction of another caller in this process. Other processes are kept out by BEGIN IMMEDIATE.
 */
import type { Database as SqliteConnection, Statement } from 'better-sqlite3';
import type { NewAllocationRow, WindowQuery } from './address-repository.js';

interface Prepared {
  windowUp: Statement;
  windowDown: Statement;
  insert: Statement;
}

const cache = new WeakMap<SqliteConnection, Prepared>();

function prepared(conn: SqliteConnection): Prepared {
  let p = cache.get(conn);
  if (!p) {
    const window = (op: string, bound: string, order: string) =>
      conn
        .prepare(
          `select address from ip_allocations where scope = ? and family = ? and address ${op} ? ` +
            `and address ${bound} ? order by address ${order} limit ?`,
        )
        .pluck();
    p = {
      windowUp: window('>=', '<=', 'asc'),
      windowDown: window('<=', '>=', 'desc'),
      insert: conn
        .prepare(
          `insert into ip_allocations (scope, family, address, range_id, state, owner_kind, owner_id, zone_id,
             account_id, domain_id, network_id, vpc_id, vm_id, source_nat, is_system, created, updated)
           values (@scope, @family, @address, @range_id, @state, @owner_kind, @owner_id, @zone_id,
             @account_id, @domain_id, @network_id, @vpc_id, @vm_id, @source_nat, @is_system, @created, @updated)
           on conflict (scope, family, address) do nothing returning id`,
        )
        .pluck(),
    };
    cache.set(conn, p);
  }
  return p;
}

export function sqliteTakenWindow(conn: SqliteConnection, q: WindowQuery): string[] {
  const p = prepared(conn);
  return (q.direction === 'up' ? p.windowUp : p.windowDown).all(
    q.scope,
    q.family,
    q.fromKey,
    q.boundKey,
    q.limit,
  ) as string[];
}

/** The new row's id, or null when the address is taken. */
export function sqliteInsertAllocation(conn: SqliteConnection, row: NewAllocationRow): number | null {
  const id = prepared(conn).insert.get({
    scope: row.scope,
    family: row.family,
    address: row.address,
    range_id: row.range_id ?? null,
    state: row.state,
    owner_kind: row.owner_kind ?? null,
    owner_id: row.owner_id ?? null,
    zone_id: row.zone_id ?? null,
    account_id: row.account_id ?? null,
    domain_id: row.domain_id ?? null,
    network_id: row.network_id ?? null,
    vpc_id: row.vpc_id ?? null,
    vm_id: row.vm_id ?? null,
    source_nat: row.source_nat ?? 0,
    is_system: row.is_system ?? 0,
    created: row.created,
    updated: row.updated,
  }) as number | undefined;
  return id === undefined ? null : Number(id);
}
