/**
 * Allocation on the store: choose a free address with ipam's gap search over windows of the ip_allocations
 * index, INSERT it, and let the UNIQUE(scope, family, address) constraint settle races (DESIGN.md guarantees
 * 2–4). Nothing here enumerates a pool or writes a row per free address: cost depends on the taken addresses
 * in the way of the search, never on the pool's size.
 *
 * Two ways in:
 * - `allocateAddressTx(tx, request)` runs inside the caller's transaction (a service allocating an address,
 *   writing its NIC / public IP row and an event in one transaction). On PostgreSQL and MariaDB it may also be
 *   given `store.db`: the INSERT is then its own transaction, which is all an allocation needs.
 * - `allocateAddress(store, request)` does its own: autocommitted statements (a `random` one is a single INSERT
 *   ... ON CONFLICT DO NOTHING RETURNING while the pool is not nearly full), prepared once per connection on
 *   SQLite (better-sqlite3) and PostgreSQL (named statements), through Kysely on MariaDB; on SQLite, callers of
 *   this process that arrive together share one BEGIN IMMEDIATE transaction (group commit).
 */
import {
  CloudStackError,
  insufficientAddressCapacity,
  internalError,
  invalidParameter,
  isCloudStackError,
} from '../errors/catalogue.js';
import {
  addressFromKey,
  formatIp,
  formatValue,
  findFreeAsync,
  macFromSequence,
  randomBigIntFrom,
  RangeSet,
  validateRequested,
  valueKey,
} from '../ipam/index.js';
import type { Family, IpAddress, IpRange, RandomBigInt, Strategy } from '../ipam/index.js';
import { isRetryableConflict, transaction } from '../store/db.js';
import type { Executor, Store } from '../store/db.js';
import {
  CANDIDATES,
  countAllocations,
  deleteAllocationRow,
  findAllocationRow,
  insertAllocationRow,
  insertFirstFreeRow,
  listAllocationRows,
  selectTakenWindow,
  takeMacSequence,
  updateAllocationState,
} from './address-repository.js';
import type {
  AllocationFilter,
  AllocationPatch,
  AllocationRow,
  InsertedFirst,
  KeySpan,
  NewAllocationRow,
  RowRef,
  WindowQuery,
} from './address-repository.js';
import {
  sqliteBegin,
  sqliteCommit,
  sqliteInsertAllocation,
  sqliteInsertFirstFree,
  sqliteSavepoint,
  sqliteTakenWindow,
} from './sqlite-fast-path.js';
import type { Database as SqliteConnection } from 'better-sqlite3';
import { notifyAddress, notifyAddressFailure } from './observers.js';
import { pgInsertAllocation, pgInsertFirstFree, pgTakenWindow } from './postgres-fast-path.js';
import { mariadbInsertAllocation, mariadbInsertFirstFree, mariadbTakenWindow } from './mariadb-fast-path.js';
import { canTransition, predecessorsOf } from './states.js';
import type { AddressState } from './states.js';
import type { AllocationState } from './tables.js';

/** Taken keys read per window of the gap search. */
const WINDOW = 64;
/** After this many lost races a lowest/first/last search switches to random: under contention every caller
 * chases the same lowest free address, and which of them gets it is arbitrary anyway. */
const STRICT_ORDER_ATTEMPTS = 2;
/** Lost races one call tolerates before it gives up with ConcurrentOperation (each lost race means another
 * caller got an address, so this only trips under a pathological allocate/release storm). */
const MAX_LOST_RACES = 10_000;

export interface AllocationOwner {
  /** 'nic', 'publicip', 'router', ... */
  kind: string;
  id?: number | null;
}

export interface AllocateRequest {
  /** `net:<networkId>` for guest addresses, `pub:<zoneId>` for public ones. */
  scope: string;
  /** Where addresses may come from (its family is the allocation's family). */
  pool: RangeSet;
  /** Default 'lowest'. */
  strategy?: Strategy;
  /** A specific address (deployVirtualMachine ipaddress=, associateIpAddress ipaddress=, ...). */
  requested?: IpAddress;
  /** The API parameter `requested` came from, named in errors (default 'ipaddress'). */
  requestedParam?: string;
  /** Never handed out; a requested address here is refused as excluded. */
  exclude?: RangeSet | readonly IpRange[] | readonly IpAddress[];
  /** Never handed out; a requested one is refused naming it as such. */
  gateway?: IpAddress;
  network?: IpAddress;
  broadcast?: IpAddress;
  /** Default 'Allocated'. */
  state?: 'Allocating' | 'Allocated' | 'Reserved';
  owner?: AllocationOwner;
  zoneId?: number | null;
  accountId?: number | null;
  domainId?: number | null;
  networkId?: number | null;
  vpcId?: number | null;
  vmId?: number | null;
  sourceNat?: boolean;
  isSystem?: boolean;
  /** The range row the address belongs to: fixed, or computed from the chosen value (several ranges). */
  rangeId?: number | null | ((value: bigint) => number | null);
  /**
   * A requested address Reserved by this account is taken over instead of refused as in use (CloudStack's
   * allocateIp with an explicit address first looks for the caller's Reserved row).
   */
  claimReservedBy?: number;
  /** Says what ran out in the 533 message, e.g. "zone zone1 has no free public IPv4 address". */
  exhaustedMessage?: string;
  /** CloudStack's uuidList of the exhaustion error (the zone, pod or network). */
  uuidList?: string[];
  /** Uniform random source (tests pass a seeded one). */
  randomBigInt?: RandomBigInt;
  now?: number;
}

export interface Allocation {
  id: number;
  scope: string;
  address: IpAddress;
  /** Canonical text (RFC 5952 for IPv6). */
  ip: string;
  /** The stored addressKey. */
  key: string;
  state: AllocationState;
  rangeId: number | null;
  ownerKind: string | null;
  ownerId: number | null;
  zoneId: number | null;
  accountId: number | null;
  domainId: number | null;
  networkId: number | null;
  vpcId: number | null;
  vmId: number | null;
  sourceNat: boolean;
  isSystem: boolean;
  created: number;
  updated: number;
  /** How many candidates this call lost to concurrent callers before it got this one (0 when read back). */
  lostRaces: number;
}

/** The columns of ip_allocations this module owns (later migrations add more). */
export type AllocationCoreRow = Pick<
  AllocationRow,
  | 'id'
  | 'scope'
  | 'family'
  | 'address'
  | 'range_id'
  | 'state'
  | 'owner_kind'
  | 'owner_id'
  | 'zone_id'
  | 'account_id'
  | 'domain_id'
  | 'network_id'
  | 'vpc_id'
  | 'vm_id'
  | 'source_nat'
  | 'is_system'
  | 'created'
  | 'updated'
>;

export function allocationFromRow(r: AllocationCoreRow): Allocation {
  const address = addressFromKey(r.family as Family, r.address);
  return {
    id: Number(r.id),
    scope: r.scope,
    address,
    ip: formatIp(address),
    key: r.address,
    state: r.state,
    rangeId: num(r.range_id),
    ownerKind: r.owner_kind,
    ownerId: num(r.owner_id),
    zoneId: num(r.zone_id),
    accountId: num(r.account_id),
    domainId: num(r.domain_id),
    networkId: num(r.network_id),
    vpcId: num(r.vpc_id),
    vmId: num(r.vm_id),
    sourceNat: Number(r.source_nat) === 1,
    isSystem: Number(r.is_system) === 1,
    created: Number(r.created),
    updated: Number(r.updated),
    lostRaces: 0,
  };
}

const num = (v: number | null): number | null => (v === null || v === undefined ? null : Number(v));

/** The statements the allocation loop needs, on Kysely or on the SQLite fast path. */
interface Port {
  window(q: WindowQuery): Promise<string[]> | string[];
  insert(row: NewAllocationRow): Promise<number | null> | number | null;
  /** Inserts the first of `rows` (same row, other addresses) that is not taken (address-repository.ts
   * insertFirstSql: one statement where a statement is a round trip). */
  insertFirst(rows: readonly NewAllocationRow[]): Promise<InsertedFirst | null> | InsertedFirst | null;
  find(ref: RowRef): Promise<AllocationRow | undefined>;
  update(
    ref: RowRef,
    from: AllocationState[],
    to: AllocationState,
    patch: AllocationPatch,
    now: number,
  ): Promise<boolean>;
}

const kyselyPort = (ex: Executor): Port => ({
  window: (q) => selectTakenWindow(ex, q),
  insert: (row) => insertAllocationRow(ex, row),
  insertFirst: (rows) => insertFirstFreeRow(ex, rows),
  find: (ref) => findAllocationRow(ex, ref),
  update: (ref, from, to, patch, now) => updateAllocationState(ex, ref, from, to, patch, now),
});

const defaultRandom = randomBigIntFrom(Math.random);

function toRangeSet(family: Family, x: AllocateRequest['exclude']): RangeSet {
  if (!x) return RangeSet.empty(family);
  if (x instanceof RangeSet) return x;
  const ranges = (x as readonly (IpRange | IpAddress)[]).map((r) =>
    'value' in r ? { family: r.family, start: r.value, end: r.value } : r,
  );
  return ranges.length === 0 ? RangeSet.empty(family) : RangeSet.of(ranges, family);
}

function rowFor(req: AllocateRequest, value: bigint, now: number): NewAllocationRow {
  const rangeId = typeof req.rangeId === 'function' ? req.rangeId(value) : (req.rangeId ?? null);
  return {
    scope: req.scope,
    family: req.pool.family,
    address: valueKey(value),
    range_id: rangeId,
    state: req.state ?? 'Allocated',
    owner_kind: req.owner?.kind ?? null,
    owner_id: req.owner?.id ?? null,
    zone_id: req.zoneId ?? null,
    account_id: req.accountId ?? null,
    domain_id: req.domainId ?? null,
    network_id: req.networkId ?? null,
    vpc_id: req.vpcId ?? null,
    vm_id: req.vmId ?? null,
    source_nat: req.sourceNat ? 1 : 0,
    is_system: req.isSystem ? 1 : 0,
    created: now,
    updated: now,
  };
}

function allocationOf(id: number, row: NewAllocationRow, value: bigint): Allocation {
  // Built from what was inserted (no key parsing back): this runs once per allocation on the hot path.
  const address: IpAddress = { family: row.family as Family, value };
  return {
    id,
    scope: row.scope,
    address,
    ip: formatIp(address),
    key: row.address,
    state: row.state,
    rangeId: row.range_id ?? null,
    ownerKind: row.owner_kind ?? null,
    ownerId: row.owner_id ?? null,
    zoneId: row.zone_id ?? null,
    accountId: row.account_id ?? null,
    domainId: row.domain_id ?? null,
    networkId: row.network_id ?? null,
    vpcId: row.vpc_id ?? null,
    vmId: row.vm_id ?? null,
    sourceNat: row.source_nat === 1,
    isSystem: row.is_system === 1,
    created: row.created,
    updated: row.updated,
    lostRaces: 0,
  };
}

/** Inserts `sorted` into an ascending list without duplicates. */
function insertSorted(list: bigint[], v: bigint): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid] as bigint) < v) lo = mid + 1;
    else hi = mid;
  }
  if (list[lo] !== v) list.splice(lo, 0, v);
}

async function allocateWith(port: Port, req: AllocateRequest): Promise<Allocation> {
  const family = req.pool.family;
  const now = req.now ?? Date.now();
  const excluded = toRangeSet(family, req.exclude);

  if (req.requested) {
    const param = req.requestedParam ?? 'ipaddress';
    validateRequested(req.requested, req.pool, {
      gateway: req.gateway?.value,
      network: req.network?.value,
      broadcast: req.broadcast?.value,
      excluded,
      param,
    });
    const row = rowFor(req, req.requested.value, now);
    const id = await port.insert(row);
    if (id !== null) return allocationOf(id, row, req.requested.value);
    const ref = { scope: req.scope, family, key: row.address };
    if (req.claimReservedBy !== undefined) {
      const patch: AllocationPatch = {
        owner_kind: row.owner_kind,
        owner_id: row.owner_id,
        network_id: row.network_id,
        vpc_id: row.vpc_id,
        vm_id: row.vm_id,
        source_nat: row.source_nat,
        is_system: row.is_system,
      };
      const existing = await port.find(ref);
      if (
        existing?.state === 'Reserved' &&
        num(existing.account_id) === req.claimReservedBy &&
        (await port.update({ id: Number(existing.id) }, ['Reserved'], row.state, patch, now))
      ) {
        const after = await port.find({ id: Number(existing.id) });
        if (after) return allocationFromRow(after);
      }
    }
    throw invalidParameter(param, formatIp(req.requested), 'the address is already in use');
  }

  const reserved = [req.gateway, req.network, req.broadcast]
    .filter((a): a is IpAddress => a !== undefined && a.family === family)
    .map((a) => ({ family, start: a.value, end: a.value }));
  const pool = req.pool.subtract(excluded).subtract(reserved);
  const first = pool.first();
  const last = pool.last();
  const random = req.randomBigInt ?? defaultRandom;
  // Addresses this call lost a race for: merged into every window, so a stale snapshot (MariaDB's
  // REPEATABLE READ inside a caller's transaction) can never send the search back to them.
  const lost: bigint[] = [];
  const fetch = async (from: bigint, direction: 'up' | 'down', limit: number): Promise<bigint[]> => {
    const up = direction === 'up';
    const bound = (up ? last : first) as bigint;
    const keys = await port.window({
      scope: req.scope,
      family,
      fromKey: valueKey(from),
      boundKey: valueKey(bound),
      direction,
      limit,
    });
    const taken = keys.map((k) => BigInt(`0x${k}`));
    if (lost.length === 0) return taken;
    const extra = lost.filter((v) => (up ? v >= from && v <= bound : v <= from && v >= bound));
    if (extra.length === 0) return taken;
    const merged = [...new Set([...taken, ...extra])].sort((a, b) =>
      up ? (a < b ? -1 : a > b ? 1 : 0) : a > b ? -1 : a < b ? 1 : 0,
    );
    // Only what the database returned is known to be complete up to its limit; beyond its last row an
    // extra value could hide a taken one the window did not reach.
    if (taken.length >= limit) {
      const edge = taken[taken.length - 1] as bigint;
      return merged.filter((v) => (up ? v <= edge : v >= edge)).slice(0, Math.max(limit, 1));
    }
    return merged;
  };

  if (first !== undefined && (req.strategy ?? 'lowest') === 'random') {
    // CANDIDATES random addresses at once, the first free one inserted (Port.insertFirst), so an allocation is
    // one round trip and one commit whether the pool is empty or half full. Only when all are taken (0.4% at 50%
    // fill; more as the pool fills) does ipam's search below read the index.
    const size = pool.size();
    const values = [...new Set(Array.from({ length: CANDIDATES }, () => pool.at(random(size))))];
    const rows = values.map((v) => rowFor(req, v, now));
    const got = await port.insertFirst(rows);
    if (got !== null) {
      const i = rows.findIndex((r) => r.address === got.key);
      const row = rows[i] as NewAllocationRow;
      return allocationOf(got.id, row, values[i] as bigint);
    }
    for (const v of values) insertSorted(lost, v);
  }

  let races = 0;
  for (let attempt = 0; ; attempt++) {
    const strategy: Strategy =
      attempt >= STRICT_ORDER_ATTEMPTS && req.strategy !== 'random' ? 'random' : (req.strategy ?? 'lowest');
    const value =
      first === undefined
        ? undefined
        : await findFreeAsync(strategy, pool, random, fetch, { windowSize: WINDOW });
    if (value === undefined) {
      throw insufficientAddressCapacity(
        req.exhaustedMessage ??
          `no free IPv${family} address left in ${req.scope} (${req.pool.toString() || 'an empty pool'})`,
        req.uuidList ?? [],
      );
    }
    const row = rowFor(req, value, now);
    const id = await port.insert(row);
    if (id !== null) {
      const a = allocationOf(id, row, value);
      a.lostRaces = races;
      return a;
    }
    insertSorted(lost, value);
    races++;
    if (attempt >= MAX_LOST_RACES) {
      throw new CloudStackError(
        'ConcurrentOperation',
        `Gave up allocating an address in ${req.scope} after ${attempt + 1} lost races; retry`,
      );
    }
  }
}

/**
 * Allocates an address on `ex`: a transaction of the caller's, or (PostgreSQL, MariaDB) the store's db. A
 * lost race on the UNIQUE constraint picks another candidate; an exhausted pool is InsufficientAddressCapacity
 * (533/4320); a bad or taken requested address is InvalidParameterValue (431/4350) naming the parameter.
 */
export async function allocateAddressTx(ex: Executor, req: AllocateRequest): Promise<Allocation> {
  return observed(req, allocateWith(kyselyPort(ex), req));
}

/** Tells the observers (metrics) how an allocation ended; a counter increment, nothing on the database. */
async function observed(req: AllocateRequest, p: Promise<Allocation>): Promise<Allocation> {
  try {
    const a = await p;
    notifyAddress('allocated', req.scope, req.zoneId);
    return a;
  } catch (e) {
    notifyAddressFailure(req.scope, req.zoneId, isCloudStackError(e) ? e.kind : 'InternalError');
    throw e;
  }
}

/**
 * Allocates in a transaction of its own (see the file comment). Never call it from inside a `transaction()`
 * callback on the same store: on SQLite that transaction holds the one connection this waits for; use
 * `allocateAddressTx(tx, ...)` there.
 */
export function allocateAddress(store: Store, req: AllocateRequest): Promise<Allocation> {
  return observed(req, allocateOwn(store, req));
}

async function allocateOwn(store: Store, req: AllocateRequest): Promise<Allocation> {
  const conn = store.sqlite;
  if (store.kind === 'sqlite' && conn) return sqliteAllocate(store, conn, req);
  if (store.kind === 'sqlite') return transaction(store, (tx) => allocateWith(kyselyPort(tx), req));
  const pg = store.pg;
  const mariadb = store.mysql;
  // The statements of the search on the driver's own pool, prepared once per connection (postgres-fast-path.ts,
  // mariadb-fast-path.ts); the rare reads and updates of a reserved address through Kysely.
  const fast: Pick<Port, 'window' | 'insert' | 'insertFirst'> | undefined = pg
    ? {
        window: (q) => pgTakenWindow(pg, q),
        insert: (row) => pgInsertAllocation(pg, row),
        insertFirst: (rows) => pgInsertFirstFree(pg, rows),
      }
    : mariadb
      ? {
          window: (q) => mariadbTakenWindow(mariadb, q),
          insert: (row) => mariadbInsertAllocation(mariadb, row),
          insertFirst: (rows) => mariadbInsertFirstFree(mariadb, rows),
        }
      : undefined;
  if (fast) {
    const port: Port = { ...kyselyPort(store.db), ...fast };
    return withRetries('allocating an address', () => allocateWith(port, req));
  }
  return withRetries('allocating an address', () => allocateWith(kyselyPort(store.db), req));
}

// SQLite. A lone allocation (nobody else of this process waiting) runs its statements autocommitted, straight on
// better-sqlite3 with prepared statements: a `random` one is a single INSERT ... ON CONFLICT DO NOTHING RETURNING,
// which is its own durable transaction (no BEGIN/COMMIT/SAVEPOINT statements, no Kysely). The UNIQUE constraint
// settles races with other processes exactly as it does on PostgreSQL/MariaDB, so no transaction is needed
// around a window read and the INSERT that follows it.
//
// Group commit. SQLite commits one transaction at a time; callers of one process that arrive in the same turn of
// the event loop (or while a commit is running) are carried by one BEGIN IMMEDIATE transaction together (each in
// its own savepoint, so one caller's refusal does not undo another's address) and all answered after its COMMIT
// and the WAL's flush (src/store/sqlite-flush.ts): every allocation is durable before its caller hears of it.
interface GroupJob {
  req: AllocateRequest;
  resolve(a: Allocation): void;
  reject(e: unknown): void;
}

interface GroupQueue {
  pending: GroupJob[];
  draining: boolean;
}

type Outcome = { ok: true; allocation: Allocation } | { ok: false; error: unknown };

/** Most allocations one SQLite transaction carries. */
const GROUP_MAX = 64;
const groupQueues = new WeakMap<SqliteConnection, GroupQueue>();

function sqliteAllocate(store: Store, conn: SqliteConnection, req: AllocateRequest): Promise<Allocation> {
  let q = groupQueues.get(conn);
  if (!q) {
    q = { pending: [], draining: false };
    groupQueues.set(conn, q);
  }
  const queue = q;
  return new Promise<Allocation>((resolve, reject) => {
    queue.pending.push({ req, resolve, reject });
    if (!queue.draining) {
      queue.draining = true;
      // Callers resumed in the same microtask batch (e.g. all those answered by the previous COMMIT) queue up
      // before the drain starts, and share a transaction.
      queueMicrotask(() => void drainGroups(store, conn, queue));
    }
  });
}

async function drainGroups(store: Store, conn: SqliteConnection, q: GroupQueue): Promise<void> {
  try {
    while (q.pending.length > 0) {
      const group = q.pending.splice(0, GROUP_MAX);
      if (group.length === 1) {
        const job = group[0] as GroupJob;
        try {
          const allocation = await withRetries('allocating an address', () =>
            allocateWith(lonePort(store, conn), job.req),
          );
          // Its statements ran on better-sqlite3 directly, past the driver that waits for the WAL's flush: the
          // caller hears after that flush, and the next allocation need not wait for it.
          const flushed = store.wal?.durable();
          if (flushed) flushed.then(() => job.resolve(allocation), job.reject);
          else job.resolve(allocation);
        } catch (e) {
          job.reject(e);
        }
        continue;
      }
      let outcomes: Outcome[];
      try {
        outcomes = await withRetries('allocating an address', () =>
          store.db.connection().execute((c) => runGroup(conn, c as unknown as Executor, group)),
        );
      } catch (e) {
        for (const job of group) job.reject(e);
        continue;
      }
      group.forEach((job, i) => {
        const o = outcomes[i] as Outcome;
        if (o.ok) job.resolve(o.allocation);
        else job.reject(o.error);
      });
    }
  } finally {
    q.draining = false;
  }
}

/**
 * Autocommitted statements for a lone allocation. better-sqlite3 is synchronous, so a statement run while the
 * connection is outside any transaction cannot land inside another caller's; while a Kysely transaction of this
 * process is open on the connection (it may await between its statements), the statement goes through Kysely,
 * which waits for that transaction to end.
 */
function lonePort(store: Store, conn: SqliteConnection): Port {
  const viaKysely = kyselyPort(store.db);
  const direct = sqlitePort(conn, store.db);
  const pick = () => (conn.inTransaction ? viaKysely : direct);
  return {
    ...viaKysely,
    window: (q) => pick().window(q),
    insert: (row) => pick().insert(row),
    insertFirst: (rows) => pick().insertFirst(rows),
  };
}

/** The statements of the search straight on better-sqlite3; the rare find/update through `ex`. */
const sqlitePort = (conn: SqliteConnection, ex: Executor): Port => ({
  ...kyselyPort(ex),
  window: (q) => sqliteTakenWindow(conn, q),
  insert: (row) => sqliteInsertAllocation(conn, row),
  insertFirst: (rows) => sqliteInsertFirstFree(conn, rows),
});

async function runGroup(conn: SqliteConnection, c: Executor, group: GroupJob[]): Promise<Outcome[]> {
  const port = sqlitePort(conn, c);
  sqliteBegin(conn);
  try {
    const out: Outcome[] = [];
    for (const job of group) {
      sqliteSavepoint(conn, 'begin');
      try {
        out.push({ ok: true, allocation: await allocateWith(port, job.req) });
        sqliteSavepoint(conn, 'release');
      } catch (e) {
        // A driver failure fails (or retries) the whole group; a refusal is this caller's alone.
        if (!isCloudStackError(e)) throw e;
        sqliteSavepoint(conn, 'rollback');
        out.push({ ok: false, error: e });
      }
    }
    sqliteCommit(conn);
    return out;
  } catch (e) {
    if (conn.inTransaction) conn.exec('ROLLBACK');
    throw e;
  }
}

/** Retries what the database aborted as a deadlock / busy / serialization conflict; translates the rest. */
async function withRetries<T>(doing: string, fn: () => Promise<T>, retries = 8): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (isCloudStackError(e)) throw e;
      if (isRetryableConflict(e) && attempt < retries) {
        await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
        continue;
      }
      throw internalError(doing, e);
    }
  }
}

/** reserveIpAddress: the address leaves Free as Reserved (a strategy or a requested address). */
export function reserveAddressTx(ex: Executor, req: Omit<AllocateRequest, 'state'>): Promise<Allocation> {
  return allocateAddressTx(ex, { ...req, state: 'Reserved' });
}

export function reserveAddress(store: Store, req: Omit<AllocateRequest, 'state'>): Promise<Allocation> {
  return allocateAddress(store, { ...req, state: 'Reserved' });
}

/** An allocation by its id or by its address in a scope. */
export type AddressLookup = { id: number } | { scope: string; address: IpAddress };

const toRef = (l: AddressLookup): RowRef =>
  'id' in l ? { id: l.id } : { scope: l.scope, family: l.address.family, key: valueKey(l.address.value) };

const describe = (l: AddressLookup): string =>
  'id' in l ? `allocation ${l.id}` : `${formatIp(l.address)} in ${l.scope}`;

export async function findAddress(ex: Executor, l: AddressLookup): Promise<Allocation | undefined> {
  const row = await findAllocationRow(ex, toRef(l));
  return row ? allocationFromRow(row) : undefined;
}

export interface MarkStateOptions {
  /** Only from these states (narrower than the life cycle allows), e.g. ['Allocating'] to confirm. */
  from?: readonly AllocationState[];
  patch?: AllocationPatch;
  /** Named in the error when the transition is refused (default 'ipaddress'). */
  param?: string;
  now?: number;
}

/**
 * Moves an address along its life cycle (states.ts); 'Free' deletes the row. The state check and the write are
 * one statement, so two callers cannot both make the same transition. A refused transition (or an address that
 * is Free) is InvalidParameterValue naming the address and its current state.
 */
export async function markAddressState(
  ex: Executor,
  l: AddressLookup,
  to: AddressState,
  options: MarkStateOptions = {},
): Promise<Allocation | undefined> {
  const ref = toRef(l);
  const from = predecessorsOf(to).filter((s) => !options.from || options.from.includes(s));
  const now = options.now ?? Date.now();
  if (to === 'Free') {
    if (await deleteAllocationRow(ex, ref, from)) return undefined;
  } else if (await updateAllocationState(ex, ref, from, to, options.patch ?? {}, now)) {
    const row = await findAllocationRow(ex, ref);
    if (row) return allocationFromRow(row);
  }
  const current = await findAllocationRow(ex, ref);
  const state: AddressState = current?.state ?? 'Free';
  const shown = current ? formatValue(current.family as Family, BigInt(`0x${current.address}`)) : describe(l);
  const why =
    state === 'Free'
      ? to === 'Free'
        ? 'the address is already free'
        : 'the address is free; allocate or reserve it first'
      : canTransition(state, to)
        ? `the address is ${state}, and only ${options.from?.join('/') ?? from.join('/')} may become ${to} here`
        : `an address that is ${state} cannot become ${to}`;
  throw invalidParameter(options.param ?? 'ipaddress', shown, why);
}

/**
 * Frees an address (deletes its row). With `from`, only from those states (e.g. ['Releasing'] for the second
 * half of CloudStack's two-step release). Returns false when there was nothing to free.
 */
export async function releaseAddress(
  ex: Executor,
  l: AddressLookup,
  from?: readonly AllocationState[],
): Promise<boolean> {
  const freed = await deleteAllocationRow(ex, toRef(l), from);
  // The zone is not known here without a read; the scope kind is.
  if (freed) notifyAddress('released', 'scope' in l ? l.scope : 'unknown', undefined);
  return freed;
}

export interface Capacity {
  total: bigint;
  used: number;
  free: bigint;
}

const spansOf = (set: RangeSet): KeySpan[] =>
  set.ranges.map((r) => ({ startKey: valueKey(r.start), endKey: valueKey(r.end) }));

/** Used and free addresses of a pool in a scope: one COUNT over the index, never an enumeration. */
export async function poolCapacity(ex: Executor, scope: string, pool: RangeSet): Promise<Capacity> {
  const used = pool.isEmpty() ? 0 : await countAllocations(ex, scope, pool.family, spansOf(pool));
  return { total: pool.size(), used, free: pool.size() - BigInt(used) };
}

/** Capacity of each range (CloudStack listCapacity / listVlanIpRanges figures). */
export async function rangesCapacity<K>(
  ex: Executor,
  scope: string,
  ranges: readonly { id: K; range: IpRange }[],
): Promise<({ id: K } & Capacity)[]> {
  const out: ({ id: K } & Capacity)[] = [];
  for (const { id, range } of ranges) {
    out.push({ id, ...(await poolCapacity(ex, scope, RangeSet.of(range))) });
  }
  return out;
}

/** Rows of a scope (all families, or one), optionally in one state. */
export function countUsed(
  ex: Executor,
  scope: string,
  family: Family,
  state?: AllocationState,
): Promise<number> {
  return countAllocations(ex, scope, family, undefined, state);
}

export interface ListAddressesQuery extends Omit<AllocationFilter, 'spans'> {
  /** Only addresses inside this set. */
  within?: RangeSet;
  /** 1-based (CloudStack `page`). */
  page?: number;
  /** CloudStack `pagesize`; default 500 (CloudStack's default.page.size). */
  pageSize?: number;
}

/** A page of allocations in address order, with the total count. */
export async function listAddresses(
  ex: Executor,
  q: ListAddressesQuery,
): Promise<{ count: number; items: Allocation[] }> {
  const pageSize = q.pageSize ?? 500;
  const page = q.page ?? 1;
  if (!Number.isInteger(page) || page < 1) throw invalidParameter('page', page, 'must be a positive integer');
  if (!Number.isInteger(pageSize) || pageSize < 1) {
    throw invalidParameter('pagesize', pageSize, 'must be a positive integer');
  }
  const { within, page: _p, pageSize: _s, ...filter } = q;
  const { count, rows } = await listAllocationRows(
    ex,
    {
      ...filter,
      family: within ? within.family : filter.family,
      spans: within ? spansOf(within) : undefined,
    },
    (page - 1) * pageSize,
    pageSize,
  );
  return { count, items: rows.map(allocationFromRow) };
}

/** The next MAC address of a zone (ipam/mac.ts layout); never the same twice within the zone. */
export async function nextMacAddress(ex: Executor, zoneId: number): Promise<string> {
  return macFromSequence(zoneId, await takeMacSequence(ex, zoneId));
}

/** For error messages and tests. */
export const formatKey = (family: Family, key: string): string => formatIp(addressFromKey(family, key));
