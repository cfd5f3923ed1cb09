import { invalidParameter } from '../errors/catalogue.js';
import type { Family } from './address.js';
import { formatValue, parseIp } from './address.js';
import type { Cidr } from './cidr.js';
import { broadcastAddress, formatCidr } from './cidr.js';

/** An inclusive range of addresses of one family. */
export interface IpRange {
  family: Family;
  start: bigint;
  end: bigint;
}

/** Parses a start/end pair (createVlanIpRange startip/endip): same family, start ≤ end. */
export function parseRange(
  start: string,
  end: string,
  params: readonly [string, string] | readonly string[] = ['startip', 'endip'],
): IpRange {
  const [startParam = 'startip', endParam = 'endip'] = params;
  const s = parseIp(start, startParam);
  const e = parseIp(end, endParam);
  if (s.family !== e.family) {
    throw invalidParameter(
      endParam,
      end,
      `${endParam} must be the same IP version as ${startParam} (${start})`,
    );
  }
  if (e.value < s.value) {
    throw invalidParameter(endParam, end, `${endParam} must not be lower than ${startParam} (${start})`);
  }
  return { family: s.family, start: s.value, end: e.value };
}

export const formatRange = (r: IpRange): string =>
  r.start === r.end
    ? formatValue(r.family, r.start)
    : `${formatValue(r.family, r.start)}-${formatValue(r.family, r.end)}`;

export const rangeSize = (r: IpRange): bigint => r.end - r.start + 1n;

export const rangeContains = (r: IpRange, value: bigint): boolean => value >= r.start && value <= r.end;

export const rangesOverlap = (a: IpRange, b: IpRange): boolean =>
  a.family === b.family && a.start <= b.end && b.start <= a.end;

export const cidrToRange = (c: Cidr): IpRange => ({
  family: c.family,
  start: c.network,
  end: broadcastAddress(c).value,
});

export const rangeOverlapsCidr = (r: IpRange, c: Cidr): boolean => rangesOverlap(r, cidrToRange(c));

export const rangeInsideCidr = (r: IpRange, c: Cidr): boolean => {
  const cr = cidrToRange(c);
  return r.family === c.family && r.start >= cr.start && r.end <= cr.end;
};

/** Throws naming `param` unless the range lies inside the CIDR (createVlanIpRange: range inside gateway/netmask). */
export function checkRangeInsideCidr(r: IpRange, c: Cidr, param = 'startip'): void {
  if (!rangeInsideCidr(r, c)) {
    throw invalidParameter(param, formatRange(r), `the range is not inside the subnet ${formatCidr(c)}`);
  }
}

type Span = readonly [bigint, bigint];

/**
 * An immutable set of addresses of one family kept as sorted, disjoint, non-adjacent inclusive ranges.
 * Every operation costs O(number of ranges) (or O(log) for lookups), never O(number of addresses): a /8 or a
 * /64 pool is as cheap as a /24 (DESIGN.md guarantee 3).
 */
export class RangeSet {
  readonly family: Family;
  private readonly spans: readonly Span[];
  /** cumulative[i] = number of addresses in spans[0..i-1]; length spans.length + 1. */
  private readonly cumulative: readonly bigint[];

  private constructor(family: Family, spans: readonly Span[]) {
    this.family = family;
    this.spans = spans;
    const cum: bigint[] = [0n];
    let total = 0n;
    for (const [s, e] of spans) {
      total += e - s + 1n;
      cum.push(total);
    }
    this.cumulative = cum;
  }

  /** Normalises any ranges (overlapping, adjacent, unsorted) into a set. */
  static of(ranges: readonly IpRange[] | IpRange, family?: Family): RangeSet {
    const list = Array.isArray(ranges) ? (ranges as readonly IpRange[]) : [ranges as IpRange];
    const fam = family ?? list[0]?.family ?? 4;
    for (const r of list) {
      if (r.family !== fam) throw new RangeError(`cannot mix IPv${r.family} and IPv${fam} ranges in one set`);
      if (r.end < r.start) throw new RangeError(`range end ${r.end} is below its start ${r.start}`);
    }
    return new RangeSet(fam, normalise(list.map((r) => [r.start, r.end] as const)));
  }

  static empty(family: Family): RangeSet {
    return new RangeSet(family, []);
  }

  static fromCidr(c: Cidr): RangeSet {
    return RangeSet.of(cidrToRange(c));
  }

  get ranges(): IpRange[] {
    return this.spans.map(([start, end]) => ({ family: this.family, start, end }));
  }

  get rangeCount(): number {
    return this.spans.length;
  }

  isEmpty(): boolean {
    return this.spans.length === 0;
  }

  size(): bigint {
    return this.cumulative[this.cumulative.length - 1] ?? 0n;
  }

  union(other: RangeSet | IpRange | readonly IpRange[]): RangeSet {
    const o = this.coerce(other);
    return new RangeSet(this.resultFamily(o), normalise([...this.spans, ...o.spans]));
  }

  subtract(other: RangeSet | IpRange | readonly IpRange[]): RangeSet {
    const o = this.coerce(other);
    if (o.spans.length === 0 || this.spans.length === 0) return this;
    const out: Span[] = [];
    let j = 0;
    for (const [s0, e] of this.spans) {
      let s = s0;
      while (j < o.spans.length && (o.spans[j] as Span)[1] < s) j++;
      let k = j;
      while (k < o.spans.length && s <= e) {
        const [os, oe] = o.spans[k] as Span;
        if (os > e) break;
        if (os > s) out.push([s, os - 1n]);
        s = oe + 1n;
        if (oe > e) break;
        k++;
      }
      if (s <= e) out.push([s, e]);
    }
    return new RangeSet(this.family, out);
  }

  intersect(other: RangeSet | IpRange | readonly IpRange[]): RangeSet {
    const o = this.coerce(other);
    const out: Span[] = [];
    let i = 0;
    let j = 0;
    while (i < this.spans.length && j < o.spans.length) {
      const [as, ae] = this.spans[i] as Span;
      const [bs, be] = o.spans[j] as Span;
      const s = as > bs ? as : bs;
      const e = ae < be ? ae : be;
      if (s <= e) out.push([s, e]);
      if (ae < be) i++;
      else j++;
    }
    return new RangeSet(this.resultFamily(o), out);
  }

  equals(other: RangeSet): boolean {
    return (
      this.spans.length === other.spans.length &&
      this.spans.every(([s, e], i) => s === other.spans[i]?.[0] && e === other.spans[i]?.[1]) &&
      (this.spans.length === 0 || this.family === other.family)
    );
  }

  contains(value: bigint): boolean {
    const i = this.spanAtOrBefore(value);
    return i >= 0 && value <= (this.spans[i] as Span)[1];
  }

  containsRange(r: IpRange): boolean {
    if (r.family !== this.family) return false;
    const i = this.spanAtOrBefore(r.start);
    return i >= 0 && r.end <= (this.spans[i] as Span)[1];
  }

  /** The index-th member in ascending order (0-based); RangeError outside 0..size-1. O(log ranges). */
  at(index: bigint): bigint {
    if (index < 0n || index >= this.size()) {
      throw new RangeError(`index ${index} is outside the set of ${this.size()} addresses`);
    }
    // largest i with cumulative[i] <= index
    let lo = 0;
    let hi = this.spans.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.cumulative[mid] as bigint) <= index) lo = mid;
      else hi = mid - 1;
    }
    return (this.spans[lo] as Span)[0] + (index - (this.cumulative[lo] as bigint));
  }

  /** Position of `value` in ascending order, or -1n if not a member. */
  indexOf(value: bigint): bigint {
    const i = this.spanAtOrBefore(value);
    if (i < 0) return -1n;
    const [s, e] = this.spans[i] as Span;
    return value <= e ? (this.cumulative[i] as bigint) + (value - s) : -1n;
  }

  first(): bigint | undefined {
    return this.spans[0]?.[0];
  }

  last(): bigint | undefined {
    return this.spans[this.spans.length - 1]?.[1];
  }

  /** The smallest member ≥ value, or undefined. */
  nextAtOrAfter(value: bigint): bigint | undefined {
    const i = this.spanAtOrBefore(value);
    if (i >= 0 && value <= (this.spans[i] as Span)[1]) return value;
    return this.spans[i + 1]?.[0];
  }

  /** The largest member ≤ value, or undefined. */
  prevAtOrBefore(value: bigint): bigint | undefined {
    const i = this.spanAtOrBefore(value);
    if (i < 0) return undefined;
    const [, e] = this.spans[i] as Span;
    return value <= e ? value : e;
  }

  toString(): string {
    return this.ranges.map(formatRange).join(',');
  }

  /** Index of the last span whose start ≤ value, or -1. */
  private spanAtOrBefore(value: bigint): number {
    let lo = 0;
    let hi = this.spans.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.spans[mid] as Span)[0] <= value) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  private coerce(other: RangeSet | IpRange | readonly IpRange[]): RangeSet {
    const o = other instanceof RangeSet ? other : RangeSet.of(other as IpRange | IpRange[], this.family);
    if (o.family !== this.family && o.spans.length > 0 && this.spans.length > 0) {
      throw new RangeError(`cannot combine an IPv${this.family} set with an IPv${o.family} set`);
    }
    return o;
  }

  private resultFamily(o: RangeSet): Family {
    return this.spans.length === 0 ? o.family : this.family;
  }
}

function normalise(spans: Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1] + 1n) {
      if (e > last[1]) last[1] = e;
    } else out.push([s, e]);
  }
  return out;
}
