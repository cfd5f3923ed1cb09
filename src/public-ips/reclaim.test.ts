import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { reclaimStaleAllocating } from './reclaim.js';

for (const kind of testDbKinds()) {
  test(`stale Allocating public IPs without a pending job are reclaimed (${kind})`, async () => {
    const { store, cleanup } = await createTestStore(kind, 2);
    try {
      const row = (uuid: string, state: 'Allocating' | 'Allocated', address: string, updated: number) => ({
        scope: 'pub:1',
        family: 4,
        address,
        state,
        owner_kind: 'publicip',
        uuid,
        created: updated,
        updated,
      });
      const old = 1_000;
      await store.db
        .insertInto('ip_allocations')
        .values([
          row('u-stale', 'Allocating', '0'.repeat(31) + '1', old),
          row('u-queued', 'Allocating', '0'.repeat(31) + '2', old),
          row('u-fresh', 'Allocating', '0'.repeat(31) + '3', 1_000_000),
          row('u-done', 'Allocated', '0'.repeat(31) + '4', old),
        ] as never)
        .execute();
      await store.db
        .insertInto('async_jobs')
        .values({
          uuid: 'job-1',
          command: 'associateIpAddress',
          params: '{}',
          user_id: 1,
          account_id: 1,
          domain_id: 1,
          status: 0,
          result_code: 0,
          result: null,
          instance_type: 'IpAddress',
          instance_id: 'u-queued',
          lease_owner: null,
          lease_until: null,
          attempts: 0,
          created: old,
          completed: null,
        })
        .execute();
      assert.equal(await reclaimStaleAllocating(store, 60_000, 1_000_000), 1);
      const left = (await store.db.selectFrom('ip_allocations').select('address').execute()).length;
      assert.equal(left, 3);
    } finally {
      await cleanup();
    }
  });
}
