import { insufficientAddressCapacity, invalidParameter } from '../errors/catalogue.js';
import type { IpAddress } from './address.js';
import { formatIp } from './address.js';
import type { RangeSet } from './range.js';

/**
 * How a free address is chosen.
 * - `lowest` / `first`: the lowest free address (`first` as in CloudStack's `vrouter.redundant.tiers.placement`).
 * - `last`: the highest free address (router placement `last`).
 * - `random`: a uniformly random start over the pool, as CloudStack picks guest VM addresses
 *   (`array[rand.nextInt(size)]` over the free set, reference §2.1).
 */
export type Strategy = 'lowest' | 'random' | 'first' | 'last';

export type Direction = 'up' | 'down';

/** Uniform random integer in [0, maxExclusive). */
export type RandomBigInt = (maxExclusive: bigint) => bigint;

/** A uniform RandomBigInt from a `() => number` in [0, 1) (e.g. a seeded PRNG), by rejection sampling. */
export function randomBigIntFrom(rng: () => number): RandomBigInt {
  return (maxExclusive: bigint): bigint => {
    if (maxExclusive <= 0n) throw new RangeError('randomBigInt needs a positive bound');
    if (maxExclusive === 1n) return 0n;
    const bits = (maxExclusive - 1n).toString(2).length;
    const words = Math.ceil(bits / 24);
    const excess = BigInt(words * 24 - bits);
    for (;;) {
      let v = 0n;
      for (let i = 0; i < words; i++) {
        v = (v << 24n) | BigInt(Math.floor(rng() * 0x1000000) & 0xffffff);
      }
      v >>= excess;
      if (v < maxExclusive) return v;
    }
  };
}

export interface StartPoint {
  value: bigint;
  direction: Direction;
}

/** Where the gap search begins. An empty pool is an InsufficientAddressCapacity error. */
export function startPoint(strategy: Strategy, pool: RangeSet, randomBigInt: RandomBigInt): StartPoint {
  const first = pool.first();
  const last = pool.last();
  if (first === undefined || last === undefined)
    throw insufficientAddressCapacity('the address pool is empty');
  switch (strategy) {
    case 'lowest':
    case 'first':
      return { value: first, direction: 'up' };
    case 'last':
      return { value: last, direction: 'down' };
    case 'random':
      return { value: pool.at(randomBigInt(pool.size())), direction: 'up' };
  }
}

export type WindowResult = { found: bigint } | { continueFrom: bigint } | { exhaustedToEnd: true };

/**
 * One step of the gap search the store loops over without enumerating the pool.
 *
 * The store fetched `takenWindow`: up to K taken values from `from` on in `direction` (ascending and all ≥ from
 * for 'up', descending and all ≤ from for 'down'); `windowWasFull` says it got K (so more may follow). Taken
 * values outside the pool (a gateway, an excluded address) are allowed and skipped.
 *
 * Returns the first free pool member in that direction, or where to fetch the next window (strictly beyond
 * `from`, so the loop always progresses), or that the pool has no free member from `from` to its end.
 */
export function firstFreeInWindow(
  pool: RangeSet,
  from: bigint,
  direction: Direction,
  takenWindow: readonly bigint[],
  windowWasFull: boolean,
): WindowResult {
  const up = direction === 'up';
  const step = (v: bigint): bigint | undefined =>
    up ? pool.nextAtOrAfter(v + 1n) : pool.prevAtOrBefore(v - 1n);
  let candidate = up ? pool.nextAtOrAfter(from) : pool.prevAtOrBefore(from);
  for (const t of takenWindow) {
    if (candidate === undefined) return { exhaustedToEnd: true };
    if (t === candidate) {
      candidate = step(t);
    } else if (up ? t > candidate : t < candidate) {
      return { found: candidate };
    }
    // t before the candidate: a taken value outside the pool, skip it
  }
  if (candidate === undefined) return { exhaustedToEnd: true };
  return windowWasFull ? { continueFrom: candidate } : { found: candidate };
}

/** The store's lookup: up to `limit` taken values from `from` on in `direction`, sorted in that direction. */
export type FetchTaken = (from: bigint, direction: Direction, limit: number) => readonly bigint[];
export type FetchTakenAsync = (
  from: bigint,
  direction: Direction,
  limit: number,
) => Promise<readonly bigint[]>;

export interface FindFreeOptions {
  /** Taken values fetched in the first window of a scan (default 64). */
  windowSize?: number;
  /**
   * Each further window of the same scan doubles, up to this (default 4096): a long run of taken addresses
   * (lowest-first allocation packs them) costs O(log run) round trips instead of O(run / windowSize).
   */
  maxWindowSize?: number;
  /**
   * For `lowest`/`first` (scanning up) or `last` (scanning down): begin here instead of at the pool's end. The
   * caller guarantees no free address lies before it (e.g. a cached low-water mark); values outside the pool
   * are moved to the nearest member in the scan direction.
   */
  startAt?: bigint;
  /**
   * For `random`: how many uniformly random single-address probes to try before scanning up from the last one.
   * A scan after a random start favours addresses just after long taken runs; probes keep the choice close to
   * uniform over the free addresses while the pool is not nearly full (default 4).
   */
  randomProbes?: number;
}

interface FetchRequest {
  from: bigint;
  direction: Direction;
  limit: number;
}

/**
 * The whole search as a resumable generator, shared by the sync and async drivers: yields the windows it needs,
 * returns the chosen value or undefined when the pool is full. Nothing here is O(pool size): it reads
 * O(log(taken addresses in the way)) windows while the run is shorter than maxWindowSize.
 */
function* search(
  strategy: Strategy,
  pool: RangeSet,
  randomBigInt: RandomBigInt,
  options: FindFreeOptions,
): Generator<FetchRequest, bigint | undefined, readonly bigint[]> {
  if (pool.isEmpty()) return undefined;
  const k0 = Math.max(1, options.windowSize ?? 64);
  const kMax = Math.max(k0, options.maxWindowSize ?? 4096);
  let start = startPoint(strategy, pool, randomBigInt);
  if (options.startAt !== undefined && strategy !== 'random') {
    const at =
      start.direction === 'up' ? pool.nextAtOrAfter(options.startAt) : pool.prevAtOrBefore(options.startAt);
    if (at === undefined) return undefined;
    start = { value: at, direction: start.direction };
  }
  if (strategy === 'random') {
    const probes = Math.max(1, options.randomProbes ?? 4);
    for (let i = 0; i < probes; i++) {
      if (i > 0) start = startPoint(strategy, pool, randomBigInt);
      const w = yield { from: start.value, direction: 'up', limit: 1 };
      if (w[0] !== start.value) return start.value;
    }
  }
  const scan = function* (
    from: bigint,
    direction: Direction,
    stopBefore?: bigint,
  ): Generator<FetchRequest, bigint | undefined, readonly bigint[]> {
    let at: bigint = from;
    for (let k = k0; ; k = Math.min(kMax, k * 2)) {
      const w = yield { from: at, direction, limit: k };
      const r = firstFreeInWindow(pool, at, direction, w, w.length >= k);
      if ('found' in r) return stopBefore !== undefined && r.found >= stopBefore ? undefined : r.found;
      if ('exhaustedToEnd' in r) return undefined;
      if (stopBefore !== undefined && r.continueFrom >= stopBefore) return undefined;
      at = r.continueFrom;
    }
  };
  const found: bigint | undefined = yield* scan(start.value, start.direction);
  if (found !== undefined || strategy !== 'random') return found;
  // Random start: wrap around once to the pool start and search up to where we began.
  const first = pool.first() as bigint;
  if (start.value === first) return undefined;
  return yield* scan(first, 'up', start.value);
}

/** Chooses a free address, reading taken values through `fetchTaken`; undefined when the pool is full. */
export function findFree(
  strategy: Strategy,
  pool: RangeSet,
  randomBigInt: RandomBigInt,
  fetchTaken: FetchTaken,
  options: FindFreeOptions = {},
): bigint | undefined {
  const it = search(strategy, pool, randomBigInt, options);
  let next = it.next([]);
  while (!next.done) {
    const { from, direction, limit } = next.value;
    next = it.next(fetchTaken(from, direction, limit));
  }
  return next.value;
}

/** findFree for a store whose lookups are async (the SQL repository). */
export async function findFreeAsync(
  strategy: Strategy,
  pool: RangeSet,
  randomBigInt: RandomBigInt,
  fetchTaken: FetchTakenAsync,
  options: FindFreeOptions = {},
): Promise<bigint | undefined> {
  const it = search(strategy, pool, randomBigInt, options);
  let next = it.next([]);
  while (!next.done) {
    const { from, direction, limit } = next.value;
    next = it.next(await fetchTaken(from, direction, limit));
  }
  return next.value;
}

export interface ValidateRequestedOptions {
  gateway?: bigint;
  network?: bigint;
  broadcast?: bigint;
  /** Addresses carved out of the pool (reserved ranges, exclusions); reported as such rather than "not in range". */
  excluded?: RangeSet;
  /** The parameter the address came from (default 'ipaddress'). */
  param?: string;
  /** How to describe the pool in messages (default: its ranges). */
  poolDescription?: string;
}

/**
 * Checks a requested address (deployVirtualMachine ipaddress=, updateVmNicIp, associateIpAddress ipaddress=) the
 * way CloudStack does: same family, inside the pool, not the network, broadcast or gateway address, not excluded.
 * Whether it is already taken is the store's job (a UNIQUE constraint), not checked here.
 */
export function validateRequested(
  value: IpAddress,
  pool: RangeSet,
  opts: ValidateRequestedOptions = {},
): void {
  const param = opts.param ?? 'ipaddress';
  const text = formatIp(value);
  if (!pool.isEmpty() && value.family !== pool.family) {
    throw invalidParameter(param, text, `an IPv${pool.family} address is required here`);
  }
  if (opts.gateway !== undefined && value.value === opts.gateway) {
    throw invalidParameter(param, text, 'it is the gateway address of the network');
  }
  if (opts.network !== undefined && value.value === opts.network) {
    throw invalidParameter(param, text, 'it is the network address of the subnet');
  }
  if (opts.broadcast !== undefined && value.value === opts.broadcast) {
    throw invalidParameter(param, text, 'it is the broadcast address of the subnet');
  }
  if (opts.excluded?.contains(value.value)) {
    throw invalidParameter(param, text, 'it is in an excluded (reserved) range');
  }
  if (!pool.contains(value.value)) {
    const where = opts.poolDescription ?? (pool.isEmpty() ? 'the empty pool' : pool.toString());
    throw invalidParameter(param, text, `it is not in the address range ${where}`);
  }
}
