/**
 * The search for a free address (DESIGN.md guarantees 2–4): ipam's gap search over windows of the ip_allocations
 * index, an INSERT per candidate, and the UNIQUE(scope, family, address) constraint settling races, through a
 * Port: the statements on Kysely (a caller's transaction, or the store's db) or on a driver's fast path
 * (address-service.ts, sqlite-groups.ts). A requested address is validated and inserted, or taken over from the
 * caller's own reservation.
 */
import {
  CloudStackError,
  insufficientAddressCapacity,
  internalError,
  invalidParameter,
  isCloudStackError,
} from '../errors/catalogue.js';
import {
  findFreeAsync,
  formatIp,
  randomBigIntFrom,
  RangeSet,
  validateRequested,
  valueKey,
} from '../ipam/index.js';
import type { Family, IpAddress, IpRange, Strategy } from '../ipam/index.js';
import { isRetryableConflict } from '../store/db.js';
import type { Executor } from '../store/db.js';
import {
  CANDIDATES,
  findAllocationRow,
  insertAllocationRow,
  insertFirstFreeRow,
  selectTakenWindow,
  updateAllocationState,
} from './address-repository.js';
import type {
  AllocationPatch,
  AllocationRow,
  InsertedFirst,
  NewAllocationRow,
  RowRef,
  WindowQuery,
} from './address-repository.js';
import { allocationFromRow, num } from './allocation.js';
import type { AllocateRequest, Allocation } from './allocation.js';
import type { AllocationState } from './tables.js';

/** Taken keys read per window of the gap search. */
const WINDOW = 64;
/** After this many lost races a lowest/first/last search switches to random: under contention every caller
 * chases the same lowest free address, and which of them gets it is arbitrary anyway. */
const STRICT_ORDER_ATTEMPTS = 2;
/** Lost races one call tolerates before it gives up with ConcurrentOperation (each lost race means another
 * caller got an address, so this only trips under a pathological allocate/release storm). */
const MAX_LOST_RACES = 10_000;

/** The statements the allocation loop needs, on Kysely or on the SQLite fast path. */
export interface Port {
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

export const kyselyPort = (ex: Executor, insertOwn?: AllocateRequest['insertOwn']): Port => ({
  window: (q) => selectTakenWindow(ex, q),
  insert: (row) => insertAllocationRow(ex, row),
  insertFirst: (rows) => insertFirstFreeRow(ex, rows, insertOwn),
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
    uuid: req.uuidOf ? req.uuidOf(value) : null,
    for_display: req.forDisplay === false ? 0 : 1,
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
    ...(row.uuid ? { inserted: { uuid: row.uuid, forDisplay: row.for_display !== 0 } } : {}),
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

export async function allocateWith(port: Port, req: AllocateRequest): Promise<Allocation> {
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

/** Retries what the database aborted as a deadlock / busy / serialization conflict; translates the rest. */
export async function withRetries<T>(doing: string, fn: () => Promise<T>, retries = 8): Promise<T> {
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
