import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CloudStackError } from '../errors/catalogue.js';
import type { Family } from './address.js';
import { maxValue, parseIp } from './address.js';
import { parseCidr } from './cidr.js';
import type { IpRange } from './range.js';
import {
  checkRangeInsideCidr,
  formatRange,
  parseRange,
  RangeSet,
  rangeContains,
  rangeInsideCidr,
  rangeOverlapsCidr,
  rangeSize,
  rangesOverlap,
} from './range.js';

const UNIVERSE = 48;

/**
 * Small universes placed anywhere in the address space (so IPv6 values far above 2^64 are exercised):
 * a base, and ranges as offsets 0..UNIVERSE-1 from it.
 */
const universe = fc.constantFrom<Family>(4, 6).chain((family) =>
  fc.record({
    family: fc.constant(family),
    base: fc.oneof(
      fc.constant(0n),
      fc.constant(maxValue(family) - BigInt(UNIVERSE) + 1n),
      fc.bigInt({ min: 0n, max: maxValue(family) - BigInt(UNIVERSE) + 1n }),
    ),
  }),
);
const offsets = fc.array(
  fc
    .tuple(fc.integer({ min: 0, max: UNIVERSE - 1 }), fc.integer({ min: 0, max: UNIVERSE - 1 }))
    .map(([a, b]) => (a <= b ? [a, b] : [b, a]) as [number, number]),
  { maxLength: 6 },
);

type Model = Set<number>;
const toRanges = (family: Family, base: bigint, offs: [number, number][]): IpRange[] =>
  offs.map(([a, b]) => ({ family, start: base + BigInt(a), end: base + BigInt(b) }));
const toModel = (offs: [number, number][]): Model => {
  const m = new Set<number>();
  for (const [a, b] of offs) for (let i = a; i <= b; i++) m.add(i);
  return m;
};

function assertMatches(set: RangeSet, base: bigint, model: Model): void {
  const members = [...model].sort((a, b) => a - b);
  assert.equal(set.size(), BigInt(members.length));
  // normalised: sorted, disjoint, not adjacent
  const rs = set.ranges;
  for (let i = 0; i < rs.length; i++) {
    const r = rs[i] as IpRange;
    assert.ok(r.start <= r.end);
    if (i > 0)
      assert.ok((rs[i - 1] as IpRange).end + 1n < r.start, 'ranges must be disjoint and non-adjacent');
  }
  for (let o = -1; o <= UNIVERSE; o++) {
    const v = base + BigInt(o);
    if (v < 0n) continue;
    assert.equal(set.contains(v), model.has(o), `contains(${o})`);
    const next = members.find((m) => m >= o);
    assert.equal(
      set.nextAtOrAfter(v),
      next === undefined ? undefined : base + BigInt(next),
      `nextAtOrAfter(${o})`,
    );
    const prev = [...members].reverse().find((m) => m <= o);
    assert.equal(
      set.prevAtOrBefore(v),
      prev === undefined ? undefined : base + BigInt(prev),
      `prevAtOrBefore(${o})`,
    );
  }
  members.forEach((m, i) => {
    assert.equal(set.at(BigInt(i)), base + BigInt(m));
    assert.equal(set.indexOf(base + BigInt(m)), BigInt(i));
  });
  assert.equal(set.first(), members.length ? base + BigInt(members[0] as number) : undefined);
  assert.equal(set.last(), members.length ? base + BigInt(members[members.length - 1] as number) : undefined);
  assert.throws(() => set.at(set.size()), RangeError);
  assert.throws(() => set.at(-1n), RangeError);
}

test('RangeSet algebra matches a naive set model (IPv4 and IPv6)', () => {
  fc.assert(
    fc.property(universe, offsets, offsets, ({ family, base }, xa, xb) => {
      const a = RangeSet.of(toRanges(family, base, xa), family);
      const b = RangeSet.of(toRanges(family, base, xb), family);
      const ma = toModel(xa);
      const mb = toModel(xb);
      assertMatches(a, base, ma);
      assertMatches(a.union(b), base, new Set([...ma, ...mb]));
      assertMatches(a.subtract(b), base, new Set([...ma].filter((x) => !mb.has(x))));
      assertMatches(a.intersect(b), base, new Set([...ma].filter((x) => mb.has(x))));
      assert.ok(a.union(b).equals(b.union(a)));
      assert.ok(a.intersect(b).equals(b.intersect(a)));
      assert.ok(a.subtract(b).union(a.intersect(b)).equals(a));
      // accepts a plain range or list as the other operand
      assert.ok(a.subtract(toRanges(family, base, xb)).equals(a.subtract(b)));
    }),
    { numRuns: 400 },
  );
});

test('at and indexOf are inverse on huge sets without enumerating them', () => {
  const six = RangeSet.of([
    { family: 6, start: 1n << 100n, end: (1n << 100n) + (1n << 64n) - 1n },
    { family: 6, start: 1n << 120n, end: (1n << 121n) - 1n },
  ]);
  const four = RangeSet.fromCidr(parseCidr('10.0.0.0/8')).subtract(
    RangeSet.fromCidr(parseCidr('10.128.0.0/9')),
  );
  fc.assert(
    fc.property(fc.constantFrom(six, four), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (set, raw) => {
      const i = raw % set.size();
      const v = set.at(i);
      assert.ok(set.contains(v));
      assert.equal(set.indexOf(v), i);
    }),
    { numRuns: 1000 },
  );
  assert.equal(four.size(), 1n << 23n);
  assert.equal(six.indexOf(0n), -1n);
});

test('set constructors and guards', () => {
  const s = RangeSet.of([
    { family: 4, start: 10n, end: 20n },
    { family: 4, start: 21n, end: 30n },
    { family: 4, start: 5n, end: 12n },
  ]);
  assert.deepEqual(s.ranges, [{ family: 4, start: 5n, end: 30n }]);
  assert.equal(s.rangeCount, 1);
  assert.ok(RangeSet.empty(6).isEmpty());
  assert.equal(RangeSet.empty(6).size(), 0n);
  assert.equal(RangeSet.empty(4).first(), undefined);
  assert.throws(
    () =>
      RangeSet.of([
        { family: 4, start: 1n, end: 1n },
        { family: 6, start: 1n, end: 1n },
      ]),
    RangeError,
  );
  assert.throws(() => RangeSet.of({ family: 4, start: 2n, end: 1n }), RangeError);
  assert.throws(() => s.union(RangeSet.of({ family: 6, start: 1n, end: 1n })), RangeError);
  // an empty set combines with either family
  assert.equal(RangeSet.empty(4).union(RangeSet.of({ family: 6, start: 1n, end: 2n })).family, 6);
  assert.equal(
    RangeSet.fromCidr(parseCidr('10.0.0.0/30')).toString(),
    '10.0.0.0-10.0.0.3',
    'toString shows the ranges in address form',
  );
});

test('parseRange names the parameter and checks order and family', () => {
  assert.deepEqual(parseRange('10.0.0.10', '10.0.0.20'), { family: 4, start: 0x0a00000an, end: 0x0a000014n });
  assert.deepEqual(parseRange('2001:db8::1', '2001:db8::1'), {
    family: 6,
    start: parseIp('2001:db8::1').value,
    end: parseIp('2001:db8::1').value,
  });
  const invalid = (fn: () => unknown, param: string, value: string) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof CloudStackError && e.httpCode === 431, String(e));
      assert.ok(e.message.includes(param) && e.message.includes(value), e.message);
      return true;
    });
  invalid(() => parseRange('10.0.0.20', '10.0.0.10'), 'endip', '10.0.0.10');
  invalid(() => parseRange('10.0.0.1', '2001:db8::1'), 'endip', '2001:db8::1');
  invalid(() => parseRange('10.0.0.x', '10.0.0.1'), 'startip', '10.0.0.x');
  invalid(() => parseRange('2001:db8::1', '2001:db8::g', ['startipv6', 'endipv6']), 'endipv6', '2001:db8::g');
});

test('range helpers', () => {
  const r = parseRange('10.1.1.10', '10.1.1.20');
  assert.equal(rangeSize(r), 11n);
  assert.ok(rangeContains(r, parseIp('10.1.1.10').value));
  assert.ok(!rangeContains(r, parseIp('10.1.1.21').value));
  assert.ok(rangesOverlap(r, parseRange('10.1.1.20', '10.1.1.30')));
  assert.ok(!rangesOverlap(r, parseRange('10.1.1.21', '10.1.1.30')));
  assert.ok(!rangesOverlap(r, parseRange('::a01:10a', '::a01:114')), 'different families never overlap');
  assert.ok(rangeInsideCidr(r, parseCidr('10.1.1.0/24')));
  assert.ok(!rangeInsideCidr(r, parseCidr('10.1.1.16/28')));
  assert.ok(rangeOverlapsCidr(r, parseCidr('10.1.1.16/28')));
  assert.ok(!rangeOverlapsCidr(r, parseCidr('10.1.2.0/24')));
  assert.equal(formatRange(r), '10.1.1.10-10.1.1.20');
  assert.equal(formatRange(parseRange('2001:db8::1', '2001:db8::1')), '2001:db8::1');
  checkRangeInsideCidr(r, parseCidr('10.1.0.0/16'));
  assert.throws(
    () => checkRangeInsideCidr(r, parseCidr('10.2.0.0/16'), 'endip'),
    (e: unknown) =>
      e instanceof CloudStackError && /endip/.test(e.message) && /10\.2\.0\.0\/16/.test(e.message),
  );
});
