/**
 * A public IP's tags go with its row, on every path that deletes one, and createTags cannot slip a tag in under a
 * release committing beside it: the association job's answer renders the address it just confirmed without
 * reading tags (tags/service.ts, untaggedIn), which is right only while no tag outlives its address.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { rowLockWaits } from '../store/testing/lock-waits.js';
import type { Executor, Store, Tx } from '../store/db.js';
import { transaction } from '../store/db.js';
import { bootstrapAdmin } from '../accounts/bootstrap.js';
import { makeNetCtx } from '../infrastructure/net-context.js';
import { adminCaller, insertPublicIp, insertZoneAndNetwork } from '../routers/testing/fixtures.js';
import { eventually } from '../netns/eventually.js';
import { CloudStackError } from '../errors/catalogue.js';
import { createTags, tagsFor, untaggedIn } from '../tags/service.js';
import { abandonAllocating } from './associate.js';
import { releaseIpAddress } from './reserve.js';
import { releasePublicIp } from './service.js';
import { reclaimStaleAllocating } from './reclaim.js';
import type { Caller } from '../api/command.js';
import { netDb } from '../networks/tables.js';

let n = 10;
const nextAddress = () => `203.0.113.${n++}`;

/** The admin as caller and a public IP maker: its addresses belong to the admin's account. */
async function setUp(
  store: Store,
): Promise<{ caller: Caller; ip(state?: 'Allocated' | 'Allocating'): Promise<number> }> {
  await bootstrapAdmin(store, {});
  const caller = await adminCaller(store);
  const { zoneId } = await insertZoneAndNetwork(store.db);
  const ip = async (state: 'Allocated' | 'Allocating' = 'Allocated') => {
    const id = await insertPublicIp(store.db, zoneId, {
      address: nextAddress(),
      gateway: '203.0.113.1',
      vlan: '40',
      state,
    });
    await store.db
      .updateTable('ip_allocations')
      .set({ account_id: caller.accountId, domain_id: caller.domainId })
      .where('id', '=', id)
      .execute();
    return id;
  };
  return { caller, ip };
}

const ipRow = (ex: Executor, id: number) =>
  netDb(ex).selectFrom('ip_allocations').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

/** A tag put straight on the row (what createTags would have left on it), to see whether a path removes it. */
async function tagRow(ex: Executor, id: number): Promise<void> {
  const r = await ipRow(ex, id);
  await ex
    .insertInto('resource_tags')
    .values({
      uuid: randomUUID(),
      key: 'env',
      value: 'prod',
      resource_type: 'PublicIpAddress',
      resource_id: id,
      resource_uuid: r.uuid ?? randomUUID(),
      account_id: r.account_id,
      domain_id: Number(r.domain_id),
      customer: null,
      created: Date.now(),
    })
    .execute();
}

const tagsOf = async (ex: Executor, id: number) =>
  Number(
    (
      await ex
        .selectFrom('resource_tags')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('resource_type', '=', 'PublicIpAddress')
        .where('resource_id', '=', id)
        .executeTakeFirstOrThrow()
    ).n,
  );

for (const kind of testDbKinds()) {
  test(`every path that deletes a public IP deletes its tags (${kind})`, async () => {
    const { store, cleanup } = await createTestStore(kind, 4);
    try {
      const { caller, ip } = await setUp(store);
      const ctx = (tx: Tx) => makeNetCtx(tx, caller, Date.now());

      // disassociateIpAddress and network/VPC deletion: releasePublicIp.
      const released = await ip();
      await tagRow(store.db, released);
      const row = await ipRow(store.db, released);
      await transaction(store, (tx) => releasePublicIp(ctx(tx), row as never));

      // A failed association job gives its address back: abandonAllocating.
      const abandoned = await ip('Allocating');
      await tagRow(store.db, abandoned);
      const uuid = String(((await ipRow(store.db, abandoned)) as { uuid: string }).uuid);
      await transaction(store, (tx) => abandonAllocating(ctx(tx), uuid));

      // releaseIpAddress: a Reserved address.
      const reserved = await ip();
      await store.db
        .updateTable('ip_allocations')
        .set({ state: 'Reserved' })
        .where('id', '=', reserved)
        .execute();
      await tagRow(store.db, reserved);
      const ruuid = String(((await ipRow(store.db, reserved)) as { uuid: string }).uuid);
      await transaction(store, (tx) => releaseIpAddress(ctx(tx), { id: ruuid }));

      // The scavenger: Allocating for long with no job.
      const stale = await ip('Allocating');
      await store.db.updateTable('ip_allocations').set({ updated: 1 }).where('id', '=', stale).execute();
      await tagRow(store.db, stale);
      assert.equal(await reclaimStaleAllocating(store, 60_000), 1);

      for (const id of [released, abandoned, reserved, stale]) {
        assert.equal(
          (await store.db.selectFrom('ip_allocations').select('id').where('id', '=', id).execute()).length,
          0,
          `row ${id} deleted`,
        );
        assert.equal(await tagsOf(store.db, id), 0, `row ${id}'s tags deleted with it`);
      }
    } finally {
      await cleanup();
    }
  });

  test(`tagsFor reads no tags for a resource its transaction knows untagged, and only there (${kind})`, async () => {
    const { store, cleanup } = await createTestStore(kind, 4);
    try {
      const { caller, ip } = await setUp(store);
      const id = await ip();
      await transaction(store, async (tx) => {
        untaggedIn(tx, 'PublicIpAddress', id);
        const before = store.statements.count;
        assert.deepEqual(await tagsFor(tx, 'PublicIpAddress', [id]), new Map([[id, []]]));
        assert.equal(store.statements.count, before, 'no statement for a resource known untagged');
        // createTags in the same transaction makes it tagged again.
        const uuid = String((await ipRow(tx, id)).uuid);
        await createTags(
          tx,
          caller,
          { resourcetype: 'PublicIpAddress', resourceids: [uuid], tags: [{ key: 'k', value: 'v' }] },
          Date.now(),
        );
        assert.equal((await tagsFor(tx, 'PublicIpAddress', [id])).get(id)?.length, 1);
      });
      // Another transaction knows nothing of the first one's marks.
      assert.equal((await tagsFor(store.db, 'PublicIpAddress', [id])).get(id)?.length, 1);
    } finally {
      await cleanup();
    }
  });

  if (kind === 'sqlite') continue; // one writer at a time: nothing runs beside a release

  test(`createTags beside a release leaves no tag on the released address (${kind})`, async () => {
    const { store, cleanup } = await createTestStore(kind, 4);
    try {
      const { caller, ip } = await setUp(store);
      const id = await ip();
      const row = await ipRow(store.db, id);
      const uuid = String(row.uuid);
      let tagging: Promise<unknown> | undefined;
      let settled = false;
      await transaction(store, async (tx) => {
        // The release has removed the tags (none yet) and deleted the row, not yet committed ...
        await releasePublicIp(makeNetCtx(tx, caller, Date.now()), row as never);
        // ... when createTags runs beside it, on a connection of its own.
        tagging = transaction(store, (t2) =>
          createTags(
            t2,
            caller,
            { resourcetype: 'PublicIpAddress', resourceids: [uuid], tags: [{ key: 'env', value: 'prod' }] },
            Date.now(),
          ),
        ).finally(() => {
          settled = true;
        });
        tagging.catch(() => undefined);
        // It either finished (read the address as Allocated, inserted its tag) or waits for the release's lock.
        await eventually(
          async () => {
            if (!settled && (await rowLockWaits(kind, store)) === 0)
              throw new Error('createTags neither done nor waiting');
          },
          { timeoutMs: 10_000, what: 'createTags beside the release' },
        );
      });
      const outcome = await tagging!.then(
        () => 'tagged',
        (e: unknown) => e,
      );
      assert.ok(
        outcome instanceof CloudStackError && outcome.kind === 'InvalidParameterValue',
        `createTags refused: the address is gone (got ${String(outcome)})`,
      );
      assert.equal(await tagsOf(store.db, id), 0, 'no tag left on the released address');
    } finally {
      await cleanup();
    }
  });
}
