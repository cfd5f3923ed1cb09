/**
 * listPublicIpAddresses pages: a whole zone's page is walked from the nearer end of the index (list.ts
 * wholeZonePage), a filtered one from the start. Every page, from either end, is the same rows in the same order
 * as the whole list sorted by (scope, address, id), and the count is the zone's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { bootstrapAdmin } from '../accounts/bootstrap.js';
import { makeNetCtx } from '../infrastructure/net-context.js';
import { adminCaller, insertZoneAndNetwork } from '../routers/testing/fixtures.js';
import { valueKey } from '../ipam/address.js';
import { listPublicIpAddresses } from './list.js';

for (const kind of testDbKinds()) {
  test(`every page of a zone's public IPs, read from either end, is its slice of the zone's order (${kind})`, async () => {
    const { store, cleanup } = await createTestStore(kind, 2);
    try {
      await bootstrapAdmin(store, {});
      const zone = (await insertZoneAndNetwork(store.db)).zoneId;
      const other = (await insertZoneAndNetwork(store.db)).zoneId;
      // 47 addresses in two scopes, inserted out of order (ids not in address order), some Allocating; a guest
      // NIC and another zone's public IPs beside them, which no page may show.
      const values = Array.from({ length: 47 }, (_, i) => (i * 29) % 47);
      const rows = values.map((v, i) => ({
        scope: i % 3 === 0 ? `acct:${zone}` : `pub:${zone}`,
        family: 4,
        address: valueKey(BigInt(0xc6336400 + v)),
        state: i % 5 === 0 ? ('Allocating' as const) : ('Allocated' as const),
        owner_kind: 'publicip' as const,
        zone_id: zone,
        uuid: randomUUID(),
        created: 1,
        updated: 1,
      }));
      const noise = [
        { ...rows[0]!, uuid: randomUUID(), owner_kind: 'nic' as const, scope: `guest:${zone}` },
        { ...rows[1]!, uuid: randomUUID(), zone_id: other, scope: `pub:${other}` },
      ];
      for (const r of [...rows.slice(0, 20), ...noise, ...rows.slice(20)])
        await store.db.insertInto('ip_allocations').values(r).execute();
      const inOrder = (
        await store.db
          .selectFrom('ip_allocations')
          .select(['id', 'scope', 'address'])
          .where('owner_kind', '=', 'publicip')
          .where('zone_id', '=', zone)
          .execute()
      )
        .sort((a, b) =>
          a.scope !== b.scope
            ? a.scope < b.scope
              ? -1
              : 1
            : a.address !== b.address
              ? a.address < b.address
                ? -1
                : 1
              : Number(a.id) - Number(b.id),
        )
        .map((r) => Number(r.id));
      assert.equal(inOrder.length, 47);

      const caller = await adminCaller(store);
      const zoneid = (
        await store.db.selectFrom('zones').select('uuid').where('id', '=', zone).executeTakeFirstOrThrow()
      ).uuid;
      const list = (p: Record<string, unknown>) =>
        listPublicIpAddresses(makeNetCtx(store.db as never, caller, Date.now()), {
          zoneid,
          listall: true,
          ...p,
        });
      for (const pagesize of [1, 5, 10, 46, 47, 50]) {
        const pages = Math.ceil(47 / pagesize) + 1; // and one past the end
        for (let page = 1; page <= pages; page++) {
          const r = await list({ page, pagesize });
          const ids = r.items.map((x) => ('row' in x ? Number(x.row.id) : -1));
          const start = (page - 1) * pagesize;
          assert.deepEqual(ids, inOrder.slice(start, start + pagesize), `page ${page} of ${pagesize}`);
          assert.equal(r.count, 47, `count, page ${page} of ${pagesize}`);
        }
      }
      // A filtered list (not the whole zone) pages from the start, in the same order.
      const allocated = (
        await store.db
          .selectFrom('ip_allocations')
          .select('id')
          .where('owner_kind', '=', 'publicip')
          .where('zone_id', '=', zone)
          .where('state', '=', 'Allocated')
          .execute()
      ).map((r) => Number(r.id));
      const allocatedInOrder = inOrder.filter((id) => allocated.includes(id));
      const r = await list({ state: 'Allocated', page: 4, pagesize: 9 });
      assert.deepEqual(
        r.items.map((x) => ('row' in x ? Number(x.row.id) : -1)),
        allocatedInOrder.slice(27, 36),
      );
      assert.equal(r.count, allocatedInOrder.length);
    } finally {
      await cleanup();
    }
  });
}
