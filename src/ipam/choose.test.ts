import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CloudStackError } from '../errors/catalogue.js';
import type { Family } from './address.js';
import { maxValue, parseIp } from './address.js';
import { broadcastAddress, parseCidr } from './cidr.js';
import type { Direction, RandomBigInt, Strategy } from './choose.js';
import {
  findFree,
  findFreeAsync,
  firstFreeInWindow,
  randomBigIntFrom,
  startPoint,
  validateRequested,
} from './choose.js';
import { RangeSet } from './range.js';
import { seededRng } from './seeded-rng.js';

const set4 = (...spans: [number, number][]) =>
  RangeSet.of(spans.map(([s, e]) => ({ family: 4 as const, start: BigInt(s), end: BigInt(e) })));
const big = (...xs: number[]) => xs.map(BigInt);

test('firstFreeInWindow: gaps, pool holes, foreign taken values, full windows and exhaustion', () => {
  const pool = set4([10, 14], [20, 22]); // 10..14, 20..22
  const up = (from: number, taken: number[], full: boolean) =>
    firstFreeInWindow(pool, BigInt(from), 'up', big(...taken), full);
  const down = (from: number, taken: number[], full: boolean) =>
    firstFreeInWindow(pool, BigInt(from), 'down', big(...taken), full);
  assert.deepEqual(up(10, [], false), { found: 10n });
  assert.deepEqual(up(0, [], false), { found: 10n }, 'from below the pool starts at its first member');
  assert.deepEqual(up(10, [10, 11, 13], false), { found: 12n });
  assert.deepEqual(up(10, [10, 11, 12, 13, 14, 20], false), { found: 21n }, 'jumps the hole between ranges');
  assert.deepEqual(
    up(10, [10, 11, 12, 13, 14, 15, 16, 20], false),
    { found: 21n },
    'taken values in the hole',
  );
  assert.deepEqual(up(10, [10, 11], true), { continueFrom: 12n }, 'a full window says nothing beyond it');
  assert.deepEqual(up(10, [10, 11, 12, 13, 14], true), { continueFrom: 20n });
  assert.deepEqual(up(10, [10, 11, 12, 13, 14, 20, 21, 22], false), { exhaustedToEnd: true });
  assert.deepEqual(up(10, [10, 11, 12, 13, 14, 20, 21, 22], true), { exhaustedToEnd: true });
  assert.deepEqual(up(23, [], false), { exhaustedToEnd: true });
  assert.deepEqual(up(15, [15, 16, 17], true), { continueFrom: 20n }, 'foreign values in a full window');
  assert.deepEqual(down(22, [], false), { found: 22n });
  assert.deepEqual(down(99, [22, 21], false), { found: 20n });
  assert.deepEqual(down(22, [22, 21, 20, 17], false), { found: 14n });
  assert.deepEqual(down(22, [22, 21], true), { continueFrom: 20n });
  assert.deepEqual(down(12, [12, 11, 10], false), { exhaustedToEnd: true });
  assert.deepEqual(down(9, [], false), { exhaustedToEnd: true });
});

test('startPoint per strategy; an empty pool is InsufficientAddressCapacity', () => {
  const pool = set4([10, 14], [20, 22]);
  const rnd: RandomBigInt = (n) => n - 1n;
  assert.deepEqual(startPoint('lowest', pool, rnd), { value: 10n, direction: 'up' });
  assert.deepEqual(startPoint('first', pool, rnd), { value: 10n, direction: 'up' });
  assert.deepEqual(startPoint('last', pool, rnd), { value: 22n, direction: 'down' });
  assert.deepEqual(startPoint('random', pool, rnd), { value: 22n, direction: 'up' });
  assert.deepEqual(
    startPoint('random', pool, () => 5n),
    { value: 20n, direction: 'up' },
  );
  assert.throws(
    () => startPoint('lowest', RangeSet.empty(4), rnd),
    (e: unknown) => e instanceof CloudStackError && e.httpCode === 533,
  );
});

test('randomBigIntFrom is in bounds and reaches both ends', () => {
  const r = randomBigIntFrom(seededRng(7));
  for (const n of [1n, 2n, 3n, 255n, 1n << 24n, (1n << 64n) + 3n, 1n << 128n]) {
    for (let i = 0; i < 50; i++) {
      const v = r(n);
      assert.ok(v >= 0n && v < n, `${v} not in [0, ${n})`);
    }
  }
  const seen = new Set<bigint>();
  for (let i = 0; i < 400; i++) seen.add(r(5n));
  assert.equal(seen.size, 5);
  assert.ok(r(1n << 128n) > 1n << 100n || r(1n << 128n) > 1n << 100n, 'uses the high bits too');
  assert.throws(() => r(0n), RangeError);
});

/** The store's lookup over a sorted array, as a FetchTaken. */
function fetcherOver(taken: bigint[]) {
  const sorted = [...new Set(taken)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return (from: bigint, direction: Direction, limit: number): bigint[] =>
    direction === 'up'
      ? sorted.filter((t) => t >= from).slice(0, limit)
      : sorted
          .filter((t) => t <= from)
          .reverse()
          .slice(0, limit);
}

const smallPool = fc.constantFrom<Family>(4, 6).chain((family) =>
  fc
    .tuple(
      fc.bigInt({ min: 0n, max: maxValue(family) - 64n }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 8 })), {
        minLength: 0,
        maxLength: 4,
      }),
      fc.array(fc.integer({ min: -2, max: 65 }), { maxLength: 40 }),
    )
    .map(([base, spans, takenOffsets]) => ({
      pool: RangeSet.of(
        spans.map(([s, len]) => ({
          family,
          start: base + BigInt(s),
          end: base + BigInt(Math.min(63, s + len)),
        })),
        family,
      ),
      // taken values inside and outside the pool, like a gateway or an address of a removed range
      taken: takenOffsets.map((o) => base + BigInt(o)).filter((v) => v >= 0n && v <= maxValue(family)),
    })),
);

test('findFree agrees with a naive scan for every strategy and window size', async () => {
  await fc.assert(
    fc.asyncProperty(
      smallPool,
      fc.constantFrom<Strategy>('lowest', 'first', 'last', 'random'),
      fc.constantFrom(1, 2, 3, 64),
      fc.constantFrom(undefined, 1, 4),
      fc.integer(),
      async ({ pool, taken }, strategy, windowSize, maxWindowSize, seed) => {
        const fetch = fetcherOver(taken);
        const free: bigint[] = [];
        for (let i = 0n; i < pool.size(); i++) if (!taken.includes(pool.at(i))) free.push(pool.at(i));
        const options = { windowSize, ...(maxWindowSize === undefined ? {} : { maxWindowSize }) };
        const got = findFree(strategy, pool, randomBigIntFrom(seededRng(seed)), fetch, options);
        const gotAsync = await findFreeAsync(
          strategy,
          pool,
          randomBigIntFrom(seededRng(seed)),
          async (f, d, l) => fetch(f, d, l),
          options,
        );
        assert.equal(gotAsync, got, 'async and sync drivers agree');
        if (free.length === 0) {
          assert.equal(got, undefined);
          return;
        }
        assert.ok(got !== undefined, 'a free address exists but none was found');
        assert.ok(free.includes(got), `${got} is not free`);
        if (strategy === 'lowest' || strategy === 'first') assert.equal(got, free[0]);
        if (strategy === 'last') assert.equal(got, free[free.length - 1]);
      },
    ),
    { numRuns: 600 },
  );
});

test('choosing in a /8 and a /64 reads only the taken values in the way', () => {
  const pools: [string, RangeSet][] = [
    ['/24', RangeSet.fromCidr(parseCidr('10.1.1.0/24'))],
    ['/8', RangeSet.fromCidr(parseCidr('10.0.0.0/8'))],
    ['/64', RangeSet.fromCidr(parseCidr('2001:db8::/64'))],
    ['/0 v6', RangeSet.fromCidr(parseCidr('::/0'))],
  ];
  for (const [name, pool] of pools) {
    // 100 taken addresses at the start, 100 at the end, 100 scattered
    const taken: bigint[] = [];
    const first = pool.first() as bigint;
    const last = pool.last() as bigint;
    const r = randomBigIntFrom(seededRng(1));
    for (let i = 0n; i < 100n; i++) taken.push(first + i, last - i, pool.at(r(pool.size())));
    const base = fetcherOver(taken);
    let reads = 0;
    const fetch = (f: bigint, d: Direction, l: number) => {
      const w = base(f, d, l);
      reads += w.length + 1;
      return w;
    };
    for (const strategy of ['lowest', 'last', 'random'] as const) {
      reads = 0;
      const v = findFree(strategy, pool, r, fetch, { windowSize: 16 });
      assert.ok(v !== undefined && pool.contains(v) && !taken.includes(v), `${name} ${strategy}`);
      assert.ok(reads <= 400, `${name} ${strategy}: ${reads} reads`);
    }
    assert.equal(findFree('lowest', pool, r, fetch), first + 100n, name);
    assert.equal(findFree('last', pool, r, fetch), last - 100n, name);
  }
});

test('startAt resumes a lowest/last scan from a low-water mark', () => {
  const pool = set4([10, 14], [20, 22]);
  const fetch = fetcherOver(big(10, 11, 20));
  const rnd = randomBigIntFrom(seededRng(1));
  assert.equal(findFree('lowest', pool, rnd, fetch), 12n);
  assert.equal(findFree('lowest', pool, rnd, fetch, { startAt: 13n }), 13n);
  assert.equal(findFree('lowest', pool, rnd, fetch, { startAt: 15n }), 21n, 'moved into the pool');
  assert.equal(findFree('lowest', pool, rnd, fetch, { startAt: 23n }), undefined);
  assert.equal(findFree('last', pool, rnd, fetch, { startAt: 19n }), 14n);
  assert.equal(findFree('last', pool, rnd, fetch, { startAt: 9n }), undefined);
});

test('random wraps around once to find the free addresses below its start', () => {
  const pool = set4([10, 20]);
  const atEnd: RandomBigInt = (n) => n - 1n;
  assert.equal(
    findFree('random', pool, atEnd, fetcherOver(big(11, 12, 13, 14, 15, 16, 17, 18, 19, 20))),
    10n,
  );
  assert.equal(
    findFree('random', pool, atEnd, fetcherOver(big(10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20))),
    undefined,
  );
  assert.equal(
    findFree('random', pool, () => 5n, fetcherOver(big(13, 14, 15, 16, 17, 18, 19, 20)), { windowSize: 1 }),
    10n,
  );
});

test('a long packed run costs O(log run) window reads', () => {
  const pool = RangeSet.fromCidr(parseCidr('10.0.0.0/8'));
  const taken: bigint[] = [];
  for (let i = 0n; i < 100_000n; i++) taken.push((pool.first() as bigint) + i);
  let calls = 0;
  const fetch = (from: bigint, _d: Direction, limit: number) => {
    calls++;
    // the run is contiguous from the pool start, so a window is a slice of it
    const i = Number(from - (pool.first() as bigint));
    return taken.slice(i, i + limit);
  };
  const v = findFree('lowest', pool, randomBigIntFrom(seededRng(1)), fetch, { maxWindowSize: 1 << 20 });
  assert.equal(v, (pool.first() as bigint) + 100_000n);
  assert.ok(calls <= 12, `${calls} window reads for a run of 100000`);
});

test('validateRequested names the parameter and says why', () => {
  const cidr = parseCidr('10.1.1.0/24');
  const gateway = parseIp('10.1.1.1').value;
  const excluded = RangeSet.of({
    family: 4,
    start: parseIp('10.1.1.200').value,
    end: parseIp('10.1.1.210').value,
  });
  const pool = RangeSet.fromCidr(cidr).subtract(excluded);
  const opts = {
    gateway,
    network: cidr.network,
    broadcast: broadcastAddress(cidr).value,
    excluded,
    param: 'ipaddress',
  };
  validateRequested(parseIp('10.1.1.2'), pool, opts);
  validateRequested(parseIp('10.1.1.254'), pool, opts);
  const cases: [string, RegExp, string?][] = [
    ['10.1.1.1', /gateway/],
    ['10.1.1.0', /network address/],
    ['10.1.1.255', /broadcast/],
    ['10.1.1.205', /excluded/],
    ['10.1.2.5', /not in the address range 10\.1\.1\.0-10\.1\.1\.199,10\.1\.1\.211-10\.1\.1\.255/],
    ['::1', /IPv4 address is required/],
    ['10.1.2.5', /not in the address range/, 'ip4address'],
  ];
  for (const [text, why, param] of cases) {
    assert.throws(
      () => validateRequested(parseIp(text), pool, { ...opts, ...(param ? { param } : {}) }),
      (e: unknown) => {
        assert.ok(e instanceof CloudStackError && e.httpCode === 431, String(e));
        assert.ok(e.message.includes(param ?? 'ipaddress') && e.message.includes(text), e.message);
        assert.match(e.message, why);
        return true;
      },
    );
  }
  const six = RangeSet.fromCidr(parseCidr('2001:db8::/64'));
  validateRequested(parseIp('2001:db8::5'), six, { param: 'ip6address' });
  assert.throws(
    () =>
      validateRequested(parseIp('2001:db9::5'), six, {
        param: 'ip6address',
        poolDescription: '2001:db8::/64',
      }),
    /ip6address.*2001:db9::5.*not in the address range 2001:db8::\/64/,
  );
});
