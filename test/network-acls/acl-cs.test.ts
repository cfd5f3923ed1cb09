/**
 * VPC network ACLs through python `cs` against a real server (simulator driver): the built-in lists, a list with
 * items, updates, moves and replacing a tier's list, CloudStack's refusals and texts, and the tier's router
 * desired-state rules (read from the same database with aclSpecsForNetwork) in number order.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsBridge, CsClient, ServerProcess } from '../api/harness.js';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { openStore } from '../../src/store/db.js';
import { aclSpecsForNetwork } from '../../src/network-acls/desired.js';
import { createTestZone, createUserClient } from '../networking/zone-fixture.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');
const job = { fetch_result: true };

for (const kind of kinds) {
  describe(`network ACLs with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: CsClient;
    let alice: CsClient;
    let bob: CsClient;
    let zone: string;

    /** The AclRuleSpecs the tier's router is given, read from the server's database. */
    const routerAcl = async (networkUuid: string) => {
      const store = await openStore(tdb.url, { poolSize: 1 });
      try {
        const n = await store.db
          .selectFrom('networks')
          .select('id')
          .where('uuid', '=', networkUuid)
          .executeTakeFirstOrThrow();
        return await aclSpecsForNetwork(store.db, Number(n.id));
      } finally {
        await store.close();
      }
    };

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      const mk = (name: string) => createUserClient(admin, (k, s) => bridge.client(server.url, k, s), name);
      alice = (await mk('acl-alice')).client;
      bob = (await mk('acl-bob')).client;
      zone = (
        await createTestZone(admin, {
          name: 'acl-zone',
          vlans: '760-779',
          publicVlan: '43',
          publicPrefix: '203.0.113',
          guestCidr: '10.50.0.0/16',
        })
      ).zone;
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    test('built-ins, a list with items, a tier enforcing it, and CloudStack refusals', async () => {
      // The built-ins: global (empty vpcid), visible to a user, with their items.
      const builtIns = ok(await alice('listNetworkACLLists', {}), 'listNetworkACLLists').networkacllist;
      const byName = new Map(builtIns.map((l: any) => [l.name, l]));
      assert.ok(byName.has('default_allow') && byName.has('default_deny'), JSON.stringify(builtIns));
      const deny = byName.get('default_deny') as any;
      assert.equal(deny.vpcid, '');
      const denyItems = ok(
        await alice('listNetworkACLs', { aclid: deny.id }),
        'listNetworkACLs default_deny',
      );
      assert.deepEqual(
        denyItems.networkacl
          .map((i: any) => [i.number, i.action, i.traffictype, i.protocol, i.cidrlist])
          .sort(),
        [
          [1, 'Deny', 'Ingress', 'all', '0.0.0.0/0'],
          [2, 'Deny', 'Egress', 'all', '0.0.0.0/0'],
        ],
      );

      const vpcOffering = ok(
        await alice('listVPCOfferings', { name: 'Default VPC offering' }),
        'listVPCOfferings',
      ).vpcoffering[0].id;
      const vpc = ok(
        await alice(
          'createVPC',
          {
            name: 'acl-vpc',
            displaytext: 'acl-vpc',
            vpcofferingid: vpcOffering,
            zoneid: zone,
            cidr: '10.60.0.0/16',
          },
          job,
        ),
        'createVPC',
      ).vpc.id as string;
      const tierOffering = ok(
        await alice('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingForVpcNetworks' }),
        'listNetworkOfferings',
      ).networkoffering.find((o: any) => o.name === 'DefaultIsolatedNetworkOfferingForVpcNetworks').id;

      // A list of the VPC, with items; the number comes after the last when not given.
      const list = ok(
        await alice('createNetworkACLList', { name: 'web', description: 'web tier', vpcid: vpc }, job),
        'createNetworkACLList',
      ).networkacllist;
      assert.deepEqual(
        [list.name, list.description, list.vpcid, list.vpcname, list.fordisplay],
        ['web', 'web tier', vpc, 'acl-vpc', true],
      );
      const item = async (p: Record<string, unknown>) =>
        ok(
          await alice('createNetworkACL', { aclid: list.id, ...p }, job),
          `createNetworkACL ${JSON.stringify(p)}`,
        ).networkacl;
      const http = await item({
        protocol: 'tcp',
        startport: 80,
        endport: 80,
        number: 20,
        cidrlist: '192.0.2.0/24,198.51.100.0/24',
      });
      assert.deepEqual(
        [
          http.aclid,
          http.aclname,
          http.number,
          http.action,
          http.traffictype,
          http.protocol,
          http.startport,
          http.endport,
          http.cidrlist,
          http.state,
        ],
        [list.id, 'web', 20, 'Allow', 'Ingress', 'tcp', '80', '80', '192.0.2.0/24,198.51.100.0/24', 'Active'],
      );
      const dns = await item({ protocol: 'udp', startport: 53, endport: 53 });
      assert.equal(dns.number, 21);
      const ping = await item({ protocol: 'icmp', icmptype: 8, icmpcode: 0, number: 10, action: 'Deny' });
      const out = await item({ protocol: 'all', traffictype: 'egress', number: 30, cidrlist: '0.0.0.0/0' });

      // Refusals with CloudStack's codes and texts.
      const no = async (cmd: string, p: Record<string, unknown>, code: number, text: RegExp, who = alice) =>
        refused(await who(cmd, p, job), code, text, `${cmd} ${JSON.stringify(p)}`);
      await no(
        'createNetworkACL',
        { aclid: list.id, protocol: 'tcp', number: 20 },
        431,
        new RegExp(`ACL item with number 20 already exists in ACL: ${list.id}`),
      );
      await no(
        'createNetworkACL',
        { aclid: list.id, protocol: 'sctp' },
        431,
        /Invalid protocol \[sctp\]\. Expected one of: \[tcp,udp,icmp,all\]/,
      );
      await no(
        'createNetworkACL',
        { aclid: list.id, protocol: 'icmp', startport: 1, endport: 1 },
        431,
        /Can't specify start\/end port when protocol is ICMP/,
      );
      await no(
        'createNetworkACL',
        { aclid: list.id, protocol: 'tcp', cidrlist: '10.1.2.300/24' },
        431,
        /Source cidrs formatting error 10\.1\.2\.300\/24/,
      );
      await no(
        'createNetworkACL',
        { aclid: list.id, protocol: 'tcp', action: 'drop' },
        431,
        /Invalid action \[drop\]\. Permitted actions are Allow and Deny/,
      );
      await no(
        'createNetworkACL',
        { aclid: list.id, protocol: 'tcp', traffictype: 'both' },
        431,
        /Invalid traffic type both/,
      );
      await no(
        'createNetworkACL',
        { aclid: deny.id, protocol: 'tcp' },
        431,
        /Default ACL cannot be modified/,
      );
      await no('deleteNetworkACLList', { id: deny.id }, 431, /Default ACL cannot be removed/);
      await no(
        'deleteNetworkACL',
        { id: denyItems.networkacl[0].id },
        431,
        /ACL Items in default ACL cannot be deleted/,
      );
      await no('createNetworkACL', { aclid: list.id, protocol: 'tcp' }, 531, /.+/, bob);
      assert.equal(
        ok(await bob('listNetworkACLs', { listall: true }), 'bob listNetworkACLs').networkacl.every(
          (i: any) => i.aclid !== list.id,
        ),
        true,
      );

      // A tier created with the list enforces its items in number order; its answer names the list.
      const tier = ok(
        await alice('createNetwork', {
          name: 'acl-tier',
          displaytext: 'acl-tier',
          networkofferingid: tierOffering,
          zoneid: zone,
          gateway: '10.60.1.1',
          netmask: '255.255.255.0',
          vpcid: vpc,
          aclid: list.id,
        }),
        'createNetwork tier with aclid',
      ).network;
      assert.deepEqual([tier.aclid, tier.aclname], [list.id, 'web']);
      assert.deepEqual(
        (await routerAcl(tier.id)).map((s) => [s.id, s.number, s.traffic, s.action, s.protocol]),
        [
          [ping.id, 10, 'ingress', 'deny', 'icmp'],
          [http.id, 20, 'ingress', 'allow', 'tcp'],
          [dns.id, 21, 'ingress', 'allow', 'udp'],
          [out.id, 30, 'egress', 'allow', 'all'],
        ],
      );
      const spec = (await routerAcl(tier.id)).find((s) => s.id === http.id)!;
      assert.deepEqual(
        [spec.ports, spec.cidrs],
        [{ start: 80, end: 80 }, ['192.0.2.0/24', '198.51.100.0/24']],
      );
      await no(
        'deleteNetworkACLList',
        { id: list.id },
        530,
        new RegExp(`ACL is still associated with 1 tier\\(s\\)\\. Cannot delete network ACL: ${list.id}`),
      );

      // Update (partial), move to the top, list by network.
      const upd = ok(
        await alice('updateNetworkACLItem', { id: http.id, endport: 90, reason: 'web' }, job),
        'updateNetworkACLItem',
      ).networkacl;
      assert.deepEqual(
        [upd.startport, upd.endport, upd.reason, upd.cidrlist],
        ['80', '90', 'web', '192.0.2.0/24,198.51.100.0/24'],
      );
      const moved = ok(
        await alice('moveNetworkAclItem', { id: out.id, nextaclruleid: ping.id }, job),
        'moveNetworkAclItem',
      ).networkacl;
      assert.equal(moved.number, 1);
      const tierItems = ok(
        await alice('listNetworkACLs', { networkid: tier.id }),
        'listNetworkACLs networkid',
      );
      assert.equal(tierItems.count, 4);
      assert.deepEqual(
        (await routerAcl(tier.id)).map((s) => [s.id, s.number, s.ports?.end]),
        [
          [out.id, 1, undefined],
          [ping.id, 10, undefined],
          [http.id, 20, 90],
          [dns.id, 21, 53],
        ],
      );
      ok(await alice('updateNetworkACLList', { id: list.id, name: 'web-2' }, job), 'updateNetworkACLList');
      assert.equal(
        ok(await alice('listNetworkACLLists', { networkid: tier.id }), 'lists by network').networkacllist[0]
          .name,
        'web-2',
      );

      // replaceNetworkACLList: a built-in; a list of another VPC or a gateway are refused.
      const otherVpc = ok(
        await alice(
          'createVPC',
          {
            name: 'acl-vpc2',
            displaytext: 'acl-vpc2',
            vpcofferingid: vpcOffering,
            zoneid: zone,
            cidr: '10.61.0.0/16',
            start: false,
          },
          job,
        ),
        'createVPC 2',
      ).vpc.id as string;
      const foreign = ok(
        await alice('createNetworkACLList', { name: 'other', vpcid: otherVpc }, job),
        'list of VPC 2',
      ).networkacllist;
      await no(
        'replaceNetworkACLList',
        { aclid: foreign.id, networkid: tier.id },
        431,
        new RegExp(`Network: ${tier.id} and ACL: ${foreign.id} do not belong to the same VPC`),
      );
      await no('replaceNetworkACLList', { aclid: list.id, gatewayid: vpc }, 431, /no VPC private gateways/);
      const isolated = ok(
        await alice('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
        'isolated offering',
      ).networkoffering[0].id;
      const plain = ok(
        await alice('createNetwork', {
          name: 'acl-plain',
          displaytext: 'acl-plain',
          networkofferingid: isolated,
          zoneid: zone,
        }),
        'createNetwork isolated',
      ).network.id as string;
      await no(
        'replaceNetworkACLList',
        { aclid: deny.id, networkid: plain },
        431,
        new RegExp(`Network is not part of a VPC: ${plain}`),
      );
      assert.deepEqual(await routerAcl(plain), []);
      ok(
        await alice('replaceNetworkACLList', { aclid: deny.id, networkid: tier.id }, job),
        'replaceNetworkACLList default_deny',
      );
      const t = ok(await alice('listNetworks', { id: tier.id }), 'listNetworks tier').network[0];
      assert.deepEqual([t.aclid, t.aclname], [deny.id, 'default_deny']);
      assert.deepEqual(
        (await routerAcl(tier.id)).map((s) => [s.number, s.traffic, s.action]),
        [
          [1, 'ingress', 'deny'],
          [2, 'egress', 'deny'],
        ],
      );

      // A tier without aclid has no list (no aclid in its answer), and its router allows egress only.
      const bare = ok(
        await alice('createNetwork', {
          name: 'acl-bare',
          displaytext: 'acl-bare',
          networkofferingid: tierOffering,
          zoneid: zone,
          gateway: '10.60.2.1',
          netmask: '255.255.255.0',
          vpcid: vpc,
        }),
        'createNetwork tier without aclid',
      ).network;
      assert.equal(bare.aclid, undefined);
      assert.deepEqual(
        (await routerAcl(bare.id)).map((s) => [s.traffic, s.action, s.protocol]),
        [['egress', 'allow', 'all']],
      );
      // createNetworkACL with networkid gives such a tier its own list, named as CloudStack names it.
      const own = ok(
        await alice(
          'createNetworkACL',
          { networkid: bare.id, protocol: 'tcp', startport: 22, endport: 22 },
          job,
        ),
        'createNetworkACL networkid',
      ).networkacl;
      assert.equal(own.aclname, `VPC_acl-vpc_Tier_acl-bare_ACL_${bare.id}`);
      assert.equal(
        ok(await alice('listNetworks', { id: bare.id }), 'bare again').network[0].aclid,
        own.aclid,
      );

      // The list can go once no tier uses it; its items go with it.
      ok(await alice('deleteNetworkACL', { id: dns.id }, job), 'deleteNetworkACL');
      ok(await alice('deleteNetworkACLList', { id: list.id }, job), 'deleteNetworkACLList');
      assert.equal(ok(await alice('listNetworkACLLists', { id: list.id }), 'list gone').count ?? 0, 0);
      const events = ok(await alice('listEvents', { page: 1, pagesize: 200 }), 'listEvents').event.map(
        (e: any) => e.type,
      );
      for (const type of [
        'NETWORK.ACL.CREATE',
        'NETWORK.ACL.ITEM.CREATE',
        'NETWORK.ACL.ITEM.UPDATE',
        'NETWORK.ACL.ITEM.DELETE',
        'NETWORK.ACL.REPLACE',
        'NETWORK.ACL.UPDATE',
        'NETWORK.ACL.DELETE',
      ])
        assert.ok(events.includes(type), `no ${type} in ${JSON.stringify(events)}`);
    });
  });
}
