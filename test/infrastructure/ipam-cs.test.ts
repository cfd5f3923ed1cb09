/**
 * Issue 20, address management as CloudStack's own integration tests expect it, with the python `cs` client on
 * SQLite and PostgreSQL: several subnets on one public VLAN (test_public_ip_range), IPv6 public ranges that must
 * be a /64, dedicated guest VLAN ranges honoured when networks are implemented (test_guest_vlan_range), and guest
 * IPv6 prefixes whose /64s DualStack isolated networks and VPC tiers take and give back, counted by listCapacity
 * type 10 (test_ipv6_infra) — each with its refusals (431), the admin-only commands a user cannot see (432, as
 * CloudStack answers them) and exhaustion.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient as Client, ServerProcess, CsBridge } from '../api/harness.js';

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');
const job = { fetch_result: true };

for (const kind of kinds) {
  describe(`issue 20 address management with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: Client;
    const users: Record<string, Client> = {};
    const id: Record<string, string> = {};

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      id.root = ok(await admin('listDomains', {}), 'listDomains').domain[0].id as string;
      for (const name of ['alice', 'bob', 'carol']) {
        const a = ok(
          await admin('createAccount', {
            username: name,
            password: 'pw',
            email: `${name}@example.org`,
            firstname: name,
            lastname: 'x',
            accounttype: 0,
            domainid: id.root,
          }),
          `createAccount ${name}`,
        );
        const keys = ok(await admin('registerUserKeys', { id: a.account.user[0].id }), 'registerUserKeys');
        const k = keys.userkeys ?? keys;
        users[name] = bridge.client(server.url, k.apikey, k.secretkey);
      }
      const z = ok(
        await admin('createZone', {
          name: 'zone-20',
          networktype: 'Advanced',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
          guestcidraddress: '10.1.0.0/16',
        }),
        'createZone',
      );
      id.zone = z.zone.id;
      ok(
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
      const pn = ok(
        await admin('createPhysicalNetwork', { zoneid: id.zone, name: 'pn1', vlan: '500-519' }, job),
        'createPhysicalNetwork',
      );
      id.pn = pn.physicalnetwork.id;
      for (const t of ['Guest', 'Public', 'Management']) {
        ok(await admin('addTrafficType', { physicalnetworkid: id.pn, traffictype: t }, job), `traffic ${t}`);
      }
      ok(await admin('updatePhysicalNetwork', { id: id.pn, state: 'Enabled' }, job), 'enable pn');
      const offerings = ok(await admin('listNetworkOfferings', {}), 'listNetworkOfferings').networkoffering;
      id.isoOffering = offerings.find(
        (o: { name: string }) => o.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService',
      ).id;
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    const network = async (who: string, name: string, offering = id.isoOffering!, extra = {}) =>
      ok(
        await users[who]!('createNetwork', {
          zoneid: id.zone,
          name,
          displaytext: name,
          networkofferingid: offering,
          ...extra,
        }),
        `createNetwork ${name}`,
      ).network;
    const implement = async (who: string, netId: string) => {
      ok(await users[who]!('restartNetwork', { id: netId }, job), `restartNetwork ${netId}`);
      return ok(await users[who]!('listNetworks', { id: netId }), 'listNetworks').network[0];
    };

    test('item 1: a second subnet on a public VLAN is accepted; overlaps are refused as CloudStack does', async () => {
      const first = ok(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '10',
          gateway: '203.0.113.1',
          netmask: '255.255.255.0',
          startip: '203.0.113.10',
          endip: '203.0.113.20',
          forvirtualnetwork: true,
        }),
        'first subnet on VLAN 10',
      ).vlan;
      const second = ok(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '10',
          gateway: '172.1.1.1',
          netmask: '255.255.255.0',
          startip: '172.1.1.10',
          endip: '172.1.1.20',
          forvirtualnetwork: true,
        }),
        'second subnet on VLAN 10',
      ).vlan;
      id.secondRange = second.id;
      assert.equal(second.vlan, 'vlan://10');
      assert.equal(second.cidr, '172.1.1.0/24');
      assert.equal(second.gateway, '172.1.1.1');
      const listed = ok(await admin('listVlanIpRanges', { zoneid: id.zone, vlan: '10' }), 'list VLAN 10');
      assert.equal(listed.count, 2);
      // The same subnet extended on its VLAN, with its gateway and netmask: fine.
      ok(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '10',
          gateway: '203.0.113.1',
          netmask: '255.255.255.0',
          startip: '203.0.113.30',
          endip: '203.0.113.40',
        }),
        'extending the first subnet',
      );
      refused(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '10',
          gateway: '203.0.113.1',
          netmask: '255.255.254.0',
          startip: '203.0.112.10',
          endip: '203.0.112.20',
        }),
        431,
        /overlaps 203\.0\.113\.0\/24 already added on vlan:\/\/10 with gateway 203\.0\.113\.1 and netmask 255\.255\.255\.0/,
        'an overlapping subnet with another netmask on the same VLAN',
      );
      refused(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '10',
          gateway: '203.0.113.1',
          netmask: '255.255.255.0',
          startip: '203.0.113.15',
          endip: '203.0.113.25',
        }),
        431,
        /overlaps the existing range 203\.0\.113\.10-203\.0\.113\.20/,
        'an overlapping address range',
      );
      refused(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '11',
          gateway: '172.1.1.1',
          netmask: '255.255.255.0',
          startip: '172.1.1.100',
          endip: '172.1.1.110',
        }),
        431,
        /the subnet 172\.1\.1\.0\/24 overlaps 172\.1\.1\.0\/24 of the range on vlan:\/\/10/,
        'the same subnet on another VLAN',
      );
      refused(
        await users.alice!('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '12',
          gateway: '198.51.100.1',
          netmask: '255.255.255.0',
          startip: '198.51.100.10',
          endip: '198.51.100.20',
        }),
        432,
        /is not available for the user/,
        'a user creating a public range',
      );
      // Downstream: a source NAT address from the second subnet is shown with its own range.
      ok(
        await admin('dedicatePublicIpRange', { id: second.id, account: 'carol', domainid: id.root }),
        'dedicate the second subnet to carol',
      );
      const net = await network('carol', 'carol-net');
      await implement('carol', net.id);
      const ips = ok(
        await users.carol!('listPublicIpAddresses', { associatednetworkid: net.id }),
        'carol IPs',
      );
      const snat = ips.publicipaddress.find((x: { issourcenat: boolean }) => x.issourcenat);
      assert.match(snat.ipaddress, /^172\.1\.1\./);
      assert.equal(snat.vlanid, second.id);
      assert.equal(snat.vlanname, 'vlan://10');
      assert.notEqual(first.id, second.id);
    });

    test('item 4: IPv6 public ranges must be a /64 with the gateway and addresses inside it', async () => {
      const base = { zoneid: id.zone, vlan: '20', forvirtualnetwork: true };
      refused(
        await admin('createVlanIpRange', {
          ...base,
          ip6gateway: 'fd17:ac56:1234:2000::1',
          ip6cidr: 'fd17:ac56:1234:2000::/72',
        }),
        431,
        /ip6cidr.*must be 64 bits/,
        'a /72 public IPv6 range',
      );
      refused(
        await admin('createVlanIpRange', {
          ...base,
          ip6gateway: 'fd17:ac56:1234:2001::1',
          ip6cidr: 'fd17:ac56:1234:2000::/64',
        }),
        431,
        /ip6gateway.*not inside fd17:ac56:1234:2000::\/64/,
        'a gateway outside the cidr',
      );
      refused(
        await admin('createVlanIpRange', {
          ...base,
          ip6gateway: 'fd17:ac56:1234:2000::1',
          ip6cidr: 'fd17:ac56:1234:2000::/64',
          startipv6: 'fd17:ac56:1234:2001::10',
        }),
        431,
        /startipv6/,
        'addresses outside the cidr',
      );
      refused(
        await admin('createVlanIpRange', { ...base, ip6cidr: 'fd17:ac56:1234:2000::/64' }),
        431,
        /ip6gateway and ip6cidr must be given together/,
        'a cidr without gateway',
      );
      const v6 = ok(
        await admin('createVlanIpRange', {
          ...base,
          ip6gateway: 'fd17:ac56:1234:2000::1',
          ip6cidr: 'fd17:ac56:1234:2000::/64',
          startipv6: 'fd17:ac56:1234:2000::10',
          endipv6: 'fd17:ac56:1234:2000::ff',
        }),
        'a /64 public IPv6 range',
      ).vlan;
      assert.equal(v6.ip6cidr, 'fd17:ac56:1234:2000::/64');
      refused(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '21',
          ip6gateway: 'fd17:ac56:1234:2000::1',
          ip6cidr: 'fd17:ac56:1234:2000::/64',
        }),
        431,
        /IPv6 subnet overlaps fd17:ac56:1234:2000::\/64 of the range on vlan:\/\/20/,
        'the same IPv6 subnet on another VLAN',
      );
      ok(await admin('deleteVlanIpRange', { id: v6.id }), 'delete the IPv6 range');
    });

    test('dedicated guest VLAN ranges: refusals, listing, merging, and honoured by networks', async () => {
      const d = ok(
        await admin('dedicateGuestVlanRange', {
          vlanrange: '501-503',
          physicalnetworkid: id.pn,
          account: 'bob',
          domainid: id.root,
        }),
        'dedicate 501-503 to bob',
      ).dedicatedguestvlanrange;
      assert.equal(d.guestvlanrange, '501-503');
      assert.equal(d.account, 'bob');
      assert.equal(d.domainid, id.root);
      assert.equal(typeof d.physicalnetworkid, 'number');
      assert.equal(typeof d.zoneid, 'number');
      id.dedication = d.id;
      const pnArgs = { physicalnetworkid: id.pn, account: 'carol', domainid: id.root };
      refused(
        await admin('dedicateGuestVlanRange', { ...pnArgs, vlanrange: '600-610' }),
        431,
        /not inside one of the guest VLAN ranges of physical network 'pn1' \(500-519\)/,
        'a range outside the physical network',
      );
      refused(
        await admin('dedicateGuestVlanRange', { ...pnArgs, vlanrange: '502-504' }),
        431,
        /already dedicated \(501-503/,
        'a range overlapping a dedication',
      );
      refused(
        await admin('dedicateGuestVlanRange', { ...pnArgs, vlanrange: '505' }),
        431,
        /startvlan-endvlan/,
        'a malformed range',
      );
      refused(
        await admin('dedicateGuestVlanRange', { physicalnetworkid: id.pn, vlanrange: '505-506' }),
        431,
        /account/,
        'no owner',
      );
      refused(
        await users.bob!('dedicateGuestVlanRange', { ...pnArgs, vlanrange: '505-506' }),
        432,
        /is not available for the user/,
        'a user dedicating',
      );
      refused(
        await users.bob!('listDedicatedGuestVlanRanges', {}),
        432,
        /listDedicatedGuestVlanRanges does not exist or it is not available for the user/,
        'a user listing dedications',
      );

      // Carol's network (item 1) took VLAN 500 before any dedication.
      const carolNet = ok(await users.carol!('listNetworks', {}), 'carol networks').network[0];
      assert.equal(carolNet.vlan, '500');
      // Bob's networks take his dedicated VLANs first; alice's never do.
      const aliceNet = await implement('alice', (await network('alice', 'alice-net')).id);
      assert.equal(aliceNet.vlan, '504');
      const bobNet = await implement('bob', (await network('bob', 'bob-net')).id);
      assert.equal(bobNet.vlan, '501');
      refused(
        await admin('dedicateGuestVlanRange', { ...pnArgs, vlanrange: '504-506' }),
        431,
        /guest VLAN 504 of the range is allocated to a different account/,
        "a range holding another account's VLAN",
      );
      // Adjacent dedications of one account become one range, as in CloudStack.
      ok(
        await admin('dedicateGuestVlanRange', { ...pnArgs, vlanrange: '510-511' }),
        'dedicate 510-511 to carol',
      );
      const merged = ok(
        await admin('dedicateGuestVlanRange', { ...pnArgs, vlanrange: '512-513' }),
        'dedicate 512-513 to carol',
      ).dedicatedguestvlanrange;
      assert.equal(merged.guestvlanrange, '510-513');
      const all = ok(await admin('listDedicatedGuestVlanRanges', { physicalnetworkid: id.pn }), 'list');
      assert.equal(all.count, 2);
      const mine = ok(
        await admin('listDedicatedGuestVlanRanges', { account: 'carol', domainid: id.root }),
        'list carol',
      );
      assert.deepEqual(
        mine.dedicatedguestvlanrange.map((x: { guestvlanrange: string }) => x.guestvlanrange),
        ['510-513'],
      );
      assert.equal(
        ok(await admin('listDedicatedGuestVlanRanges', { guestvlanrange: '501-503' }), 'by range').count,
        1,
      );
      refused(
        await admin('createNetwork', {
          zoneid: id.zone,
          name: 'sh',
          displaytext: 'sh',
          networkofferingid: ok(
            await admin('listNetworkOfferings', { name: 'DefaultSharedNetworkOffering' }),
            'o',
          ).networkoffering[0].id,
          vlan: '511',
          gateway: '198.19.0.1',
          netmask: '255.255.255.0',
          startip: '198.19.0.10',
          endip: '198.19.0.20',
        }),
        431,
        /VLAN 511 is dedicated to another account/,
        'an admin-chosen VLAN dedicated to somebody else',
      );
      refused(
        await admin('updatePhysicalNetwork', { id: id.pn, vlan: '500-509' }, job),
        431,
        /510-513 is dedicated/,
        'shrinking the physical network under a dedication',
      );
      ok(await admin('releaseDedicatedGuestVlanRange', { id: merged.id }, job), 'release 510-513');
      refused(
        await admin('releaseDedicatedGuestVlanRange', { id: merged.id }, job),
        431,
        /no dedicated guest VLAN range has this id/,
        'releasing twice',
      );
      assert.equal(ok(await admin('listDedicatedGuestVlanRanges', {}), 'list after').count, 1);
      for (const type of ['GUEST.VLAN.RANGE.DEDICATE', 'GUEST.VLAN.RANGE.RELEASE']) {
        const ev = ok(await admin('listEvents', { type, listall: true }), `events ${type}`);
        assert.ok(ev.count >= 1, `an event ${type}`);
      }
    });

    test('guest IPv6 prefixes: /64s for DualStack networks and VPC tiers, exhaustion, capacity type 10', async () => {
      refused(
        await admin(
          'createGuestNetworkIpv6Prefix',
          { zoneid: id.zone, prefix: 'fd17:ac56:1234:1000::/72' },
          job,
        ),
        431,
        /must be \/64 or shorter/,
        'a /72 prefix',
      );
      refused(
        await users.alice!(
          'createGuestNetworkIpv6Prefix',
          { zoneid: id.zone, prefix: 'fd17:ac56:1234::/56' },
          job,
        ),
        432,
        /is not available for the user/,
        'a user adding a prefix',
      );
      const pfx = ok(
        await admin(
          'createGuestNetworkIpv6Prefix',
          { zoneid: id.zone, prefix: 'fd17:ac56:1234:1000::/63' },
          job,
        ),
        'createGuestNetworkIpv6Prefix',
      ).guestnetworkipv6prefix;
      assert.equal(pfx.prefix, 'fd17:ac56:1234:1000::/63');
      assert.equal(pfx.zoneid, id.zone);
      assert.equal(pfx.totalsubnets, 2);
      assert.equal(pfx.usedsubnets, 0);
      assert.equal(pfx.availablesubnets, 2);
      assert.match(pfx.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/);
      refused(
        await admin(
          'createGuestNetworkIpv6Prefix',
          { zoneid: id.zone, prefix: 'fd17:ac56:1234:1000::/56' },
          job,
        ),
        431,
        /overlaps the existing IPv6 prefix fd17:ac56:1234:1000::\/63/,
        'an overlapping prefix',
      );
      const big = ok(
        await admin('createGuestNetworkIpv6Prefix', { zoneid: id.zone, prefix: 'fd17:ac56:9999::/56' }, job),
        'a /56',
      ).guestnetworkipv6prefix;
      assert.equal(big.totalsubnets, 256);
      ok(await admin('deleteGuestNetworkIpv6Prefix', { id: big.id }, job), 'delete the unused /56');

      const dualOffering = {
        name: 'iso-dualstack',
        displaytext: 'dual stack',
        guestiptype: 'Isolated',
        traffictype: 'GUEST',
        supportedservices: 'Dhcp,Dns,SourceNat',
        internetprotocol: 'dualstack',
        enable: true,
      };
      // CloudStack's default: no IPv6 offerings until an admin allows them.
      refused(
        await admin('createNetworkOffering', dualOffering),
        431,
        /ipv6\.offering\.enabled/,
        'DualStack while ipv6.offering.enabled is false',
      );
      ok(
        await admin('updateConfiguration', { name: 'ipv6.offering.enabled', value: 'true' }),
        'allow IPv6 offerings',
      );
      const dual = ok(
        await admin('createNetworkOffering', {
          name: 'iso-dualstack',
          displaytext: 'dual stack',
          guestiptype: 'Isolated',
          traffictype: 'GUEST',
          supportedservices: 'Dhcp,Dns,SourceNat',
          internetprotocol: 'dualstack',
          enable: true,
        }),
        'a DualStack offering',
      ).networkoffering;
      assert.equal(dual.internetprotocol, 'DualStack');
      refused(
        await admin('createNetworkOffering', {
          name: 'l2-dual',
          displaytext: 'x',
          guestiptype: 'L2',
          traffictype: 'GUEST',
          internetprotocol: 'dualstack',
        }),
        431,
        /internetprotocol/,
        'DualStack for an L2 offering',
      );
      const vpcOffering = ok(
        await admin('createNetworkOffering', {
          name: 'tier-dualstack',
          displaytext: 'tier',
          guestiptype: 'Isolated',
          traffictype: 'GUEST',
          forvpc: true,
          supportedservices: 'Dhcp,Dns',
          internetprotocol: 'DualStack',
          enable: true,
        }),
        'a DualStack VPC tier offering',
      ).networkoffering;

      const n1 = await implement('alice', (await network('alice', 'v6-a', dual.id)).id);
      assert.equal(n1.ip6cidr, 'fd17:ac56:1234:1000::/64');
      assert.equal(n1.ip6gateway, 'fd17:ac56:1234:1000::1');
      const vpc = ok(
        await users.alice!(
          'createVPC',
          {
            zoneid: id.zone,
            name: 'vpc6',
            displaytext: 'vpc6',
            cidr: '10.20.0.0/16',
            vpcofferingid: ok(await users.alice!('listVPCOfferings', {}), 'vpc offerings').vpcoffering[0].id,
          },
          job,
        ),
        'createVPC',
      ).vpc;
      const tier = await implement(
        'alice',
        (
          await network('alice', 'tier6', vpcOffering.id, {
            vpcid: vpc.id,
            gateway: '10.20.1.1',
            netmask: '255.255.255.0',
          })
        ).id,
      );
      assert.equal(tier.ip6cidr, 'fd17:ac56:1234:1001::/64');
      const cap = async () =>
        ok(await admin('listCapacity', { zoneid: id.zone, type: 10 }), 'listCapacity type 10').capacity[0];
      let c = await cap();
      assert.equal(c.type, 10);
      assert.equal(c.name, 'VIRTUAL_NETWORK_IPV6_SUBNET');
      assert.equal(c.capacitytotal, 2);
      assert.equal(c.capacityused, 2);
      assert.equal(c.percentused, '100');
      const listed = ok(await admin('listGuestNetworkIpv6Prefixes', { zoneid: id.zone }), 'list prefixes');
      assert.equal(listed.count, 1);
      assert.equal(listed.guestnetworkipv6prefix[0].usedsubnets, 2);
      assert.equal(listed.guestnetworkipv6prefix[0].availablesubnets, 0);

      // Exhausted: CloudStack's preAllocateIpv6SubnetForNetwork fails with a ResourceAllocationException (535).
      const n3 = await network('bob', 'v6-b', dual.id);
      refused(
        await users.bob!('restartNetwork', { id: n3.id }, job),
        535,
        /Unable to allocate IPv6 network/,
        'a third /64 from a prefix of two',
      );
      refused(
        await admin('deleteGuestNetworkIpv6Prefix', { id: pfx.id }, job),
        530,
        /Prefix subnets are in use/,
        'deleting a prefix in use',
      );
      // An IPv4 network takes nothing from the prefixes.
      const v4 = await implement('alice', (await network('alice', 'v4-only')).id);
      assert.equal(v4.ip6cidr, undefined);

      ok(await users.alice!('deleteNetwork', { id: n1.id }, job), 'delete the first IPv6 network');
      c = await cap();
      assert.equal(c.capacityused, 1);
      const again = await implement('bob', n3.id);
      assert.equal(again.ip6cidr, 'fd17:ac56:1234:1000::/64', 'the freed /64 is handed out again');
      ok(await users.bob!('deleteNetwork', { id: n3.id }, job), 'delete bob IPv6 network');
      ok(await users.alice!('deleteNetwork', { id: tier.id }, job), 'delete the tier');
      assert.equal((await cap()).capacityused, 0);
      ok(await admin('deleteGuestNetworkIpv6Prefix', { id: pfx.id }, job), 'delete the freed prefix');
      assert.equal(ok(await admin('listGuestNetworkIpv6Prefixes', {}), 'list after').count ?? 0, 0);
      const ev = ok(await admin('listEvents', { type: 'GUEST.IP6.PREFIX.DELETE', listall: true }), 'events');
      assert.equal(ev.count, 2);
    });
  });
}
