/**
 * SQL for ip_allocations and mac_sequences. Every function takes the executor it runs on first (the store's db,
 * or a transaction) and translates driver errors: a lost race on the UNIQUE constraint is a return value
 * (`null`), anything else becomes a CloudStackError — except deadlocks and serialization failures, which are
 * rethrown as they are, because only the transaction runner (store/db.ts `transaction`) can retry them (the
 * database has already aborted the whole transaction) and it translates them when it gives up.
 */
import { CompiledQuery, sql } from 'kysely';
import type { Insertable, Kysely, Selectable } from 'kysely';
import { isCloudStackError, internalError } from '../errors/catalogue.js';
import { isRetryableConflict, isUniqueViolation } from '../store/db.js';
import type { Executor } from '../store/db.js';
import { dialectOf } from '../store/migrations/helpers.js';
import { namedStatement } from '../store/prepared.js';
import type { MigrationDialect } from '../store/migrations/helpers.js';
import type { AllocationState, IpAllocationsTable } from './tables.js';

export type AllocationRow = Selectable<IpAllocationsTable>;
/**
 * A row to insert. `uuid` and `for_display` are columns migration 0003 adds for public IPs (their API id and
 * display flag): an association's request inserts its address with them, rather than setting them by an UPDATE
 * after the INSERT (one statement less, a round trip on PostgreSQL and MariaDB); other rows leave them at NULL and 1.
 */
export type NewAllocationRow = Insertable<IpAllocationsTable> & {
  uuid?: string | null;
  for_display?: number;
};

export function executorDialect(ex: Executor): MigrationDialect {
  return dialectOf(ex as unknown as Kysely<unknown>);
}

/**
 * Runs repository statements, translating driver errors. A deadlock on a statement that is its own transaction
 * (`ex` is the store's db) is simply run again here; inside a transaction it is rethrown for the runner.
 */
export async function translated<T>(ex: Executor, doing: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (isCloudStackError(e)) throw e;
      if (isRetryableConflict(e)) {
        if (ex.isTransaction) throw e;
        if (attempt < 8) {
          await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
          continue;
        }
      }
      throw internalError(doing, e);
    }
  }
}

export interface WindowQuery {
  scope: string;
  family: number;
  /** addressKey to start at (inclusive). */
  fromKey: string;
  /** addressKey not to go beyond (inclusive): the pool's last (up) or first (down) member. */
  boundKey: string;
  direction: 'up' | 'down';
  limit: number;
}

// The two statements of every allocation are written out once per dialect and run as precompiled queries:
// building them through Kysely's query builder costs more CPU per allocation than the rest of the allocator
// together (tens of µs per statement), and on PostgreSQL/MariaDB at concurrency 16 the client's CPU is the
// limit. Everything else in this file goes through the builder.
export const INSERT_COLUMNS = [
  'scope',
  'family',
  'address',
  'range_id',
  'state',
  'owner_kind',
  'owner_id',
  'zone_id',
  'account_id',
  'domain_id',
  'network_id',
  'vpc_id',
  'vm_id',
  'source_nat',
  'is_system',
  'created',
  'updated',
  'uuid',
  'for_display',
] as const;

interface HotSql {
  windowUp: string;
  windowDown: string;
  insert: string;
  /** Inserts the first of CANDIDATES addresses that is not taken, in one statement (see insertFirstSql). */
  insertFirst: string;
  insertFirstPlan: PlanItem[];
  /** 1 if (scope, family, address) is taken. */
  taken: string;
}

/**
 * Random candidates a `random` allocation offers the database at once. At 50% fill all of them are taken with
 * probability 0.5^8 = 0.4%, so up to high fill an allocation stays one statement (one round trip, one commit);
 * each extra candidate costs one lookup in the UNIQUE index, not a round trip.
 */
export const CANDIDATES = 8;

function hotSql(dialect: MigrationDialect): HotSql {
  const p = (i: number) => (dialect === 'postgres' ? `$${i}` : '?');
  const window = (op: string, bound: string, order: string) =>
    `select address from ip_allocations where scope = ${p(1)} and family = ${p(2)} and address ${op} ${p(3)} ` +
    `and address ${bound} ${p(4)} order by address ${order} limit ${p(5)}`;
  const values = INSERT_COLUMNS.map((_, i) => p(i + 1)).join(', ');
  const insert = `insert into ip_allocations (${INSERT_COLUMNS.join(', ')}) values (${values})`;
  const { text: insertFirst, plan: insertFirstPlan } = insertFirstSql(dialect, p);
  return {
    windowUp: window('>=', '<=', 'asc'),
    windowDown: window('<=', '>=', 'desc'),
    insert:
      dialect === 'mysql' ? insert : `${insert} on conflict (scope, family, address) do nothing returning id`,
    insertFirst,
    insertFirstPlan,
    taken: `select 1 from ip_allocations where scope = ${p(1)} and family = ${p(2)} and address = ${p(3)}`,
  };
}

/**
 * Where each parameter of insertFirst comes from: a column of the row, or candidate k's address, range_id or uuid
 * (the columns that may differ between candidates).
 */
type PlanItem = { column: number } | { candidate: number; field: 'address' | 'range_id' | 'uuid' };

/**
 * The first free of CANDIDATES addresses, inserted in one statement. The address is a CASE over the candidates in
 * order, `WHEN NOT EXISTS (<point lookup in the UNIQUE index>) THEN <candidate>`: CASE stops at the first free one,
 * so at low fill it is one lookup, and there is no derived table (MariaDB materialized a UNION of the candidates
 * into a temporary table per statement, which doubled its cost; PostgreSQL planned it, with the anti join it
 * chose, as a scan of the scope). range_id and uuid are the chosen candidate's (CASE on the address).
 * - SQLite, PostgreSQL: `WITH f AS MATERIALIZED (SELECT <case> AS address) INSERT ... SELECT ... FROM f WHERE
 *   address IS NOT NULL ON CONFLICT DO NOTHING RETURNING`: nothing is inserted (and no error raised, which would
 *   poison a PostgreSQL transaction) when all are taken; MATERIALIZED evaluates the CASE once.
 * - MariaDB: `INSERT ... VALUES (..., <case>, CASE address WHEN ... END, ...)` (a VALUES list may use a column set
 *   earlier in it). Not `INSERT ... SELECT`: that is a bulk insert to InnoDB, which takes the table's AUTO-INC lock
 *   for the whole statement (innodb_autoinc_lock_mode 1, the default) and failed under concurrency with "Failed to
 *   read auto-increment value". All taken is a NULL address (ER_BAD_NULL_ERROR), which rolls back only the
 *   statement. Only for statements that are their own transaction: inside a caller's, insertFirstByReading (the
 *   subqueries are locking reads there).
 */
function insertFirstSql(
  dialect: MigrationDialect,
  p: (i: number) => string,
): { text: string; plan: PlanItem[] } {
  const plan: PlanItem[] = [];
  const param = (item: PlanItem) => {
    plan.push(item);
    return p(plan.length);
  };
  const pg = dialect === 'postgres';
  const scopeAt = INSERT_COLUMNS.indexOf('scope');
  const familyAt = INSERT_COLUMNS.indexOf('family');
  // Parameters are numbered in the order they are asked for, so each piece is built where it stands in the text.
  const addressCase = () =>
    'case ' +
    Array.from({ length: CANDIDATES }, (_, k) => {
      const probe =
        `not exists (select 1 from ip_allocations a where a.scope = ${param({ column: scopeAt })} ` +
        `and a.family = ${param({ column: familyAt })} and a.address = ${param({ candidate: k, field: 'address' })})`;
      const value = param({ candidate: k, field: 'address' });
      return `when ${probe} then ${pg ? `cast(${value} as varchar(32))` : value}`;
    }).join(' ') +
    ' end';
  const perCandidate = (column: string, field: 'range_id' | 'uuid', pgType: string) =>
    `case ${column} ` +
    Array.from({ length: CANDIDATES }, (_, k) => {
      const address = param({ candidate: k, field: 'address' });
      const value = param({ candidate: k, field });
      return `when ${address} then ${pg ? `cast(${value} as ${pgType})` : value}`;
    }).join(' ') +
    ' end';
  const candidateColumn = (c: string, address: string): string | undefined =>
    c === 'range_id'
      ? perCandidate(address, 'range_id', 'bigint')
      : c === 'uuid'
        ? perCandidate(address, 'uuid', 'varchar(36)')
        : undefined;
  const columns = INSERT_COLUMNS.join(', ');
  if (dialect === 'mysql') {
    const values = INSERT_COLUMNS.map((c, i) =>
      c === 'address' ? `(${addressCase()})` : (candidateColumn(c, 'address') ?? param({ column: i })),
    ).join(', ');
    return {
      text: `insert into ip_allocations (${columns}) values (${values}) returning id, address, range_id`,
      plan,
    };
  }
  const cte = `with f as materialized (select ${addressCase()} as address) `;
  const selectList = INSERT_COLUMNS.map((c, i) =>
    c === 'address' ? 'f.address' : (candidateColumn(c, 'f.address') ?? param({ column: i })),
  ).join(', ');
  return {
    text:
      `${cte}insert into ip_allocations (${columns}) select ${selectList} from f where f.address is not null ` +
      'on conflict (scope, family, address) do nothing returning id, address, range_id',
    plan,
  };
}

/**
 * The texts as named statements (store/prepared.ts namedStatement): on PostgreSQL each planned once per connection,
 * on MariaDB prepared once per connection (store/mysql-pool.ts), also where they run in a transaction.
 */
function named(hot: HotSql): HotSql {
  for (const text of [hot.windowUp, hot.windowDown, hot.insert, hot.insertFirst, hot.taken])
    namedStatement(text);
  return hot;
}

export const HOT: Record<MigrationDialect, HotSql> = {
  sqlite: hotSql('sqlite'),
  postgres: named(hotSql('postgres')),
  mysql: named(hotSql('mysql')),
};

/** Taken keys from `fromKey` on in `direction`, sorted in that direction: one range scan of the UNIQUE index. */
export async function selectTakenWindow(ex: Executor, q: WindowQuery): Promise<string[]> {
  const hot = HOT[executorDialect(ex)];
  return translated(ex, 'reading allocated addresses', async () => {
    const r = await ex.executeQuery<{ address: string }>(
      CompiledQuery.raw(q.direction === 'up' ? hot.windowUp : hot.windowDown, [
        q.scope,
        q.family,
        q.fromKey,
        q.boundKey,
        q.limit,
      ]),
    );
    return r.rows.map((row) => row.address);
  });
}

/**
 * Inserts an allocation row; `null` when (scope, family, address) is already taken. The conflict never aborts
 * the surrounding transaction: PostgreSQL and SQLite use ON CONFLICT DO NOTHING (PostgreSQL would otherwise
 * poison the transaction), MariaDB rolls back only the failed statement.
 */
export async function insertAllocationRow(ex: Executor, row: NewAllocationRow): Promise<number | null> {
  const dialect = executorDialect(ex);
  const query = CompiledQuery.raw(HOT[dialect].insert, insertParams(row));
  return translated(ex, 'recording an address allocation', async () => {
    if (dialect === 'mysql') {
      try {
        const r = await ex.executeQuery(query);
        return Number(r.insertId);
      } catch (e) {
        if (isUniqueViolation(e)) return null;
        throw e;
      }
    }
    const r = await ex.executeQuery<{ id: number }>(query);
    const first = r.rows[0];
    return first ? Number(first.id) : null;
  });
}

/**
 * The values of HOT[...].insertFirst for `rows`: CANDIDATES rows that differ only in address, range_id and uuid (the
 * first of them not taken is inserted). Fewer rows are padded by repeating the last one.
 */
export function insertFirstParams(dialect: MigrationDialect, rows: readonly NewAllocationRow[]): unknown[] {
  const base = rows[0];
  if (!base || rows.length > CANDIDATES) throw new Error(`insertFirst takes 1 to ${CANDIDATES} rows`);
  const columns = insertParams(base);
  const cands = Array.from(
    { length: CANDIDATES },
    (_, k) => rows[Math.min(k, rows.length - 1)] as NewAllocationRow,
  );
  return HOT[dialect].insertFirstPlan.map((item) => {
    if ('column' in item) return columns[item.column];
    const row = cands[item.candidate] as NewAllocationRow;
    return item.field === 'address' ? row.address : (row[item.field] ?? null);
  });
}

/**
 * MariaDB's insertFirst refused, which rolls back only the statement: a candidate taken by another caller between
 * the probe and the insert (duplicate key), or all candidates taken (a NULL address).
 */
export function insertFirstRefused(e: unknown): boolean {
  const d = e as { errno?: number; message?: string };
  return (
    isUniqueViolation(e) ||
    (d.errno === 1048 && typeof d.message === 'string' && d.message.includes("'address'"))
  );
}

/** What insertFirst inserted: the new row's id and its address key, or null when every candidate was taken. */
export interface InsertedFirst {
  id: number;
  key: string;
  rangeId: number | null;
}

export interface InsertedFirstRow {
  id: number | string;
  address: string;
  range_id: number | string | null;
}

/** `row`, inserted with `id`. */
export const insertedAs = (id: number, row: NewAllocationRow): InsertedFirst => ({
  id,
  key: row.address,
  rangeId: row.range_id ?? null,
});

export const insertedFirst = (r: InsertedFirstRow | undefined): InsertedFirst | null =>
  r === undefined
    ? null
    : { id: Number(r.id), key: r.address, rangeId: r.range_id === null ? null : Number(r.range_id) };

export async function insertFirstFreeRow(
  ex: Executor,
  all: readonly NewAllocationRow[],
  /** In a transaction: the caller's INSERT of the first candidate (AllocateRequest.insertOwn). */
  insertOwn?: (row: NewAllocationRow) => Promise<number | null>,
): Promise<InsertedFirst | null> {
  const dialect = executorDialect(ex);
  let rows = all;
  if (ex.isTransaction) {
    // Inside a caller's transaction the commit is the caller's, so what counts is the statements: the one-row
    // INSERT of the first candidate is the cheapest (insertFirst is planned anew at every execution through
    // Kysely: PostgreSQL 3,400 vs 6,000 allocations/s at concurrency 16, docs/benchmarks.md), and the others
    // are tried only when it is refused.
    const [head, ...rest] = all;
    if (!head) return null;
    const id = insertOwn ? await insertOwn(head) : await insertAllocationRow(ex, head);
    if (id !== null) return insertedAs(id, head);
    if (rest.length === 0) return null;
    if (dialect === 'mysql') return insertFirstByReading(ex, rest);
    rows = rest;
  }
  const query = CompiledQuery.raw(HOT[dialect].insertFirst, insertFirstParams(dialect, rows));
  return translated(ex, 'recording an address allocation', async () => {
    try {
      const r = await ex.executeQuery<InsertedFirstRow>(query);
      return insertedFirst(r.rows[0]);
    } catch (e) {
      // MariaDB has no ON CONFLICT (insertFirstRefused).
      if (dialect === 'mysql' && insertFirstRefused(e)) return null;
      throw e;
    }
  });
}

/**
 * MariaDB inside a caller's transaction: a plain read of which candidates are taken, then the one-row INSERT. The
 * subqueries of insertFirst are locking reads in InnoDB (shared next-key locks, held to the end of the
 * transaction), so concurrent transactions that probed the same gaps and then insert deadlock: measured as 530s
 * from 64 concurrent associateIpAddress calls on two servers. A plain SELECT is a consistent read and locks
 * nothing; a candidate taken since the transaction's snapshot is a duplicate key on the INSERT, i.e. a lost race.
 */
async function insertFirstByReading(
  ex: Executor,
  rows: readonly NewAllocationRow[],
): Promise<InsertedFirst | null> {
  const base = rows[0];
  if (!base) return null;
  const taken = await translated(ex, 'reading allocated addresses', async () => {
    const r = await ex
      .selectFrom('ip_allocations')
      .select('address')
      .where('scope', '=', base.scope)
      .where('family', '=', base.family)
      .where(
        'address',
        'in',
        rows.map((r) => r.address),
      )
      .execute();
    return new Set(r.map((x) => x.address));
  });
  const row = rows.find((r) => !taken.has(r.address));
  if (!row) return null;
  const id = await insertAllocationRow(ex, row);
  return id === null ? null : insertedAs(id, row);
}

/** The values of HOT[...].insert, in INSERT_COLUMNS order. */
export function insertParams(row: NewAllocationRow): unknown[] {
  return [
    row.scope,
    row.family,
    row.address,
    row.range_id ?? null,
    row.state,
    row.owner_kind ?? null,
    row.owner_id ?? null,
    row.zone_id ?? null,
    row.account_id ?? null,
    row.domain_id ?? null,
    row.network_id ?? null,
    row.vpc_id ?? null,
    row.vm_id ?? null,
    row.source_nat ?? 0,
    row.is_system ?? 0,
    row.created,
    row.updated,
    row.uuid ?? null,
    row.for_display ?? 1,
  ];
}

export interface AddressRef {
  scope: string;
  family: number;
  key: string;
}

export async function findAllocationRow(ex: Executor, ref: RowRef): Promise<AllocationRow | undefined> {
  return translated(ex, 'reading an address allocation', () => {
    const q = ex.selectFrom('ip_allocations').selectAll();
    return (
      'id' in ref
        ? q.where('id', '=', ref.id)
        : q.where('scope', '=', ref.scope).where('family', '=', ref.family).where('address', '=', ref.key)
    ).executeTakeFirst();
  });
}

export type AllocationPatch = Partial<
  Pick<
    AllocationRow,
    | 'owner_kind'
    | 'owner_id'
    | 'account_id'
    | 'domain_id'
    | 'network_id'
    | 'vpc_id'
    | 'vm_id'
    | 'source_nat'
    | 'is_system'
    | 'range_id'
  >
>;

/** A row by its id, or by the address it holds. */
export type RowRef = { id: number } | AddressRef;

/** Moves a row to `to` only if it is still in one of `from`: the check and the write are one statement. */
export async function updateAllocationState(
  ex: Executor,
  ref: RowRef,
  from: readonly AllocationState[],
  to: AllocationState,
  patch: AllocationPatch,
  now: number,
): Promise<boolean> {
  if (from.length === 0) return false;
  return translated(ex, 'changing an address state', async () => {
    const q = ex
      .updateTable('ip_allocations')
      .set({ ...patch, state: to, updated: now })
      .where('state', 'in', from);
    const r = await (
      'id' in ref
        ? q.where('id', '=', ref.id)
        : q.where('scope', '=', ref.scope).where('family', '=', ref.family).where('address', '=', ref.key)
    ).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  });
}

/** Deletes the row (the address becomes Free) if it is in one of `from` (any state when omitted). */
export async function deleteAllocationRow(
  ex: Executor,
  ref: RowRef,
  from?: readonly AllocationState[],
): Promise<boolean> {
  if (from && from.length === 0) return false;
  return translated(ex, 'releasing an address', async () => {
    const d = ex.deleteFrom('ip_allocations');
    let q =
      'id' in ref
        ? d.where('id', '=', ref.id)
        : d.where('scope', '=', ref.scope).where('family', '=', ref.family).where('address', '=', ref.key);
    if (from) q = q.where('state', 'in', from);
    const r = await q.executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  });
}

export interface KeySpan {
  startKey: string;
  endKey: string;
}

/** Rows of a scope (optionally only inside the given key spans): an index range count, exact and cheap. */
export async function countAllocations(
  ex: Executor,
  scope: string,
  family: number,
  spans?: readonly KeySpan[],
  state?: AllocationState,
): Promise<number> {
  if (spans && spans.length === 0) return 0;
  return translated(ex, 'counting allocated addresses', async () => {
    let q = ex
      .selectFrom('ip_allocations')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('scope', '=', scope)
      .where('family', '=', family);
    if (spans) {
      q = q.where((eb) =>
        eb.or(spans.map((s) => eb.and([eb('address', '>=', s.startKey), eb('address', '<=', s.endKey)]))),
      );
    }
    if (state) q = q.where('state', '=', state);
    const r = await q.executeTakeFirstOrThrow();
    return Number(r.n);
  });
}

export interface AllocationFilter {
  scope?: string;
  family?: number;
  state?: AllocationState;
  ownerKind?: string;
  ownerId?: number;
  zoneId?: number;
  accountId?: number;
  networkId?: number;
  vpcId?: number;
  /** Only keys inside these spans. */
  spans?: readonly KeySpan[];
}

function filtered(ex: Executor, f: AllocationFilter) {
  let q = ex.selectFrom('ip_allocations');
  if (f.scope !== undefined) q = q.where('scope', '=', f.scope);
  if (f.family !== undefined) q = q.where('family', '=', f.family);
  if (f.state !== undefined) q = q.where('state', '=', f.state);
  if (f.ownerKind !== undefined) q = q.where('owner_kind', '=', f.ownerKind);
  if (f.ownerId !== undefined) q = q.where('owner_id', '=', f.ownerId);
  if (f.zoneId !== undefined) q = q.where('zone_id', '=', f.zoneId);
  if (f.accountId !== undefined) q = q.where('account_id', '=', f.accountId);
  if (f.networkId !== undefined) q = q.where('network_id', '=', f.networkId);
  if (f.vpcId !== undefined) q = q.where('vpc_id', '=', f.vpcId);
  const spans = f.spans;
  if (spans) {
    q =
      spans.length === 0
        ? q.where(sql<boolean>`1 = 0`)
        : q.where((eb) =>
            eb.or(spans.map((s) => eb.and([eb('address', '>=', s.startKey), eb('address', '<=', s.endKey)]))),
          );
  }
  return q;
}

/** One page of rows in address order, plus the total count (CloudStack list responses carry both). */
export async function listAllocationRows(
  ex: Executor,
  f: AllocationFilter,
  offset: number,
  limit: number,
): Promise<{ count: number; rows: AllocationRow[] }> {
  return translated(ex, 'listing addresses', async () => {
    const c = await filtered(ex, f)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    const rows = await filtered(ex, f)
      .selectAll()
      .orderBy('scope')
      .orderBy('family')
      .orderBy('address')
      .offset(offset)
      .limit(limit)
      .execute();
    return { count: Number(c.n), rows };
  });
}

/**
 * Takes `count` consecutive values of a zone's MAC counter and returns the first. The increment and the read are
 * one statement (UPDATE ... RETURNING) or, on MariaDB, one transaction in which the UPDATE holds the row lock,
 * so concurrent callers get disjoint blocks.
 */
export async function takeMacSequence(ex: Executor, zoneId: number, count = 1): Promise<number> {
  if (executorDialect(ex) === 'mysql' && !ex.isTransaction) {
    return translated(ex, 'taking a MAC address sequence number', () =>
      ex.transaction().execute((tx) => takeMacSequence(tx, zoneId, count)),
    );
  }
  return translated(ex, 'taking a MAC address sequence number', async () => {
    for (let attempt = 0; ; attempt++) {
      const next = await bumpMacSequence(ex, zoneId, count);
      if (next !== undefined) return next - count;
      // First MAC of the zone: create the counter. Two first callers race on the primary key; the loser
      // bumps the winner's row on its next round.
      if (attempt > 0) throw new Error(`mac_sequences row for zone ${zoneId} vanished`);
      try {
        if (executorDialect(ex) === 'mysql') {
          await ex.insertInto('mac_sequences').values({ zone_id: zoneId, next_value: 1 }).execute();
        } else {
          await ex
            .insertInto('mac_sequences')
            .values({ zone_id: zoneId, next_value: 1 })
            .onConflict((oc) => oc.column('zone_id').doNothing())
            .execute();
        }
      } catch (e) {
        if (!isUniqueViolation(e)) throw e;
      }
    }
  });
}

/** The counter after adding `count`, or undefined when the zone has none yet. */
async function bumpMacSequence(ex: Executor, zoneId: number, count: number): Promise<number | undefined> {
  const update = ex
    .updateTable('mac_sequences')
    .set((eb) => ({ next_value: eb('next_value', '+', count) }))
    .where('zone_id', '=', zoneId);
  if (executorDialect(ex) !== 'mysql') {
    const row = await update.returning('next_value').executeTakeFirst();
    return row ? Number(row.next_value) : undefined;
  }
  const r = await update.executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) return undefined;
  const row = await ex
    .selectFrom('mac_sequences')
    .select('next_value')
    .where('zone_id', '=', zoneId)
    .executeTakeFirstOrThrow();
  return Number(row.next_value);
}
