/**
 * The networking API as a CloudStack client sees it: a real `stacknet server` process and the python `cs`
 * client, on SQLite and PostgreSQL. A zone is built from nothing, then ranges, networks, VPCs, public and
 * portable IPs are exercised through every command, including the refusals (431), the denials (531) and the
 * exhaustion (533) a CloudStack user would meet.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient as Client, ServerProcess, CsBridge } from '../api/harness.js';
import { createTestVpc } from './zone-fixture.js';

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');

for (const kind of kinds) {
  describe(`networking API with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: Client;
    let alice: Client;
    let bob: Client;
    const id: Record<string, string> = {};

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      const root = ok(await admin('listDomains', {}), 'listDomains').domain[0].id as string;
      for (const name of ['alice', 'bob']) {
        const a = ok(
          await admin('createAccount', {
            username: name,
            password: 'pw',
            email: `${name}@example.org`,
            firstname: name,
            lastname: 'x',
            accounttype: 0,
            domainid: root,
          }),
          `createAccount ${name}`,
        );
        const userId = a.account.user[0].id as string;
        const keys = ok(await admin('registerUserKeys', { id: userId }), 'registerUserKeys');
        const k = keys.userkeys ?? keys;
        const c = bridge.client(server.url, k.apikey, k.secretkey);
        if (name === 'alice') alice = c;
        else bob = c;
      }
      id.root = root;
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    test('a zone built from nothing', async () => {
      const z = ok(
        await admin('createZone', {
          name: 'zone-a',
          networktype: 'Advanced',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
          guestcidraddress: '10.1.1.0/24',
          domain: 'example.internal',
        }),
        'createZone',
      );
      id.zone = z.zone.id;
      assert.equal(z.zone.guestcidraddress, '10.1.1.0/24');
      refused(
        await admin('createZone', {
          name: 'zb',
          networktype: 'Basic',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
        }),
        431,
        /networktype/,
        'Basic zone',
      );
      refused(
        await admin('createZone', {
          name: 'zb',
          networktype: 'Advanced',
          dns1: '8.8.8',
          internaldns1: '10.0.0.2',
        }),
        431,
        /dns1/,
        'bad dns1',
      );
      const up = ok(await admin('updateZone', { id: id.zone, dns2: '1.1.1.1' }), 'updateZone');
      assert.equal(up.zone.dns2, '1.1.1.1');
      assert.equal(ok(await admin('listZones', { id: id.zone }), 'listZones').count, 1);
      refused(
        await alice('createZone', {
          name: 'x',
          networktype: 'Advanced',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
        }),
        432,
        /.*/,
        'user createZone',
      );

      const pod = ok(
        await admin('createPod', {
          zoneid: id.zone,
          name: 'pod1',
          gateway: '192.168.10.1',
          netmask: '255.255.255.0',
          startip: '192.168.10.10',
          endip: '192.168.10.59',
        }),
        'createPod',
      );
      assert.deepEqual(pod.pod.startip, ['192.168.10.10']);
      refused(
        await admin('createPod', {
          zoneid: id.zone,
          name: 'pod2',
          gateway: '192.168.10.1',
          netmask: '255.255.255.0',
          startip: '192.168.10.50',
          endip: '192.168.10.70',
        }),
        431,
        /overlaps/,
        'overlapping pod range',
      );
      assert.equal(ok(await admin('listPods', { zoneid: id.zone }), 'listPods').count, 1);

      const pn = ok(
        await admin(
          'createPhysicalNetwork',
          { zoneid: id.zone, name: 'pn1', isolationmethods: 'VLAN', vlan: '100-199,300-310' },
          { fetch_result: true },
        ),
        'createPhysicalNetwork',
      );
      id.pn = pn.physicalnetwork.id;
      assert.equal(pn.physicalnetwork.vlan, '100-199,300-310');
      refused(
        await admin(
          'createPhysicalNetwork',
          { zoneid: id.zone, name: 'pn2', vlan: '150-160' },
          { fetch_result: true },
        ),
        431,
        /overlaps 100-199 of physical network 'pn1'/,
        'overlapping VLAN range',
      );
      refused(
        await admin(
          'createPhysicalNetwork',
          { zoneid: id.zone, name: 'pn3', vlan: '100-' },
          { fetch_result: true },
        ),
        431,
        /not a range/,
        'malformed VLAN range',
      );
      for (const t of ['Guest', 'Public', 'Management']) {
        ok(
          await admin(
            'addTrafficType',
            { physicalnetworkid: id.pn, traffictype: t, kvmnetworklabel: `br-${t.toLowerCase()}` },
            { fetch_result: true },
          ),
          `addTrafficType ${t}`,
        );
      }
      refused(
        await admin(
          'addTrafficType',
          { physicalnetworkid: id.pn, traffictype: 'Guest' },
          { fetch_result: true },
        ),
        431,
        /already carries Guest/,
        'duplicate traffic type',
      );
      const tt = ok(await admin('listTrafficTypes', { physicalnetworkid: id.pn }), 'listTrafficTypes');
      assert.equal(tt.count, 3);
      const en = ok(
        await admin('updatePhysicalNetwork', { id: id.pn, state: 'Enabled' }, { fetch_result: true }),
        'updatePhysicalNetwork',
      );
      assert.equal(en.physicalnetwork.state, 'Enabled');
      assert.equal(
        ok(await admin('listPhysicalNetworks', { zoneid: id.zone }), 'listPhysicalNetworks').count,
        1,
      );
    });

    test('public ranges: overlapping and malformed refused, VLAN conflicts named', async () => {
      const r = ok(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '50',
          gateway: '203.0.113.1',
          netmask: '255.255.255.0',
          startip: '203.0.113.10',
          endip: '203.0.113.19',
          forvirtualnetwork: true,
        }),
        'createVlanIpRange',
      );
      id.range = r.vlan.id;
      assert.equal(r.vlan.vlan, 'vlan://50');
      assert.equal(r.vlan.cidr, '203.0.113.0/24');
      const base = { zoneid: id.zone, vlan: '50', gateway: '203.0.113.1', netmask: '255.255.255.0' };
      refused(
        await admin('createVlanIpRange', { ...base, startip: '203.0.113.15', endip: '203.0.113.30' }),
        431,
        /overlaps the existing range 203\.0\.113\.10-203\.0\.113\.19/,
        'overlapping range',
      );
      refused(
        await admin('createVlanIpRange', { ...base, startip: '203.0.114.10', endip: '203.0.114.20' }),
        431,
        /not inside the subnet 203\.0\.113\.0\/24/,
        'range outside its gateway subnet',
      );
      refused(
        await admin('createVlanIpRange', { ...base, startip: '203.0.113.300', endip: '203.0.113.310' }),
        431,
        /startip/,
        'malformed startip',
      );
      refused(
        await admin('createVlanIpRange', { ...base, startip: '203.0.113.40', endip: '203.0.113.30' }),
        431,
        /endip/,
        'reversed range',
      );
      // A subnet overlapping the VLAN's own must be given with its gateway and netmask (CloudStack's
      // checkZoneVlanIpOverlap); a separate subnet on the same VLAN is test/infrastructure/ipam-cs's.
      refused(
        await admin('createVlanIpRange', {
          ...base,
          netmask: '255.255.254.0',
          startip: '203.0.112.40',
          endip: '203.0.112.50',
        }),
        431,
        /overlaps 203\.0\.113\.0\/24 already added on vlan:\/\/50 with gateway 203\.0\.113\.1/,
        'same VLAN, overlapping subnet with another netmask',
      );
      const v6 = ok(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '51',
          ip6gateway: '2001:db8:51::1',
          ip6cidr: '2001:db8:51::/64',
          startipv6: '2001:db8:51::10',
          endipv6: '2001:db8:51::ff',
        }),
        'IPv6 range',
      );
      assert.equal(v6.vlan.ip6cidr, '2001:db8:51::/64');
      assert.equal(v6.vlan.startipv6, '2001:db8:51::10');
      refused(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '52',
          ip6gateway: '2001:db8:52::1',
          ip6cidr: '2001:db8:52::/64',
          startipv6: '2001:db8:53::1',
        }),
        431,
        /not inside the subnet 2001:db8:52::\/64/,
        'IPv6 range outside its prefix',
      );
      ok(await admin('deleteVlanIpRange', { id: v6.vlan.id }), 'delete IPv6 range');
      assert.equal(ok(await admin('listVlanIpRanges', { zoneid: id.zone }), 'listVlanIpRanges').count, 1);
    });

    test('offerings, service offering and template with CloudStack names', async () => {
      const no = ok(await alice('listNetworkOfferings', {}), 'listNetworkOfferings');
      const names = no.networkoffering.map((o: { name: string }) => o.name);
      for (const n of [
        'DefaultIsolatedNetworkOfferingWithSourceNatService',
        'DefaultSharedNetworkOffering',
        'DefaultIsolatedNetworkOfferingForVpcNetworks',
      ]) {
        assert.ok(names.includes(n), `missing offering ${n}`);
      }
      const iso = no.networkoffering.find(
        (o: { name: string }) => o.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService',
      );
      id.isoOffering = iso.id;
      assert.ok(iso.service.some((s: { name: string }) => s.name === 'SourceNat'));
      id.vpcTierOffering = no.networkoffering.find(
        (o: { name: string }) => o.name === 'DefaultIsolatedNetworkOfferingForVpcNetworks',
      ).id;
      id.sharedOffering = no.networkoffering.find(
        (o: { name: string }) => o.name === 'DefaultSharedNetworkOffering',
      ).id;
      const vo = ok(await alice('listVPCOfferings', {}), 'listVPCOfferings');
      assert.equal(vo.vpcoffering[0].name, 'Default VPC offering');
      id.vpcOffering = vo.vpcoffering[0].id;
      assert.ok(ok(await alice('listServiceOfferings', {}), 'listServiceOfferings').count >= 1);
      assert.ok(ok(await alice('listTemplates', { templatefilter: 'featured' }), 'listTemplates').count >= 1);
      const created = ok(
        await admin('createNetworkOffering', {
          name: 'iso-custom',
          displaytext: 'custom',
          guestiptype: 'Isolated',
          traffictype: 'GUEST',
          supportedservices: 'Dhcp,Dns,SourceNat',
          enable: true,
        }),
        'createNetworkOffering',
      );
      assert.equal(created.networkoffering.state, 'Enabled');
      refused(
        await admin('createNetworkOffering', {
          name: 'bad',
          displaytext: 'b',
          guestiptype: 'Weird',
          traffictype: 'GUEST',
        }),
        431,
        /guestiptype/,
        'bad guestiptype',
      );
    });

    test('guest networks: create, implement (VLAN + source NAT), reservation, shutdown gives the VLAN back', async () => {
      const n = ok(
        await alice('createNetwork', {
          zoneid: id.zone,
          name: 'web',
          displaytext: 'web',
          networkofferingid: id.isoOffering,
        }),
        'createNetwork',
      );
      id.net = n.network.id;
      assert.equal(n.network.cidr, '10.1.1.0/24');
      assert.equal(n.network.gateway, '10.1.1.1');
      assert.equal(n.network.state, 'Allocated');
      assert.match(n.network.networkdomain, /^cs[0-9a-f]+cloud\.internal$/);
      ok(await alice('restartNetwork', { id: id.net }, { fetch_result: true }), 'restartNetwork');
      const listed = ok(await alice('listNetworks', { id: id.net }), 'listNetworks').network[0];
      assert.equal(listed.state, 'Implemented');
      assert.equal(listed.vlan, '100');
      assert.equal(listed.broadcasturi, 'vlan://100');
      const snat = ok(
        await alice('listPublicIpAddresses', { associatednetworkid: id.net, issourcenat: true }),
        'source NAT',
      );
      assert.equal(snat.count, 1);
      refused(
        await alice('disassociateIpAddress', { id: snat.publicipaddress[0].id }, { fetch_result: true }),
        431,
        /source NAT IP of 'web'/,
        'release source NAT of a live network',
      );
      refused(
        await admin('updatePhysicalNetwork', { id: id.pn, vlan: '150-199,300-310' }, { fetch_result: true }),
        431,
        /VLAN 100 is in use by network 'web'/,
        'shrinking the VLAN range under a network',
      );
      const cap7 = ok(await admin('listCapacity', { zoneid: id.zone, type: 7 }), 'listCapacity 7')
        .capacity[0];
      assert.equal(cap7.capacitytotal, 111);
      assert.equal(cap7.capacityused, 1);
      const u = ok(
        await alice(
          'updateNetwork',
          { id: id.net, guestvmcidr: '10.1.1.0/25', name: 'web2' },
          { fetch_result: true },
        ),
        'updateNetwork',
      );
      assert.equal(u.network.cidr, '10.1.1.0/25');
      assert.equal(u.network.networkcidr, '10.1.1.0/24');
      assert.equal(u.network.reservediprange, '10.1.1.128-10.1.1.254');
      refused(
        await alice('updateNetwork', { id: id.net, guestvmcidr: '10.2.0.0/25' }, { fetch_result: true }),
        431,
        /inside the network's CIDR/,
        'guestvmcidr outside',
      );
      // A VLAN used by this network cannot carry a public range, nor another network.
      refused(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '100',
          gateway: '198.18.0.1',
          netmask: '255.255.255.0',
          startip: '198.18.0.10',
          endip: '198.18.0.20',
        }),
        431,
        /VLAN 100 is already used by network/,
        'range on a guest VLAN',
      );
      refused(
        await admin('createNetwork', {
          zoneid: id.zone,
          name: 'sh',
          displaytext: 'sh',
          networkofferingid: id.sharedOffering,
          vlan: '100',
          gateway: '198.19.0.1',
          netmask: '255.255.255.0',
          startip: '198.19.0.10',
          endip: '198.19.0.20',
        }),
        431,
        /VLAN 100 is already used by network/,
        'shared network on a used VLAN',
      );
      const shared = ok(
        await admin('createNetwork', {
          zoneid: id.zone,
          name: 'sh',
          displaytext: 'sh',
          networkofferingid: id.sharedOffering,
          vlan: '400',
          gateway: '198.19.0.1',
          netmask: '255.255.255.0',
          startip: '198.19.0.10',
          endip: '198.19.0.20',
        }),
        'shared createNetwork',
      );
      assert.equal(shared.network.type, 'Shared');
      const cap8 = ok(await admin('listCapacity', { zoneid: id.zone, type: 8 }), 'listCapacity 8')
        .capacity[0];
      assert.equal(cap8.capacitytotal, 11);
      // A throwaway network: implement, then delete gives the VLAN and its source NAT back.
      const tmp = ok(
        await alice('createNetwork', {
          zoneid: id.zone,
          name: 'tmp',
          displaytext: 'tmp',
          networkofferingid: id.isoOffering,
        }),
        'createNetwork tmp',
      );
      ok(await alice('restartNetwork', { id: tmp.network.id }, { fetch_result: true }), 'restartNetwork tmp');
      assert.equal(
        ok(await admin('listCapacity', { zoneid: id.zone, type: 7 }), 'cap').capacity[0].capacityused,
        2,
      );
      ok(await alice('deleteNetwork', { id: tmp.network.id }, { fetch_result: true }), 'deleteNetwork');
      assert.equal(
        ok(await admin('listCapacity', { zoneid: id.zone, type: 7 }), 'cap').capacity[0].capacityused,
        1,
      );
      assert.equal(
        ok(await admin('listCapacity', { zoneid: id.zone, type: 4 }), 'cap').capacity[0].capacityused,
        1,
      );
    });

    test("a user associating in another account's network is denied", async () => {
      refused(
        await bob('associateIpAddress', { networkid: id.net }, { fetch_result: true }),
        531,
        /permission|another account/i,
        'bob in alice network',
      );
      const seen = await bob('listNetworks', { id: id.net });
      assert.ok(!seen.ok || !seen.data.network, 'bob must not see alice network');
      refused(
        await bob('deleteNetwork', { id: id.net }, { fetch_result: true }),
        531,
        /.*/,
        'bob deletes alice network',
      );
    });

    test('a VPC with two tiers, an overlapping third refused', async () => {
      id.vpc = await createTestVpc(alice, {
        zone: id.zone!,
        name: 'vpc1',
        cidr: '10.10.0.0/16',
        offering: id.vpcOffering!,
      });
      const tier = (name: string, gateway: string, netmask: string) =>
        alice('createNetwork', {
          zoneid: id.zone,
          name,
          displaytext: name,
          networkofferingid: id.vpcTierOffering,
          vpcid: id.vpc,
          gateway,
          netmask,
        });
      const t1 = ok(await tier('t1', '10.10.1.1', '255.255.255.0'), 'tier 1');
      const t2 = ok(await tier('t2', '10.10.2.1', '255.255.255.0'), 'tier 2');
      refused(
        await tier('t3', '10.10.1.129', '255.255.255.128'),
        431,
        /overlaps 10\.10\.1\.0\/24 of tier 't1'/,
        'overlapping tier',
      );
      refused(
        await tier('t4', '10.11.0.1', '255.255.255.0'),
        431,
        /not inside the CIDR 10\.10\.0\.0\/16/,
        'tier outside the VPC',
      );
      const l = ok(await alice('listVPCs', { id: id.vpc }), 'listVPCs');
      assert.equal(l.vpc[0].network.length, 2);
      ok(
        await alice('updateVPC', { id: id.vpc, displaytext: 'renamed' }, { fetch_result: true }),
        'updateVPC',
      );
      ok(await alice('restartVPC', { id: id.vpc }, { fetch_result: true }), 'restartVPC');
      refused(
        await alice('deleteVPC', { id: id.vpc }, { fetch_result: true }),
        431,
        /still has 2 tier/,
        'deleteVPC with tiers',
      );
      const vip = ok(
        await alice('associateIpAddress', { vpcid: id.vpc }, { fetch_result: true }),
        'associate to VPC',
      );
      assert.equal(vip.ipaddress.vpcid, id.vpc);
      ok(
        await alice('disassociateIpAddress', { id: vip.ipaddress.id }, { fetch_result: true }),
        'disassociate VPC IP',
      );
      for (const t of [t1, t2]) {
        ok(await alice('deleteNetwork', { id: t.network.id }, { fetch_result: true }), 'delete tier');
      }
      ok(await alice('deleteVPC', { id: id.vpc }, { fetch_result: true }), 'deleteVPC');
      assert.equal(ok(await alice('listVPCs', {}), 'listVPCs').count ?? 0, 0);
    });

    test('listApis lists the networking commands with CloudStack metadata', async () => {
      const names = new Set(
        ok(await admin('listApis', {}), 'listApis').api.map((a: { name: string }) => a.name),
      );
      for (const c of [
        'createZone',
        'listZones',
        'updateZone',
        'deleteZone',
        'createPod',
        'listPods',
        'createPhysicalNetwork',
        'listPhysicalNetworks',
        'updatePhysicalNetwork',
        'addTrafficType',
        'listTrafficTypes',
        'createVlanIpRange',
        'listVlanIpRanges',
        'deleteVlanIpRange',
        'dedicatePublicIpRange',
        'releasePublicIpRange',
        'listNetworkOfferings',
        'createNetworkOffering',
        'listVPCOfferings',
        'listServiceOfferings',
        'listTemplates',
        'createNetwork',
        'listNetworks',
        'updateNetwork',
        'deleteNetwork',
        'restartNetwork',
        'createVPC',
        'listVPCs',
        'updateVPC',
        'deleteVPC',
        'restartVPC',
        'associateIpAddress',
        'disassociateIpAddress',
        'listPublicIpAddresses',
        'reserveIpAddress',
        'releaseIpAddress',
        'enableStaticNat',
        'disableStaticNat',
        'createPortableIpRange',
        'listPortableIpRanges',
        'deletePortableIpRange',
        'listCapacity',
      ]) {
        assert.ok(names.has(c), `listApis lacks ${c}`);
      }
    });

    test('portable IP associated and transferred', async () => {
      const pr = ok(
        await admin(
          'createPortableIpRange',
          {
            regionid: 1,
            startip: '198.51.100.10',
            endip: '198.51.100.12',
            gateway: '198.51.100.1',
            netmask: '255.255.255.0',
          },
          { fetch_result: true },
        ),
        'createPortableIpRange',
      );
      refused(
        await admin(
          'createPortableIpRange',
          {
            regionid: 1,
            startip: '203.0.113.12',
            endip: '203.0.113.13',
            gateway: '203.0.113.1',
            netmask: '255.255.255.0',
          },
          { fetch_result: true },
        ),
        431,
        /overlaps public IP range/,
        'portable over a public range',
      );
      const p = ok(
        await alice(
          'associateIpAddress',
          { zoneid: id.zone, isportable: true, networkid: id.net },
          { fetch_result: true },
        ),
        'associate portable',
      );
      assert.equal(p.ipaddress.isportable, true);
      assert.equal(p.ipaddress.ipaddress, '198.51.100.10');
      assert.equal(p.ipaddress.associatednetworkid, id.net);
      const other = ok(
        await alice('createNetwork', {
          zoneid: id.zone,
          name: 'db',
          displaytext: 'db',
          networkofferingid: id.isoOffering,
        }),
        'createNetwork db',
      );
      const moved = ok(
        await alice(
          'associateIpAddress',
          { zoneid: id.zone, isportable: true, ipaddress: '198.51.100.10', networkid: other.network.id },
          { fetch_result: true },
        ),
        'transfer portable',
      );
      assert.equal(moved.ipaddress.id, p.ipaddress.id);
      assert.equal(moved.ipaddress.associatednetworkid, other.network.id);
      const ev = ok(await alice('listEvents', { type: 'PORTABLE.IP.TRANSFER' }), 'listEvents');
      assert.equal(ev.count, 1);
      const ranges = ok(await admin('listPortableIpRanges', {}), 'listPortableIpRanges');
      assert.equal(ranges.portableiprange[0].portableipaddress.length, 1);
      refused(
        await admin('deletePortableIpRange', { id: pr.portableiprange.id }, { fetch_result: true }),
        431,
        /in use/,
        'delete portable range in use',
      );
      ok(
        await alice('disassociateIpAddress', { id: p.ipaddress.id }, { fetch_result: true }),
        'release portable',
      );
      assert.equal(ok(await alice('listEvents', { type: 'PORTABLE.IPRELEASE' }), 'events').count, 1);
      ok(
        await admin('deletePortableIpRange', { id: pr.portableiprange.id }, { fetch_result: true }),
        'deletePortableIpRange',
      );
    });

    test('reserve/release, static NAT refusals, dedicated ranges first, account limit', async () => {
      const free = ok(
        await admin('listPublicIpAddresses', {
          zoneid: id.zone,
          allocatedonly: false,
          state: 'Free',
          page: 1,
          pagesize: 1,
        }),
        'list Free',
      );
      const target = free.publicipaddress[0];
      assert.equal(target.state, 'Free');
      const rs = ok(await alice('reserveIpAddress', { id: target.id }), 'reserveIpAddress');
      assert.equal(rs.ipaddress.state, 'Reserved');
      assert.equal(rs.ipaddress.ipaddress, target.ipaddress);
      ok(await alice('releaseIpAddress', { id: target.id }), 'releaseIpAddress');
      refused(
        await alice('releaseIpAddress', { id: target.id }),
        431,
        /not allocated|Free/,
        'release a Free address',
      );
      const anyIp = ok(
        await alice('associateIpAddress', { zoneid: id.zone }, { fetch_result: true }),
        'associate',
      );
      // The job's answer (owner from the request's caller, zone/range/physical network read with the address in
      // one query) names what a list of the same address names.
      const listed = ok(
        await alice('listPublicIpAddresses', { id: anyIp.ipaddress.id }),
        'list the associated address',
      ).publicipaddress[0];
      for (const k of [
        'ipaddress',
        'state',
        'zoneid',
        'zonename',
        'vlanid',
        'vlanname',
        'physicalnetworkid',
        'forsystemvms',
        'account',
        'domainid',
        'domain',
        'issourcenat',
      ])
        assert.deepEqual(anyIp.ipaddress[k], listed[k], k);
      assert.equal(anyIp.ipaddress.account, 'alice');
      assert.equal(anyIp.ipaddress.domainid, id.root);
      assert.ok(anyIp.ipaddress.vlanid && anyIp.ipaddress.physicalnetworkid && anyIp.ipaddress.domain);
      refused(
        await alice('enableStaticNat', {
          ipaddressid: anyIp.ipaddress.id,
          virtualmachineid: '11111111-2222-4333-8444-555555555555',
        }),
        431,
        /virtualmachineid/,
        'static NAT to an unknown VM',
      );
      refused(
        await alice('disableStaticNat', { ipaddressid: anyIp.ipaddress.id }, { fetch_result: true }),
        431,
        /not enabled/,
        'disable static NAT not enabled',
      );
      // Static NAT to a real VM (simulator driver): the association shows on the address.
      id.so = ok(await alice('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0].id;
      id.tpl = ok(await alice('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
      const vm = ok(
        await alice(
          'deployVirtualMachine',
          {
            serviceofferingid: id.so,
            templateid: id.tpl,
            zoneid: id.zone,
            networkids: id.net,
            name: 'natvm',
          },
          { fetch_result: true },
        ),
        'deployVirtualMachine',
      ).virtualmachine;
      ok(
        await alice('enableStaticNat', { ipaddressid: anyIp.ipaddress.id, virtualmachineid: vm.id }),
        'enableStaticNat',
      );
      const nat = ok(await alice('listPublicIpAddresses', { isstaticnat: true }), 'static NAT listed')
        .publicipaddress[0];
      assert.equal(nat.virtualmachineid, vm.id);
      assert.equal(nat.vmipaddress, vm.nic[0].ipaddress);
      refused(
        await alice('enableStaticNat', { ipaddressid: anyIp.ipaddress.id, virtualmachineid: vm.id }),
        431,
        /already enabled/,
        'static NAT twice',
      );
      ok(
        await alice('disableStaticNat', { ipaddressid: anyIp.ipaddress.id }, { fetch_result: true }),
        'disableStaticNat',
      );
      ok(
        await alice('disassociateIpAddress', { id: anyIp.ipaddress.id }, { fetch_result: true }),
        'disassociate',
      );

      const ded = ok(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '60',
          gateway: '192.0.2.1',
          netmask: '255.255.255.0',
          startip: '192.0.2.10',
          endip: '192.0.2.11',
        }),
        'dedicated range',
      );
      ok(
        await admin('dedicatePublicIpRange', { id: ded.vlan.id, domainid: id.root, account: 'bob' }),
        'dedicatePublicIpRange',
      );
      const b1 = ok(
        await bob('associateIpAddress', { zoneid: id.zone }, { fetch_result: true }),
        'bob associate',
      );
      assert.match(b1.ipaddress.ipaddress, /^192\.0\.2\.1[01]$/, 'the dedicated range is used first');
      refused(
        await admin('releasePublicIpRange', { id: id.range }),
        431,
        /not dedicated/,
        'release an undedicated range',
      );
      refused(
        await admin('deleteVlanIpRange', { id: ded.vlan.id }),
        431,
        /1 address in use/,
        'delete a range in use',
      );
      ok(
        await bob('disassociateIpAddress', { id: b1.ipaddress.id }, { fetch_result: true }),
        'bob disassociate',
      );
      ok(await admin('releasePublicIpRange', { id: ded.vlan.id }), 'releasePublicIpRange');
      ok(await admin('deleteVlanIpRange', { id: ded.vlan.id }), 'deleteVlanIpRange');

      // max.account.public.ips is a global setting (per-account limits are updateResourceLimit's).
      ok(
        await admin('updateConfiguration', { name: 'max.account.public.ips', value: '1' }),
        'updateConfiguration',
      );
      const first = ok(
        await bob('associateIpAddress', { zoneid: id.zone }, { fetch_result: true }),
        'bob first',
      );
      refused(
        await bob('associateIpAddress', { zoneid: id.zone }, { fetch_result: true }),
        532,
        /max\.account\.public\.ips/,
        'over the account limit',
      );
      ok(
        await bob('disassociateIpAddress', { id: first.ipaddress.id }, { fetch_result: true }),
        'bob release',
      );
      ok(await admin('resetConfiguration', { name: 'max.account.public.ips' }), 'resetConfiguration');
    });

    test('a range filled until exhaustion (533 naming the zone), one release, the freed address handed out again', async () => {
      const before = ok(await admin('listCapacity', { zoneid: id.zone, type: 4 }), 'capacity').capacity[0];
      assert.equal(before.capacitytotal, 10);
      const got: { id: string; ipaddress: string }[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await admin('associateIpAddress', { zoneid: id.zone }, { fetch_result: true });
        if (!r.ok) {
          // Taken at request time (AssociateIPAddrCmd is a BaseAsyncCreateCmd): a synchronous 533/4320 naming
          // the zone in the text and carrying its uuid in uuidList.
          const e = refused(r, 533, /zone zone-a has no free public IP address/, 'exhaustion');
          assert.equal(r.status, 533);
          assert.equal((e as { cserrorcode?: number }).cserrorcode, 4320);
          assert.deepEqual((e as { uuidList?: string[] }).uuidList, [id.zone]);
          break;
        }
        got.push(r.data.ipaddress);
      }
      assert.equal(
        got.length,
        10 - before.capacityused,
        'every free address handed out exactly once before 533',
      );
      assert.equal(new Set(got.map((g) => g.ipaddress)).size, got.length);
      const full = ok(await admin('listCapacity', { zoneid: id.zone, type: 4 }), 'capacity').capacity[0];
      assert.equal(full.capacityused, 10);
      assert.equal(full.percentused, '100');
      const listed = ok(
        await admin('listPublicIpAddresses', { zoneid: id.zone, listall: true }),
        'listPublicIpAddresses',
      );
      assert.equal(listed.count, 10);
      const freed = got[3]!;
      ok(await admin('disassociateIpAddress', { id: freed.id }, { fetch_result: true }), 'disassociate');
      assert.equal(
        ok(await admin('listCapacity', { zoneid: id.zone, type: 4 }), 'capacity').capacity[0].capacityused,
        9,
      );
      const again = ok(
        await admin('associateIpAddress', { zoneid: id.zone }, { fetch_result: true }),
        'associate again',
      );
      assert.equal(again.ipaddress.ipaddress, freed.ipaddress);
      // Public-IP events (resource type IpAddress; guest NIC addresses have their own) balance with what is held.
      const publicEvents = async (type: string): Promise<number> => {
        const r = ok(
          await admin('listEvents', { type, listall: true, pagesize: 500, page: 1 }),
          'listEvents',
        );
        return (r.event ?? []).filter((e: { resourcetype?: string }) => e.resourcetype === 'IpAddress')
          .length;
      };
      assert.equal(
        (await publicEvents('NET.IPASSIGN')) +
          (await publicEvents('NET.IPRESERVE')) -
          (await publicEvents('NET.IPRELEASE')),
        10,
        'events balance with what is allocated',
      );
      // Capacity figures of every type match what is allocated.
      const all = ok(await admin('listCapacity', { zoneid: id.zone }), 'listCapacity').capacity;
      const byType = new Map(all.map((c: { type: number }) => [c.type, c]));
      assert.deepEqual(
        [...byType.keys()].sort((a, b) => (a as number) - (b as number)),
        [4, 5, 7, 8, 10],
      );
      assert.equal((byType.get(5) as { capacitytotal: number }).capacitytotal, 50);
    });

    test('zones with contents are not deletable; an empty one is', async () => {
      refused(await admin('deleteZone', { id: id.zone }), 431, /not deletable/, 'deleteZone with contents');
      const z = ok(
        await admin('createZone', {
          name: 'empty',
          networktype: 'Advanced',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
        }),
        'createZone',
      );
      ok(await admin('deleteZone', { id: z.zone.id }), 'deleteZone');
    });
  });
}
