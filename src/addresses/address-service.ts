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
 *
 * The search itself is allocation-search.ts, SQLite's group commit sqlite-groups.ts, the request's and the
 * allocation's shapes allocation.ts; this file is the way in, and the reads and state changes of an allocation.
 */
import { invalidParameter, isCloudStackError } from '../errors/catalogue.js';
import { addressFromKey, formatIp, formatValue, macFromSequence, RangeSet, valueKey } from '../ipam/index.js';
import type { Family, IpAddress, IpRange } from '../ipam/index.js';
import { transaction } from '../store/db.js';
import type { Executor, Store } from '../store/db.js';
import {
  countAllocations,
  deleteAllocationRow,
  findAllocationRow,
  listAllocationRows,
  takeMacSequence,
  updateAllocationState,
} from './address-repository.js';
import type { AllocationFilter, AllocationPatch, KeySpan, RowRef } from './address-repository.js';
import { notifyAddress, notifyAddressFailure } from './observers.js';
import { pgInsertAllocation, pgInsertFirstFree, pgTakenWindow } from './postgres-fast-path.js';
import { mariadbInsertAllocation, mariadbInsertFirstFree, mariadbTakenWindow } from './mariadb-fast-path.js';
import { canTransition, predecessorsOf } from './states.js';
import type { AddressState } from './states.js';
import type { AllocationState } from './tables.js';
import { allocationFromRow } from './allocation.js';
import type { AllocateRequest, Allocation } from './allocation.js';
import { allocateWith, kyselyPort, withRetries } from './allocation-search.js';
import type { Port } from './allocation-search.js';
import { sqliteAllocate } from './sqlite-groups.js';

export { allocationFromRow } from './allocation.js';
export type { AllocateRequest, Allocation, AllocationCoreRow, AllocationOwner } from './allocation.js';

/**
 * Allocates an address on `ex`: a transaction of the caller's, or (PostgreSQL, MariaDB) the store's db. A
 * lost race on the UNIQUE constraint picks another candidate; an exhausted pool is InsufficientAddressCapacity
 * (533/4320); a bad or taken requested address is InvalidParameterValue (431/4350) naming the parameter.
 */
export async function allocateAddressTx(ex: Executor, req: AllocateRequest): Promise<Allocation> {
  return observed(req, allocateWith(kyselyPort(ex, req.insertOwn), req));
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
