/**
 * The store allocator against the in-memory model, on random command sequences (fast-check), IPv4 and IPv6, on
 * each database: never a duplicate, always inside the pool, exclusions and the gateway never chosen,
 * release round-trips, exhaustion exactly when the model is full; for lowest/last the very same choices as
 * ipam's MemoryAllocator. Each run uses its own scope in one database per engine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { CloudStackError } from '../errors/catalogue.js';
import { maxValue, MemoryAllocator, randomBigIntFrom, RangeSet } from '../ipam/index.js';
import type { Family, Strategy } from '../ipam/index.js';
import { seededRng } from '../ipam/seeded-rng.js';
import { allocateAddress, poolCapacity, releaseAddress } from './address-service.js';

type Command = { op: 'allocate' } | { op: 'request'; offset: number } | { op: 'release'; offset: number };

const SPAN = 20;
const scenario = fc.constantFrom<Family>(4, 6).chain((family) =>
  fc.record({
    family: fc.constant(family),
    base: fc.oneof(fc.constant(1n), fc.bigInt({ min: 1n, max: maxValue(family) - BigInt(SPAN) })),
    exclusions: fc.array(fc.tuple(fc.integer({ min: 0, max: SPAN - 1 }), fc.integer({ min: 0, max: 2 })), {
      maxLength: 2,
    }),
    strategy: fc.constantFrom<Strategy>('lowest', 'last', 'random'),
    seed: fc.integer(),
    commands: fc.array(
      fc.oneof(
        { weight: 5, arbitrary: fc.constant<Command>({ op: 'allocate' }) },
        {
          weight: 1,
          arbitrary: fc.integer({ min: -1, max: SPAN }).map((offset): Command => ({ op: 'request', offset })),
        },
        {
          weight: 2,
          arbitrary: fc
            .integer({ min: 0, max: SPAN - 1 })
            .map((offset): Command => ({ op: 'release', offset })),
        },
      ),
      { maxLength: 30 },
    ),
  }),
);

const kindOf = (e: unknown) => (e instanceof CloudStackError ? e.httpCode : `raw: ${String(e)}`);

for (const kind of testDbKinds()) {
  test(`${kind}: store allocation follows the model on random command sequences`, async (t) => {
    const { store, cleanup } = await createTestStore(kind);
    t.after(cleanup);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(scenario, async ({ family, base, exclusions, strategy, seed, commands }) => {
        const scope = `prop:${run++}`;
        const whole = RangeSet.of({ family, start: base, end: base + BigInt(SPAN - 1) });
        // The first address plays the gateway: never chosen, refused when requested.
        const gateway = { family, value: base };
        const excluded = RangeSet.of(
          exclusions.map(([s, len]) => ({
            family,
            start: base + BigInt(s),
            end: base + BigInt(Math.min(SPAN - 1, s + len)),
          })),
          family,
        );
        const choosable = whole.subtract(excluded).subtract({ family, start: base, end: base });
        const oracle = new MemoryAllocator(
          choosable,
          strategy === 'random' ? 'lowest' : strategy,
          seededRng(1),
        );
        const held = new Set<bigint>();
        const random = randomBigIntFrom(seededRng(seed));
        const req = { scope, pool: whole, exclude: excluded, gateway, strategy, randomBigInt: random };
        for (const c of commands) {
          if (c.op === 'allocate') {
            const full = held.size === Number(choosable.size());
            try {
              const a = await allocateAddress(store, req);
              assert.ok(!full, `allocated ${a.ip} from a full pool`);
              assert.ok(choosable.contains(a.address.value), `${a.ip} is not choosable`);
              assert.ok(!held.has(a.address.value), `${a.ip} handed out twice`);
              if (strategy !== 'random') assert.equal(a.address.value, oracle.allocate());
              else oracle.allocateRequested(a.address);
              held.add(a.address.value);
            } catch (e) {
              assert.equal(kindOf(e), 533, String(e));
              assert.ok(full, 'reported exhausted while addresses were free');
            }
          } else if (c.op === 'request') {
            const value = base + BigInt(c.offset);
            const ok = value >= 0n && choosable.contains(value) && !held.has(value);
            try {
              const a = await allocateAddress(store, { ...req, requested: { family, value } });
              assert.ok(ok, `requested ${a.ip} should have been refused`);
              oracle.allocateRequested(a.address);
              held.add(value);
            } catch (e) {
              assert.equal(kindOf(e), 431, String(e));
              assert.ok(!ok, `requested offset ${c.offset} refused: ${String(e)}`);
            }
          } else {
            const value = base + BigInt(c.offset);
            const freed = await releaseAddress(store.db, { scope, address: { family, value } });
            assert.equal(freed, held.has(value));
            if (freed) {
              held.delete(value);
              oracle.release(value);
            }
          }
        }
        const cap = await poolCapacity(store.db, scope, choosable);
        assert.equal(cap.used, held.size);
        assert.equal(cap.free, choosable.size() - BigInt(held.size));
      }),
      { numRuns: 25, seed: 20261123 },
    );
  });
}
