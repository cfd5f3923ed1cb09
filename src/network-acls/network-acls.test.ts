/**
 * Network ACLs against real SQLite, PostgreSQL and MariaDB: the seeded built-ins, lists and items through the
 * service with CloudStack's refusals, a tier's router bumped by every change it enforces, and the AclRuleSpecs
 * the tier's desired state carries (number order, the implicit egress allow of a list without egress items).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { bootstrapAdmin } from '../accounts/bootstrap.js';
import { transaction } from '../store/db.js';
import { makeNetCtx } from '../infrastructure/net-context.js';
import type { NetCtx } from '../infrastructure/context.js';
import { adminCaller, insertRouter, insertZoneAndNetwork } from '../routers/testing/fixtures.js';
import { CloudStackError } from '../errors/catalogue.js';
import {
  createAclItem,
  createAclList,
  deleteAclItem,
  deleteAclList,
  listAclItems,
  listAclLists,
  moveAclItem,
  replaceAclList,
  updateAclItem,
  updateAclList,
} from './service.js';
import { aclSpecsForNetwork } from './desired.js';
import { aclDb } from './tables.js';
import { removeVpcAclLists } from './repository.js';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/** Expects `fn` to fail with CloudStack's `code` and a text matching `text`. */
async function refusedWith(fn: () => Promise<unknown>, code: number, text: RegExp): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof CloudStackError, String(e));
    assert.equal(e.httpCode, code, e.message);
    assert.match(e.message, text);
    return true;
  });
}

for (const kind of testDbKinds()) {
  test(`network ACL lists, items and a tier's AclRuleSpecs (${kind})`, async () => {
    const { store, cleanup } = await createTestStore(kind, 2);
    try {
      await bootstrapAdmin(store, { adminPassword: 'pw-admin' });
      const caller = await adminCaller(store);
      const run = <T>(fn: (n: NetCtx) => Promise<T>) =>
        transaction(store, (tx) => fn(makeNetCtx(tx, caller, Date.now())));
      const db = aclDb(store.db);

      // The built-ins, global, with CloudStack's items.
      const builtIns = await db
        .selectFrom('network_acl_lists as l')
        .innerJoin('network_acl_items as i', 'i.acl_id', 'l.id')
        .select(['l.name', 'l.vpc_id', 'i.number', 'i.action', 'i.traffic_type', 'i.protocol', 'i.cidrs'])
        .orderBy('l.name')
        .orderBy('i.number')
        .execute();
      assert.deepEqual(
        builtIns.map((r) => [r.name, r.vpc_id, r.number, r.action, r.traffic_type, r.protocol, r.cidrs]),
        [
          ['default_allow', null, 1, 'Allow', 'Ingress', 'all', '0.0.0.0/0'],
          ['default_allow', null, 2, 'Allow', 'Egress', 'all', '0.0.0.0/0'],
          ['default_deny', null, 1, 'Deny', 'Ingress', 'all', '0.0.0.0/0'],
          ['default_deny', null, 2, 'Deny', 'Egress', 'all', '0.0.0.0/0'],
        ],
      );
      const denyUuid = (
        await db
          .selectFrom('network_acl_lists')
          .select('uuid')
          .where('name', '=', 'default_deny')
          .executeTakeFirstOrThrow()
      ).uuid;

      // A VPC tier (rows as the networks concern leaves them) with a router.
      const { zoneId, networkId } = await insertZoneAndNetwork(store.db);
      assert.deepEqual(
        await aclSpecsForNetwork(store.db, networkId),
        [],
        'a network outside a VPC enforces no ACL',
      );
      const offering = await store.db.selectFrom('vpc_offerings').select('id').executeTakeFirstOrThrow();
      const vpcUuid = randomUUID();
      await db
        .insertInto('vpcs')
        .values({
          uuid: vpcUuid,
          zone_id: zoneId,
          account_id: caller.accountId,
          domain_id: caller.domainId,
          name: 'vpc1',
          display_text: 'vpc1',
          cidr: '10.1.0.0/16',
          vpc_offering_id: Number(offering.id),
          network_domain: null,
          state: 'Enabled',
          dns1: null,
          dns2: null,
          created: Date.now(),
          removed: null,
        })
        .execute();
      const vpc = await db
        .selectFrom('vpcs')
        .select('id')
        .where('uuid', '=', vpcUuid)
        .executeTakeFirstOrThrow();
      await db
        .updateTable('networks')
        .set({ vpc_id: Number(vpc.id), account_id: caller.accountId, domain_id: caller.domainId })
        .where('id', '=', networkId)
        .execute();
      const tier = await db
        .selectFrom('networks')
        .select('uuid')
        .where('id', '=', networkId)
        .executeTakeFirstOrThrow();
      const routerId = await insertRouter(store.db, zoneId, networkId);
      const generation = async () =>
        Number(
          (
            await store.db
              .selectFrom('routers')
              .select('desired_generation')
              .where('id', '=', routerId)
              .executeTakeFirstOrThrow()
          ).desired_generation,
        );

      // No list yet: ingress dropped, egress allowed (CloudStack's VR default).
      assert.deepEqual(
        (await aclSpecsForNetwork(store.db, networkId)).map((s) => [s.id, s.traffic, s.action]),
        [[`default-egress:${tier.uuid}`, 'egress', 'allow']],
      );

      const list = await run((n) =>
        createAclList(n, { name: 'web', vpcid: vpcUuid, description: 'web tier', uuid: randomUUID() }),
      );
      const item = (
        p: Parameters<typeof createAclItem>[1] extends infer P
          ? Omit<P & object, 'uuid' | 'newListUuid'>
          : never,
      ) => run((n) => createAclItem(n, { ...p, uuid: randomUUID(), newListUuid: randomUUID() }));
      const http = await item({
        aclid: list.uuid,
        protocol: 'TCP',
        startport: 80,
        endport: 80,
        number: 10,
        cidrlist: ['192.0.2.0/24'],
      });
      const next = await item({ aclid: list.uuid, protocol: 'udp', startport: 53, endport: 53 });
      assert.equal(next.number, 11, 'an item without number comes after the last');
      const ping = await item({ aclid: list.uuid, protocol: 'icmp', number: 5, action: 'deny' });
      assert.deepEqual(
        [ping.icmp_type, ping.icmp_code, ping.action, ping.traffic_type],
        [-1, -1, 'Deny', 'Ingress'],
      );

      // CloudStack's refusals, in its words.
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'tcp', number: 10 }),
        431,
        new RegExp(`ACL item with number 10 already exists in ACL: ${list.uuid}`),
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'gre' }),
        431,
        /Invalid protocol \[gre\]\. Expected one of: \[tcp,udp,icmp,all\]/,
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: '300' }),
        431,
        /Invalid protocol number: 300/,
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'icmp', startport: 1, endport: 2 }),
        431,
        /Can't specify start\/end port when protocol is ICMP/,
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'tcp', icmptype: 8 }),
        431,
        /Can specify icmpCode and icmpType for ICMP protocol only/,
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'tcp', startport: 90, endport: 80 }),
        431,
        /Start port can't be bigger than end port \[startport=90,endport=80\]/,
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'all', startport: 1, endport: 2 }),
        431,
        /start port and end port must be null if protocol = 'all'/,
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'tcp', cidrlist: ['10.0.0.0/33'] }),
        431,
        /Source cidrs formatting error 10\.0\.0\.0\/33/,
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'tcp', action: 'reject' }),
        431,
        /Invalid action \[reject\]\. Permitted actions are Allow and Deny/,
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'tcp', traffictype: 'sideways' }),
        431,
        /Invalid traffic type sideways/,
      );
      await refusedWith(
        () => item({ aclid: list.uuid, protocol: 'tcp', number: 0 }),
        431,
        /Invalid number \[0\]\. Number cannot be < 1/,
      );
      await refusedWith(
        () => item({ aclid: denyUuid, protocol: 'tcp' }),
        431,
        /Default ACL cannot be modified/,
      );
      await refusedWith(
        () => run((n) => deleteAclList(n, { id: denyUuid })),
        431,
        /Default ACL cannot be removed/,
      );
      await refusedWith(
        () => run((n) => updateAclList(n, { id: denyUuid, name: 'x' })),
        431,
        /Default ACL cannot be modified/,
      );
      await refusedWith(
        () => run((n) => replaceAclList(n, { aclid: list.uuid, gatewayid: randomUUID() })),
        431,
        /no VPC private gateways/,
      );

      // Nothing above reached the tier: it has no list yet.
      assert.equal(await generation(), 1);
      await run((n) => replaceAclList(n, { aclid: list.uuid, networkid: tier.uuid }));
      assert.equal(await generation(), 2, 'replacing the list bumps the tier router');
      const specs = await aclSpecsForNetwork(store.db, networkId);
      assert.deepEqual(
        specs.map((s) => [s.number, s.traffic, s.action, s.protocol]),
        [
          [5, 'ingress', 'deny', 'icmp'],
          [10, 'ingress', 'allow', 'tcp'],
          [11, 'ingress', 'allow', 'udp'],
          [2147483647, 'egress', 'allow', 'all'],
        ],
      );
      assert.deepEqual(specs[1], {
        kind: 'acl',
        id: http.uuid,
        number: 10,
        action: 'allow',
        traffic: 'ingress',
        protocol: 'tcp',
        ports: { start: 80, end: 80 },
        cidrs: ['192.0.2.0/24'],
      });
      await refusedWith(
        () => run((n) => deleteAclList(n, { id: list.uuid })),
        530,
        new RegExp(`ACL is still associated with 1 tier\\(s\\)\\. Cannot delete network ACL: ${list.uuid}`),
      );

      // An egress item ends the implicit egress allow.
      const out = await item({
        aclid: list.uuid,
        protocol: 'tcp',
        startport: 443,
        endport: 443,
        traffictype: 'Egress',
      });
      assert.equal(await generation(), 3);
      assert.deepEqual(
        (await aclSpecsForNetwork(store.db, networkId)).map((s) => s.id),
        [ping.uuid, http.uuid, next.uuid, out.uuid],
      );

      // Update (partial by default), move, delete: each bumps the router.
      const updated = await run((n) => updateAclItem(n, { id: http.uuid, endport: 81 }));
      assert.deepEqual([updated.start_port, updated.end_port, updated.cidrs], [80, 81, '192.0.2.0/24']);
      await refusedWith(
        () => run((n) => updateAclItem(n, { id: http.uuid, number: 5 })),
        431,
        /ACL item with number 5 already exists/,
      );
      assert.equal(await generation(), 4);
      const items = await listAclItems(makeNetCtx(store.db as never, caller, Date.now()), {
        aclid: list.uuid,
      });
      const hash = md5(
        [...items.items]
          .sort((a, b) => a.number - b.number)
          .map((i) => i.uuid)
          .join(''),
      );
      await refusedWith(
        () =>
          run((n) =>
            moveAclItem(n, { id: out.uuid, nextaclruleid: ping.uuid, aclconsistencyhash: 'stale' }, md5),
          ),
        431,
        /not in the state that you used/,
      );
      const moved = await run((n) =>
        moveAclItem(n, { id: out.uuid, nextaclruleid: ping.uuid, aclconsistencyhash: hash }, md5),
      );
      assert.equal(moved.number, 1, 'moved to the top');
      await run((n) =>
        moveAclItem(n, { id: ping.uuid, previousaclruleid: http.uuid, nextaclruleid: next.uuid }, md5),
      );
      assert.deepEqual(
        (await aclSpecsForNetwork(store.db, networkId)).map((s) => [s.id, s.number]),
        [
          [out.uuid, 1],
          [http.uuid, 10],
          [ping.uuid, 11],
          [next.uuid, 12],
        ],
      );
      assert.equal(await generation(), 6);
      await run((n) => deleteAclItem(n, { id: next.uuid }));
      assert.equal(await generation(), 7);
      await run((n) => updateAclList(n, { id: list.uuid, name: 'web2' }));
      assert.equal(await generation(), 7, 'renaming a list changes nothing a tier enforces');

      // Lists in scope: the built-ins and the VPC's; a VPC filter keeps the built-ins.
      const lists = await listAclLists(makeNetCtx(store.db as never, caller, Date.now()), { vpcid: vpcUuid });
      assert.deepEqual(lists.items.map((l) => l.name).sort(), ['default_allow', 'default_deny', 'web2']);
      const byNet = await listAclLists(makeNetCtx(store.db as never, caller, Date.now()), {
        networkid: tier.uuid,
      });
      assert.deepEqual(
        byNet.items.map((l) => l.uuid),
        [list.uuid],
      );

      // Back to a built-in, then the list can go.
      await run((n) => replaceAclList(n, { aclid: denyUuid, networkid: tier.uuid }));
      assert.deepEqual(
        (await aclSpecsForNetwork(store.db, networkId)).map((s) => [s.number, s.traffic, s.action]),
        [
          [1, 'ingress', 'deny'],
          [2, 'egress', 'deny'],
        ],
      );
      await run((n) => deleteAclList(n, { id: list.uuid }));
      const events = await store.db
        .selectFrom('events')
        .select('type')
        .where('type', 'like', 'NETWORK.ACL.%')
        .execute();
      const kinds = new Set(events.map((e) => e.type));
      for (const t of [
        'NETWORK.ACL.CREATE',
        'NETWORK.ACL.DELETE',
        'NETWORK.ACL.REPLACE',
        'NETWORK.ACL.UPDATE',
        'NETWORK.ACL.ITEM.CREATE',
        'NETWORK.ACL.ITEM.UPDATE',
        'NETWORK.ACL.ITEM.DELETE',
      ])
        assert.ok(kinds.has(t), `no ${t} event`);

      // A VPC's deletion takes its lists along.
      const other = await run((n) => createAclList(n, { name: 'spare', vpcid: vpcUuid, uuid: randomUUID() }));
      await item({ aclid: other.uuid, protocol: 'all' });
      await transaction(store, (tx) => removeVpcAclLists(tx, Number(vpc.id), Date.now()));
      const left = await db
        .selectFrom('network_acl_lists')
        .select('name')
        .where('vpc_id', '=', Number(vpc.id))
        .where('removed', 'is', null)
        .execute();
      assert.deepEqual(left, []);
      assert.equal(
        (await db.selectFrom('network_acl_items').select('id').where('acl_id', '=', other.id).execute())
          .length,
        0,
      );
    } finally {
      await cleanup();
    }
  });
}
