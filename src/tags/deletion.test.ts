/**
 * Every taggable resource's tags go with it, and createTags cannot race a deletion into leaving a tag on a
 * resource that is gone, whichever of the two comes first (tags/service.ts lockTagged): each type through its own
 * real deletion path (VM expunge, deleteNetwork, deleteVPC, a rule's removal, deleteNetworkACL).
 * Public IPs have their own test (public-ips/tags.test.ts). And a rule's tags follow its customid, a createTags
 * beside it too (tagsFollowUuid).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { rowLockWaits } from '../store/testing/lock-waits.js';
import type { DbKind } from '../store/db.js';
import type { Executor, Store, Tx } from '../store/db.js';
import { transaction } from '../store/db.js';
import { bootstrapAdmin } from '../accounts/bootstrap.js';
import { makeNetCtx } from '../infrastructure/net-context.js';
import type { NetCtx } from '../infrastructure/context.js';
import {
  adminCaller,
  insertNetwork,
  insertVmWithNic,
  insertVpc,
  insertZone,
} from '../routers/testing/fixtures.js';
import { eventually } from '../netns/eventually.js';
import { CloudStackError } from '../errors/catalogue.js';
import { createTags, listTags } from './service.js';
import type { TaggableType } from './service.js';
import { expungeVmRows } from '../vms/service.js';
import { deleteNetwork } from '../networks/service.js';
import { deleteVpc } from '../networks/vpcs.js';
import { removeRules, ruleByUuid } from '../rules/repository.js';
import { deleteAclItem } from '../network-acls/service.js';
import { updateRule } from '../rules/service.js';
import { updateLoadBalancerRule } from '../lb/service.js';
import { lbDb } from '../lb/repository.js';
import { aclDb } from '../network-acls/tables.js';
import type { Caller } from '../api/command.js';

/** A resource to tag: its uuid and id, and its deletion by the path the API takes. */
interface Made {
  id: number;
  uuid: string;
  remove(ctx: NetCtx): Promise<void>;
}

type Maker = (store: Store, caller: Caller, zoneId: number) => Promise<Made>;

let vnet = 200;
let octet = 10;

const owned = async (ex: Executor, table: 'vms' | 'networks' | 'vpcs', id: number, caller: Caller) => {
  await ex
    .updateTable(table)
    .set({ account_id: caller.accountId, domain_id: caller.domainId })
    .where('id', '=', id)
    .execute();
  return String(
    (await ex.selectFrom(table).select('uuid').where('id', '=', id).executeTakeFirstOrThrow()).uuid,
  );
};

const network = async (store: Store, caller: Caller, zoneId: number) => {
  const o = octet++;
  const id = await insertNetwork(store.db, zoneId, {
    cidr: `10.50.${o}.0/24`,
    gateway: `10.50.${o}.1`,
    vnet: vnet++,
  });
  return { id, uuid: await owned(store.db, 'networks', id, caller) };
};

/** A rule of `purpose` on a network of its own (removeRules: deleteRule and every cleanup take it). */
const rule =
  (purpose: 'Firewall' | 'PortForwarding' | 'LoadBalancing'): Maker =>
  async (store, caller, zoneId) => {
    const net = await network(store, caller, zoneId);
    const uuid = randomUUID();
    await store.db
      .insertInto('firewall_rules')
      .values({
        uuid,
        purpose,
        traffic_type: 'Ingress',
        ip_allocation_id: null,
        network_id: net.id,
        account_id: caller.accountId,
        domain_id: caller.domainId,
        protocol: 'tcp',
        start_port: 22,
        end_port: 22,
        icmp_type: null,
        icmp_code: null,
        state: 'Add',
        related_rule_id: null,
        dest_ip: null,
        private_start_port: null,
        private_end_port: null,
        vm_id: null,
        created: Date.now(),
        removed: null,
      })
      .execute();
    const row = (await ruleByUuid(store.db, uuid))!;
    if (purpose === 'LoadBalancing')
      await lbDb(store.db)
        .insertInto('load_balancing_rules')
        .values({
          rule_id: Number(row.id),
          name: `lb${row.id}`,
          description: null,
          algorithm: 'roundrobin',
          private_port: 22,
          lb_protocol: 'tcp',
          source_ip: null,
          lb_vm_id: null,
        })
        .execute();
    return { id: Number(row.id), uuid, remove: async (ctx) => removeRules(ctx, [row]) };
  };

const makers: Record<TaggableType, Maker | undefined> = {
  UserVm: async (store, caller, zoneId) => {
    const net = await network(store, caller, zoneId);
    const id = await insertVmWithNic(store.db, zoneId, net.id, {
      name: `vm${octet}`,
      ip: `10.50.${octet - 1}.10`,
      mac: `02:00:00:00:01:${(octet % 100).toString().padStart(2, '0')}`,
    });
    const uuid = await owned(store.db, 'vms', id, caller);
    return {
      id,
      uuid,
      remove: async (ctx) => {
        const vm = await ctx.tx.selectFrom('vms').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        await expungeVmRows(ctx, vm);
      },
    };
  },
  Network: async (store, caller, zoneId) => {
    const { id, uuid } = await network(store, caller, zoneId);
    return { id, uuid, remove: (ctx) => deleteNetwork(ctx, { id: uuid }) };
  },
  Vpc: async (store, caller, zoneId) => {
    const id = await insertVpc(store.db, zoneId, `10.${60 + octet++}.0.0/16`);
    const uuid = await owned(store.db, 'vpcs', id, caller);
    return { id, uuid, remove: (ctx) => deleteVpc(ctx, { id: uuid }) };
  },
  PublicIpAddress: undefined, // public-ips/tags.test.ts
  FirewallRule: rule('Firewall'),
  PortForwardingRule: rule('PortForwarding'),
  LoadBalancer: rule('LoadBalancing'),
  NetworkACL: async (store, caller, zoneId) => {
    const vpcId = await insertVpc(store.db, zoneId, `10.${60 + octet++}.0.0/16`);
    await owned(store.db, 'vpcs', vpcId, caller);
    const db = aclDb(store.db);
    const listUuid = randomUUID();
    await db
      .insertInto('network_acl_lists')
      .values({
        uuid: listUuid,
        name: 'l',
        description: null,
        vpc_id: vpcId,
        created: Date.now(),
        removed: null,
      })
      .execute();
    const list = await db
      .selectFrom('network_acl_lists')
      .select('id')
      .where('uuid', '=', listUuid)
      .executeTakeFirstOrThrow();
    const uuid = randomUUID();
    await db
      .insertInto('network_acl_items')
      .values({
        uuid,
        acl_id: list.id,
        number: 1,
        action: 'Allow',
        traffic_type: 'Ingress',
        protocol: 'tcp',
        start_port: 22,
        end_port: 22,
        icmp_type: null,
        icmp_code: null,
        cidrs: '0.0.0.0/0',
        reason: null,
        state: 'Active',
        created: Date.now(),
      })
      .execute();
    const item = await db
      .selectFrom('network_acl_items')
      .select('id')
      .where('uuid', '=', uuid)
      .executeTakeFirstOrThrow();
    return { id: Number(item.id), uuid, remove: (ctx) => deleteAclItem(ctx, { id: uuid }) };
  },
};

const types = (Object.keys(makers) as TaggableType[]).filter((t) => makers[t]);

async function setUp(store: Store): Promise<{ caller: Caller; zoneId: number }> {
  await bootstrapAdmin(store, {});
  const caller = await adminCaller(store);
  const zoneId = await insertZone(store.db, 'tagzone');
  return { caller, zoneId };
}

const tag = (tx: Tx, caller: Caller, type: TaggableType, uuid: string) =>
  createTags(
    tx,
    caller,
    { resourcetype: type, resourceids: [uuid], tags: [{ key: 'env', value: 'prod' }] },
    Date.now(),
  );

const tagsOf = async (ex: Executor, type: TaggableType, id: number) =>
  Number(
    (
      await ex
        .selectFrom('resource_tags')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('resource_type', '=', type)
        .where('resource_id', '=', id)
        .executeTakeFirstOrThrow()
    ).n,
  );

/**
 * `first` runs in a transaction; midway (its work done, not committed) `second` starts beside it on a connection
 * of its own. Once `second` has finished or waits for a lock, `first` commits. `second`'s outcome: 'done' or its
 * error.
 */
async function beside(
  kind: DbKind,
  store: Store,
  first: (tx: Tx) => Promise<void>,
  second: (tx: Tx) => Promise<void>,
): Promise<unknown> {
  let running: Promise<unknown> | undefined;
  let settled = false;
  await transaction(store, async (tx) => {
    await first(tx);
    running = transaction(store, second).then(
      () => 'done',
      (e: unknown) => e,
    );
    void running.finally(() => {
      settled = true;
    });
    await eventually(
      async () => {
        if (!settled && (await rowLockWaits(kind, store)) === 0) throw new Error('neither done nor waiting');
      },
      { timeoutMs: 10_000, what: 'the second transaction beside the first' },
    );
  });
  return running;
}

/** The resource ids listTags shows for `resourceid`. */
const tagIds = async (store: Store, caller: Caller, resourceid: string) =>
  (await listTags(store.db, caller, { resourceid, listall: true }, { offset: 0, limit: 100 })).items.map(
    (t) => t.resourceid,
  );

const gone = (outcome: unknown) =>
  outcome instanceof CloudStackError && outcome.kind === 'InvalidParameterValue';

for (const kind of testDbKinds()) {
  test(`every taggable resource's deletion takes its tags (${kind})`, async () => {
    const { store, cleanup } = await createTestStore(kind, 4);
    try {
      const { caller, zoneId } = await setUp(store);
      for (const type of types) {
        const r = await makers[type]!(store, caller, zoneId);
        await transaction(store, (tx) => tag(tx, caller, type, r.uuid));
        assert.equal(await tagsOf(store.db, type, r.id), 1, `${type} tagged`);
        await transaction(store, (tx) => r.remove(makeNetCtx(tx, caller, Date.now())));
        assert.equal(await tagsOf(store.db, type, r.id), 0, `${type}'s tags went with it`);
        await assert.rejects(
          transaction(store, (tx) => tag(tx, caller, type, r.uuid)),
          (e) => gone(e),
          `a deleted ${type} takes no tags`,
        );
      }
    } finally {
      await cleanup();
    }
  });

  test(`a rule's tags follow its customid; its old id names nothing (${kind})`, async () => {
    const { store, cleanup } = await createTestStore(kind, 4);
    try {
      const { caller, zoneId } = await setUp(store);
      const renames = {
        FirewallRule: (ctx: NetCtx, id: string, customid: string) =>
          updateRule(ctx, 'firewall', { id, customid }),
        LoadBalancer: (ctx: NetCtx, id: string, customid: string) =>
          updateLoadBalancerRule(ctx, { id, customid }),
      };
      for (const [type, rename] of Object.entries(renames)) {
        const r = await makers[type as TaggableType]!(store, caller, zoneId);
        await transaction(store, (tx) => tag(tx, caller, type as TaggableType, r.uuid));
        const moved = randomUUID();
        await transaction(store, (tx) => rename(makeNetCtx(tx, caller, Date.now()), r.uuid, moved));
        assert.deepEqual(await tagIds(store, caller, moved), [moved], `${type}: the tag under the new id`);
        assert.deepEqual(await tagIds(store, caller, r.uuid), [], `${type}: nothing under the old one`);
      }
    } finally {
      await cleanup();
    }
  });

  if (kind === 'sqlite') continue; // one writer at a time: nothing runs beside a deletion

  test(`createTags beside a deletion leaves no tag, whichever comes first (${kind})`, async (t) => {
    const { store, cleanup } = await createTestStore(kind, 4);
    try {
      const { caller, zoneId } = await setUp(store);
      const ctx = (tx: Tx) => makeNetCtx(tx, caller, Date.now());
      for (const type of types) {
        await t.test(`${type}, the deletion first`, async () => {
          // The deletion has done its work, uncommitted, when createTags reads the resource: it must be refused.
          const a = await makers[type]!(store, caller, zoneId);
          const late = await beside(
            kind,
            store,
            (tx) => a.remove(ctx(tx)),
            (tx) => tag(tx, caller, type, a.uuid),
          );
          assert.ok(gone(late), `${type}: createTags after the deletion refused (got ${String(late)})`);
          assert.equal(await tagsOf(store.db, type, a.id), 0, `${type}: no tag on the deleted resource`);
        });
        await t.test(`${type}, createTags first`, async () => {
          // createTags has inserted its tag, uncommitted, when the deletion runs: the deletion must take it.
          const b = await makers[type]!(store, caller, zoneId);
          const removed = await beside(
            kind,
            store,
            (tx) => tag(tx, caller, type, b.uuid),
            (tx) => b.remove(ctx(tx)),
          );
          assert.equal(removed, 'done', `${type}: the deletion went through`);
          assert.equal(
            await tagsOf(store.db, type, b.id),
            0,
            `${type}: the deletion took the tag created beside it`,
          );
        });
      }
    } finally {
      await cleanup();
    }
  });

  test(`createTags beside a customid tags the rule under its new id, whichever comes first (${kind})`, async () => {
    const { store, cleanup } = await createTestStore(kind, 4);
    try {
      const { caller, zoneId } = await setUp(store);
      const rename = (uuid: string, to: string) => (tx: Tx) =>
        updateRule(makeNetCtx(tx, caller, Date.now()), 'firewall', { id: uuid, customid: to }).then(
          () => undefined,
        );
      // The customid has committed, when createTags (which read the rule by its old id) inserts.
      const a = await makers.FirewallRule!(store, caller, zoneId);
      const toA = randomUUID();
      const late = await beside(kind, store, rename(a.uuid, toA), (tx) =>
        tag(tx, caller, 'FirewallRule', a.uuid),
      );
      assert.equal(late, 'done');
      assert.deepEqual(await tagIds(store, caller, toA), [toA], "the tag under the rule's new id");
      // createTags has inserted, uncommitted, when the customid runs.
      const b = await makers.FirewallRule!(store, caller, zoneId);
      const toB = randomUUID();
      const renamed = await beside(
        kind,
        store,
        (tx) => tag(tx, caller, 'FirewallRule', b.uuid),
        rename(b.uuid, toB),
      );
      assert.equal(renamed, 'done');
      assert.deepEqual(await tagIds(store, caller, toB), [toB], 'the tag followed the customid');
    } finally {
      await cleanup();
    }
  });
}
