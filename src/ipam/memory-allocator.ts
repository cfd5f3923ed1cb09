import { insufficientAddressCapacity, invalidParameter } from '../errors/catalogue.js';
import type { IpAddress } from './address.js';
import { formatValue } from './address.js';
import type {
  Direction,
  FindFreeOptions,
  RandomBigInt,
  Strategy,
  ValidateRequestedOptions,
} from './choose.js';
import { findFree, randomBigIntFrom, validateRequested } from './choose.js';
import type { RangeSet } from './range.js';

/**
 * The in-memory reference allocator: the same choice functions the SQL store uses, over a sorted array of taken
 * values instead of an indexed table. Property tests check the invariants on it; store tests use it as an oracle.
 */
export class MemoryAllocator {
  readonly pool: RangeSet;
  readonly strategy: Strategy;
  private readonly randomBigInt: RandomBigInt;
  private readonly options: FindFreeOptions;
  /** Ascending, no duplicates. May hold values outside the pool (requested with validation off). */
  private readonly taken: bigint[] = [];
  /** Number of taken values fetched through the window lookups (to show the search never enumerates). */
  fetchedValues = 0;
  fetchCalls = 0;

  constructor(
    pool: RangeSet,
    strategy: Strategy,
    rng: (() => number) | { randomBigInt: RandomBigInt },
    options: FindFreeOptions = {},
  ) {
    this.pool = pool;
    this.strategy = strategy;
    this.randomBigInt = typeof rng === 'function' ? randomBigIntFrom(rng) : rng.randomBigInt;
    this.options = options;
  }

  get takenCount(): number {
    return this.taken.length;
  }

  takenValues(): readonly bigint[] {
    return this.taken;
  }

  isTaken(value: bigint): boolean {
    const i = this.lowerBound(value);
    return this.taken[i] === value;
  }

  /** Chooses and takes a free address; InsufficientAddressCapacity when the pool is full. */
  allocate(): bigint {
    const v = findFree(
      this.strategy,
      this.pool,
      this.randomBigInt,
      (f, d, l) => this.fetch(f, d, l),
      this.options,
    );
    if (v === undefined)
      throw insufficientAddressCapacity(
        `no free address left in ${this.pool.toString() || 'the empty pool'}`,
      );
    this.insert(v);
    return v;
  }

  /** Takes a specific address after the same checks as the store (plus "already taken", the store's UNIQUE). */
  allocateRequested(value: IpAddress, opts: ValidateRequestedOptions = {}): bigint {
    validateRequested(value, this.pool, opts);
    if (this.isTaken(value.value)) {
      throw invalidParameter(
        opts.param ?? 'ipaddress',
        formatValue(value.family, value.value),
        'the address is already allocated',
      );
    }
    this.insert(value.value);
    return value.value;
  }

  /** Frees an address; false if it was not taken. */
  release(value: bigint): boolean {
    const i = this.lowerBound(value);
    if (this.taken[i] !== value) return false;
    this.taken.splice(i, 1);
    return true;
  }

  private fetch(from: bigint, direction: Direction, limit: number): bigint[] {
    this.fetchCalls++;
    let out: bigint[];
    if (direction === 'up') {
      const i = this.lowerBound(from);
      out = this.taken.slice(i, i + limit);
    } else {
      const i = this.lowerBound(from + 1n); // first index > from
      out = this.taken.slice(Math.max(0, i - limit), i).reverse();
    }
    this.fetchedValues += out.length;
    return out;
  }

  private insert(value: bigint): void {
    const i = this.lowerBound(value);
    if (this.taken[i] === value) throw new Error(`internal: ${value} allocated twice`);
    this.taken.splice(i, 0, value);
  }

  /** First index whose value is ≥ v. */
  private lowerBound(v: bigint): number {
    let lo = 0;
    let hi = this.taken.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.taken[mid] as bigint) < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
