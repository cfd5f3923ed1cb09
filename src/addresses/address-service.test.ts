import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { openStore, transaction } from '../store/db.js';
import type { Store } from '../store/db.js';
import { CloudStackError } from '../errors/catalogue.js';
import {
  broadcastAddress,
  firstHost,
  formatIp,
  lastHost,
  MemoryAllocator,
  networkAddress,
  parseCidr,
  parseIp,
  randomBigIntFrom,
  valueKey,
  RangeSet,
} from '../ipam/index.js';
import type { Cidr } from '../ipam/index.js';
import { seededRng } from '../ipam/seeded-rng.js';
import {
  allocateAddress,
  allocateAddressTx,
  countUsed,
  findAddress,
  listAddresses,
  markAddressState,
  nextMacAddress,
  poolCapacity,
  rangesCapacity,
  releaseAddress,
  reserveAddress,
} from './address-service.js';
import type { AllocateRequest } from './address-service.js';
import { insertFirstFreeRow } from './address-repository.js';

/** A guest network's pool the way the networks service builds it: host addresses, gateway excluded. */
function guest(cidrText: string, scope: string): AllocateRequest & { cidr: Cidr } {
  const cidr = parseCidr(cidrText);
  return {
    cidr,
    scope,
    pool: RangeSet.of({ family: cidr.family, start: firstHost(cidr).value, end: lastHost(cidr).value }),
    gateway: firstHost(cidr),
    network: cidr.family === 4 ? networkAddress(cidr) : undefined,
    broadcast: cidr.family === 4 ? broadcastAddress(cidr) : undefined,
  };
}

async function expectError(
  p: Promise<unknown>,
  kind: string,
  http: number,
  cs: number,
  text: RegExp,
): Promise<CloudStackError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CloudStackError, `expected a CloudStackError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.equal(e.httpCode, http);
    assert.equal(e.csErrorCode, cs);
    assert.match(e.message, text);
    return e;
  }
  assert.fail('expected an error');
}

const ip = (s: string) => parseIp(s);

for (const kind of testDbKinds()) {
  test(`${kind}: allocation, reservation, states, capacity and paging on the store`, async (t) => {
    const { store, cleanup } = await createTestStore(kind);
    t.after(cleanup);

    await t.test('lowest, last and random choices match the in-memory oracle', async () => {
      const net = guest('10.1.0.0/24', 'net:1');
      const got: string[] = [];
      for (let i = 0; i < 5; i++) got.push((await allocateAddress(store, { ...net, strategy: 'lowest' })).ip);
      assert.deepEqual(got, ['10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5', '10.1.0.6']);
      const last = await allocateAddress(store, { ...net, strategy: 'last' });
      assert.equal(last.ip, '10.1.0.254');
      // A freed address is the lowest free again.
      assert.equal(await releaseAddress(store.db, { scope: 'net:1', address: ip('10.1.0.3') }), true);
      assert.equal((await allocateAddress(store, { ...net, strategy: 'first' })).ip, '10.1.0.3');
      const random = randomBigIntFrom(seededRng(42));
      const seen = new Set<string>();
      for (let i = 0; i < 40; i++) {
        const a = await allocateAddress(store, { ...net, strategy: 'random', randomBigInt: random });
        assert.ok(!seen.has(a.ip), `random handed out ${a.ip} twice`);
        seen.add(a.ip);
        assert.ok(net.pool.contains(a.address.value) && a.ip !== '10.1.0.1');
      }
      assert.equal(await countUsed(store.db, 'net:1', 4), 46);
    });

    await t.test(
      'random offers several candidates in one statement: the first free one is inserted',
      async () => {
        const row = (address: string, rangeId: number) => ({
          scope: 'net:first',
          family: 4,
          address,
          range_id: rangeId,
          state: 'Allocated' as const,
          created: 1,
          updated: 1,
        });
        const key = (s: string) => valueKey(parseIp(s).value);
        const taken = await insertFirstFreeRow(store.db, [row(key('10.7.0.2'), 1)]);
        assert.equal(taken?.key, key('10.7.0.2'));
        const got = await insertFirstFreeRow(store.db, [
          row(key('10.7.0.2'), 1),
          row(key('10.7.0.3'), 2),
          row(key('10.7.0.4'), 3),
        ]);
        assert.deepEqual({ key: got?.key, rangeId: got?.rangeId }, { key: key('10.7.0.3'), rangeId: 2 });
        const found = await findAddress(store.db, { scope: 'net:first', address: ip('10.7.0.3') });
        assert.equal(found?.rangeId, 2);
        assert.equal(await findAddress(store.db, { scope: 'net:first', address: ip('10.7.0.4') }), undefined);
        // All taken: nothing inserted, no error (and, inside a transaction, the transaction is still usable).
        await transaction(store, async (tx) => {
          assert.equal(
            await insertFirstFreeRow(tx, [row(key('10.7.0.2'), 1), row(key('10.7.0.3'), 1)]),
            null,
          );
          assert.equal((await insertFirstFreeRow(tx, [row(key('10.7.0.9'), 4)]))?.rangeId, 4);
        });
        assert.equal(await countUsed(store.db, 'net:first', 4), 3);
      },
    );

    await t.test('random in a pool of two ranges records the range of the address it got', async () => {
      const net = guest('10.8.0.0/24', 'net:ranges');
      const rangeId = (v: bigint) => (v < parseIp('10.8.0.128').value ? 11 : 12);
      const random = randomBigIntFrom(seededRng(7));
      for (let i = 0; i < 120; i++) {
        const req = { ...net, strategy: 'random' as const, randomBigInt: random, rangeId };
        const a =
          i % 2 === 0
            ? await allocateAddress(store, req)
            : await transaction(store, (tx) => allocateAddressTx(tx, req));
        const stored = await findAddress(store.db, { id: a.id });
        assert.equal(stored?.rangeId, rangeId(a.address.value), `${a.ip} recorded in the wrong range`);
        assert.equal(a.rangeId, stored?.rangeId);
      }
      assert.equal(await countUsed(store.db, 'net:ranges', 4), 120);
    });

    await t.test('the same sequence as MemoryAllocator for lowest with gaps', async () => {
      const net = guest('10.2.0.0/27', 'net:2');
      const pool = net.pool.subtract([{ family: 4, start: net.gateway!.value, end: net.gateway!.value }]);
      const oracle = new MemoryAllocator(pool, 'lowest', seededRng(3));
      const rng = seededRng(9);
      const mine: bigint[] = [];
      for (let i = 0; i < 60; i++) {
        if (mine.length > 0 && rng() < 0.3) {
          const [v] = mine.splice(Math.floor(rng() * mine.length), 1) as [bigint];
          oracle.release(v);
          await releaseAddress(store.db, { scope: 'net:2', address: { family: 4, value: v } });
          continue;
        }
        let want: bigint | undefined;
        try {
          want = oracle.allocate();
        } catch {
          want = undefined;
        }
        if (want === undefined) {
          await expectError(allocateAddress(store, net), 'InsufficientAddressCapacity', 533, 4320, /net:2/);
        } else {
          const a = await allocateAddress(store, net);
          assert.equal(a.address.value, want);
          mine.push(want);
        }
      }
    });

    await t.test('requested addresses are validated and refused when taken', async () => {
      const net = guest('10.3.0.0/24', 'net:3');
      const req = { ...net, requestedParam: 'ipaddress', exclude: [ip('10.3.0.200')] };
      const a = await allocateAddress(store, {
        ...req,
        requested: ip('10.3.0.77'),
        owner: { kind: 'nic', id: 5 },
      });
      assert.equal(a.ip, '10.3.0.77');
      assert.equal(a.ownerKind, 'nic');
      assert.equal(a.ownerId, 5);
      await expectError(
        allocateAddress(store, { ...req, requested: ip('10.3.0.77') }),
        'InvalidParameterValue',
        431,
        4350,
        /ipaddress: '10\.3\.0\.77'.*already in use/,
      );
      await expectError(
        allocateAddress(store, { ...req, requested: ip('10.3.0.1') }),
        'InvalidParameterValue',
        431,
        4350,
        /ipaddress: '10\.3\.0\.1'.*gateway/,
      );
      await expectError(
        allocateAddress(store, { ...req, requested: ip('10.3.0.0') }),
        'InvalidParameterValue',
        431,
        4350,
        /network address/,
      );
      await expectError(
        allocateAddress(store, { ...req, requested: ip('10.3.0.255') }),
        'InvalidParameterValue',
        431,
        4350,
        /broadcast/,
      );
      await expectError(
        allocateAddress(store, { ...req, requested: ip('10.3.1.5'), requestedParam: 'ip' }),
        'InvalidParameterValue',
        431,
        4350,
        /parameter ip: '10\.3\.1\.5'.*not in the address range/,
      );
      await expectError(
        allocateAddress(store, { ...req, requested: ip('10.3.0.200') }),
        'InvalidParameterValue',
        431,
        4350,
        /excluded/,
      );
      await expectError(
        allocateAddress(store, { ...req, requested: ip('fd00::5') }),
        'InvalidParameterValue',
        431,
        4350,
        /IPv4/,
      );
      // Excluded and gateway addresses are never chosen either.
      const small = guest('10.3.9.0/29', 'net:3b');
      const got = [];
      for (let i = 0; i < 4; i++) {
        got.push((await allocateAddress(store, { ...small, exclude: [ip('10.3.9.3')] })).ip);
      }
      assert.deepEqual(got, ['10.3.9.2', '10.3.9.4', '10.3.9.5', '10.3.9.6']);
    });

    await t.test('an exhausted pool is 533/4320 with the caller’s message and uuidList', async () => {
      const net = guest('10.4.0.0/29', 'net:4');
      for (let i = 0; i < 5; i++) await allocateAddress(store, { ...net, strategy: 'random' });
      for (const strategy of ['lowest', 'last', 'random'] as const) {
        const e = await expectError(
          allocateAddress(store, {
            ...net,
            strategy,
            exhaustedMessage: 'network net4 has no free address',
            uuidList: ['net4-uuid'],
          }),
          'InsufficientAddressCapacity',
          533,
          4320,
          /network net4 has no free address/,
        );
        assert.deepEqual(e.uuidList, ['net4-uuid']);
      }
      await expectError(
        allocateAddress(store, { scope: 'net:4e', pool: RangeSet.empty(4) }),
        'InsufficientAddressCapacity',
        533,
        4320,
        /net:4e/,
      );
    });

    await t.test('inside a caller’s transaction: rolled back with it, visible after commit', async () => {
      const net = guest('10.5.0.0/24', 'net:5');
      await assert.rejects(
        transaction(store, async (tx) => {
          const a = await allocateAddressTx(tx, net);
          assert.equal(a.ip, '10.5.0.2');
          const b = await allocateAddressTx(tx, net);
          assert.equal(b.ip, '10.5.0.3');
          throw new CloudStackError('InvalidParameterValue', 'the caller failed later');
        }),
        /the caller failed later/,
      );
      assert.equal(await countUsed(store.db, 'net:5', 4), 0);
      const [a, b] = await transaction(store, async (tx) => [
        await allocateAddressTx(tx, net),
        await allocateAddressTx(tx, { ...net, requested: ip('10.5.0.9') }),
      ]);
      assert.equal(a?.ip, '10.5.0.2');
      assert.equal(b?.ip, '10.5.0.9');
      assert.equal((await findAddress(store.db, { id: a!.id }))?.ip, '10.5.0.2');
      // A taken requested address inside a transaction does not poison it (PostgreSQL would abort it).
      const c = await transaction(store, async (tx) => {
        await assert.rejects(allocateAddressTx(tx, { ...net, requested: ip('10.5.0.9') }), /already in use/);
        return allocateAddressTx(tx, net);
      });
      assert.equal(c.ip, '10.5.0.3');
    });

    await t.test('reserve, mark states along the life cycle, release', async () => {
      const net = guest('10.6.0.0/24', 'pub:6');
      const r = await reserveAddress(store, { ...net, requested: ip('10.6.0.50'), accountId: 7 });
      assert.equal(r.state, 'Reserved');
      assert.equal(r.accountId, 7);
      // Another account cannot take it; the reserving account can.
      await expectError(
        allocateAddress(store, { ...net, requested: ip('10.6.0.50'), claimReservedBy: 8, accountId: 8 }),
        'InvalidParameterValue',
        431,
        4350,
        /already in use/,
      );
      const claimed = await allocateAddress(store, {
        ...net,
        requested: ip('10.6.0.50'),
        claimReservedBy: 7,
        state: 'Allocating',
        owner: { kind: 'publicip', id: 70 },
      });
      assert.equal(claimed.id, r.id);
      assert.equal(claimed.state, 'Allocating');
      assert.equal(claimed.ownerKind, 'publicip');

      const at = { scope: 'pub:6', address: ip('10.6.0.50') };
      assert.equal((await markAddressState(store.db, at, 'Allocated'))?.state, 'Allocated');
      await expectError(
        markAddressState(store.db, at, 'Reserved', { param: 'id' }),
        'InvalidParameterValue',
        431,
        4350,
        /parameter id: '10\.6\.0\.50'.*Allocated cannot become Reserved/,
      );
      await expectError(
        markAddressState(store.db, at, 'Allocated'),
        'InvalidParameterValue',
        431,
        4350,
        /Allocated cannot become Allocated/,
      );
      assert.equal((await markAddressState(store.db, at, 'Releasing'))?.state, 'Releasing');
      // The second half of a two-step release only frees what is Releasing.
      assert.equal(await releaseAddress(store.db, at, ['Allocated']), false);
      assert.equal(await markAddressState(store.db, at, 'Free'), undefined);
      assert.equal(await findAddress(store.db, at), undefined);
      await expectError(
        markAddressState(store.db, at, 'Allocated'),
        'InvalidParameterValue',
        431,
        4350,
        /is free/,
      );
      await expectError(
        markAddressState(store.db, at, 'Free'),
        'InvalidParameterValue',
        431,
        4350,
        /already free/,
      );
      // A free address is simply absent: it can be allocated again at once.
      assert.equal((await allocateAddress(store, { ...net, requested: ip('10.6.0.50') })).state, 'Allocated');
      // Direct release from Allocated, by id.
      const d = await allocateAddress(store, { ...net, state: 'Allocating' });
      await expectError(
        markAddressState(store.db, { id: d.id }, 'Releasing', { from: ['Allocated'] }),
        'InvalidParameterValue',
        431,
        4350,
        /only Allocated may become Releasing/,
      );
      assert.equal(await releaseAddress(store.db, { id: d.id }), true);
      assert.equal(await releaseAddress(store.db, { id: d.id }), false);
      const rs = await listAddresses(store.db, { scope: 'pub:6', state: 'Reserved' });
      assert.equal(rs.count, 0);
    });

    await t.test('capacity per pool and per range, and paging in address order', async () => {
      const net = guest('10.7.0.0/24', 'net:7');
      const rng = randomBigIntFrom(seededRng(5));
      const mine = [];
      for (let i = 0; i < 25; i++)
        mine.push(await allocateAddress(store, { ...net, strategy: 'random', randomBigInt: rng }));
      const pool = net.pool.subtract([{ family: 4, start: net.gateway!.value, end: net.gateway!.value }]);
      assert.deepEqual(await poolCapacity(store.db, 'net:7', pool), { total: 253n, used: 25, free: 228n });
      const lo = { family: 4 as const, start: ip('10.7.0.0').value, end: ip('10.7.0.127').value };
      const hi = { family: 4 as const, start: ip('10.7.0.128').value, end: ip('10.7.0.255').value };
      const caps = await rangesCapacity(store.db, 'net:7', [
        { id: 1, range: lo },
        { id: 2, range: hi },
      ]);
      const inLo = mine.filter((a) => a.address.value <= lo.end).length;
      assert.deepEqual(
        caps.map((c) => [c.id, c.used, c.total, c.free]),
        [
          [1, inLo, 128n, 128n - BigInt(inLo)],
          [2, 25 - inLo, 128n, 128n - BigInt(25 - inLo)],
        ],
      );
      const sorted = mine.map((a) => a.address.value).sort((a, b) => (a < b ? -1 : 1));
      const page3 = await listAddresses(store.db, { scope: 'net:7', page: 3, pageSize: 10 });
      assert.equal(page3.count, 25);
      assert.deepEqual(
        page3.items.map((a) => a.address.value),
        sorted.slice(20),
      );
      const within = await listAddresses(store.db, {
        scope: 'net:7',
        within: RangeSet.of(hi),
        pageSize: 100,
      });
      assert.equal(within.count, 25 - inLo);
      await expectError(listAddresses(store.db, { page: 0 }), 'InvalidParameterValue', 431, 4350, /page/);
    });

    await t.test('IPv6 /64 and IPv4 /8: allocate, request, count without enumerating', async () => {
      const v6 = guest('fd12:3456:789a:1::/64', 'net:64');
      const a = await allocateAddress(store, v6);
      assert.equal(a.ip, 'fd12:3456:789a:1::2');
      const z = await allocateAddress(store, { ...v6, strategy: 'last' });
      assert.equal(z.ip, 'fd12:3456:789a:1:ffff:ffff:ffff:ffff');
      const rng = randomBigIntFrom(seededRng(64));
      for (let i = 0; i < 20; i++) {
        const r = await allocateAddress(store, { ...v6, strategy: 'random', randomBigInt: rng });
        assert.equal(r.address.family, 6);
        assert.ok(v6.pool.contains(r.address.value));
      }
      const req = await allocateAddress(store, { ...v6, requested: ip('fd12:3456:789a:1::abcd') });
      assert.equal(req.ip, 'fd12:3456:789a:1::abcd');
      await expectError(
        allocateAddress(store, { ...v6, requested: ip('fd12:3456:789a:2::1') }),
        'InvalidParameterValue',
        431,
        4350,
        /not in the address range/,
      );
      const cap6 = await poolCapacity(store.db, 'net:64', v6.pool);
      assert.equal(cap6.used, 23);
      assert.equal(cap6.total, (1n << 64n) - 1n);
      assert.equal(cap6.free, (1n << 64n) - 24n);

      const v8 = guest('10.0.0.0/8', 'net:8');
      assert.equal((await allocateAddress(store, v8)).ip, '10.0.0.2');
      assert.equal((await allocateAddress(store, { ...v8, strategy: 'last' })).ip, '10.255.255.254');
      for (let i = 0; i < 20; i++)
        await allocateAddress(store, { ...v8, strategy: 'random', randomBigInt: rng });
      const cap8 = await poolCapacity(store.db, 'net:8', v8.pool);
      assert.equal(cap8.used, 22);
      assert.equal(cap8.total, (1n << 24n) - 2n);
      // Same keys, other family: IPv4 10.0.0.2 and IPv6 ::a00:2 do not collide.
      const mapped = await allocateAddress(store, {
        scope: 'net:8',
        pool: RangeSet.of({ family: 6, start: ip('10.0.0.2').value, end: ip('10.0.0.2').value }),
      });
      assert.equal(mapped.ip, '::a00:2');
      assert.equal(formatIp(mapped.address), '::a00:2');
    });

    await t.test(
      'concurrent callers in one process: each its own outcome (SQLite: one group commit)',
      async () => {
        const net = guest('10.8.0.0/24', 'net:8c');
        const wanted = ip('10.8.0.100');
        const calls = [
          ...Array.from({ length: 30 }, () => allocateAddress(store, { ...net, strategy: 'lowest' })),
          ...Array.from({ length: 10 }, () => allocateAddress(store, { ...net, requested: wanted })),
          allocateAddress(store, { ...net, requested: ip('10.9.0.1') }),
        ];
        const settled = await Promise.allSettled(calls);
        const won = settled.filter((r) => r.status === 'fulfilled').map((r) => r.value);
        const refused = settled
          .filter((r) => r.status === 'rejected')
          .map((r) => r.reason as CloudStackError);
        assert.equal(won.length, 31);
        assert.equal(refused.length, 10);
        for (const e of refused) assert.equal(e.httpCode, 431, e.message);
        assert.equal(new Set(won.map((a) => a.ip)).size, 31);
        assert.equal(won.filter((a) => a.ip === '10.8.0.100').length, 1);
        assert.equal(await countUsed(store.db, 'net:8c', 4), 31);
      },
    );

    await t.test('MAC sequence per zone never repeats', async () => {
      const macs = new Set<string>();
      for (let i = 0; i < 5; i++) macs.add(await nextMacAddress(store.db, 1));
      await transaction(store, async (tx) => {
        macs.add(await nextMacAddress(tx, 1));
        macs.add(await nextMacAddress(tx, 2));
      });
      assert.equal(macs.size, 7);
      assert.ok(macs.has('0e:01:00:00:00:01'));
      assert.ok(macs.has('0e:02:00:00:00:01'));
    });

    await t.test('driver failures surface as InternalError, never raw', async () => {
      const other = await openStore(store.url, { poolSize: 1 });
      // A Kysely that never ran a query ignores destroy() (and would keep SQLite's file open): use it first.
      await countUsed(other.db, 'net:9', 4);
      await other.close();
      const closed: Store = other;
      const net = guest('10.9.0.0/24', 'net:9');
      await expectError(
        allocateAddress(closed, net),
        'InternalError',
        530,
        4250,
        /allocating an address|address/,
      );
      await expectError(countUsed(closed.db, 'net:9', 4), 'InternalError', 530, 4250, /counting/);
    });
  });
}
