/**
 * Terraform's CloudStack provider (issue 14): the call sequences its cloudstack_network, cloudstack_ipaddress,
 * cloudstack_vpc and VPC-tier cloudstack_network resources make through the cloudstack-go SDK, with their tags,
 * replayed with python `cs` on SQLite and PostgreSQL. Each resource is created, read, updated where the provider
 * supports it, deleted, and read again after a delete made outside Terraform: the SDK's by-id lookup must then see
 * no match (count 0), also on its retry with projectid=-1, and a second delete must answer the "entity does not
 * exist" text the provider treats as already gone. Every answer carries the fields the provider reads.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, ServerProcess, CsBridge } from '../api/harness.js';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { createTestZone, createUserClient } from '../networking/zone-fixture.js';
import { carries, job, sdkSteps } from './terraform-sdk.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');
/** The provider's tags map from a response's `tags` list. */
const tagMap = (o: any) => Object.fromEntries((o.tags ?? []).map((t: any) => [t.key, t.value]));

/** tags[n].key/value parameters, as the SDK sends a map. */
const tagParams = (tags: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(tags).flatMap(([k, v], i) => [
      [`tags[${i}].key`, k],
      [`tags[${i}].value`, v],
    ]),
  );

for (const kind of kinds) {
  describe(`Terraform provider call sequences with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: CsClient;
    let alice: CsClient;
    const zoneName = 'tf-zone';
    let zone: string;

    let steps: ReturnType<typeof sdkSteps>;
    const idByName = (c: string, k: string, n: string) => steps.idByName(c, k, n);
    const goneFromReads = (c: string, id: string) => steps.goneFromReads(c, id);
    const alreadyGone = (c: string, id: string) => steps.alreadyGone(c, id);

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      alice = (await createUserClient(admin, (k, s) => bridge.client(server.url, k, s), 'tf-alice')).client;
      steps = sdkSteps(alice);
      zone = (
        await createTestZone(admin, {
          name: zoneName,
          vlans: '720-739',
          publicVlan: '41',
          publicPrefix: '198.51.100',
          guestCidr: '10.30.0.0/16',
        })
      ).zone;
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    test('cloudstack_network with source_nat_ip and tags: create, read, update, delete, read after', async () => {
      // Create: offering and zone by name, the offering read for specifyipranges, gateway/netmask from cidr.
      const offering = await idByName(
        'listNetworkOfferings',
        'networkoffering',
        'DefaultIsolatedNetworkOfferingWithSourceNatService',
      );
      assert.equal(await idByName('listZones', 'zone', zoneName), zone);
      const no = ok(await alice('listNetworkOfferings', { id: offering }), 'listNetworkOfferings id');
      assert.equal(no.count, 1);
      assert.equal(typeof no.networkoffering[0].specifyipranges, 'boolean');
      const created = ok(
        await alice('createNetwork', {
          name: 'tf-net',
          displaytext: 'tf-net',
          networkofferingid: offering,
          zoneid: zone,
          gateway: '10.30.1.1',
          netmask: '255.255.255.0',
        }),
        'createNetwork',
      ).network;
      carries(created, ['id'], 'createNetwork');
      const id = created.id as string;
      ok(
        await alice(
          'createTags',
          { resourceids: id, resourcetype: 'network', ...tagParams({ env: 'test', owner: 'tf' }) },
          job,
        ),
        'createTags',
      );
      const ip = ok(
        await alice('associateIpAddress', { networkid: id, zoneid: zone }, job),
        'associateIpAddress',
      ).ipaddress;
      carries(ip, ['id', 'ipaddress'], 'associateIpAddress');

      // Read.
      const read = async () => {
        const r = ok(await alice('listNetworks', { id }), 'listNetworks id');
        assert.equal(r.count, 1);
        const n = r.network[0];
        carries(
          n,
          ['id', 'name', 'displaytext', 'cidr', 'gateway', 'networkdomain', 'networkofferingid'],
          'listNetworks',
        );
        carries(n, ['networkofferingname', 'zoneid', 'zonename'], 'listNetworks');
        assert.equal(n.cidr, '10.30.1.0/24');
        assert.equal(n.gateway, '10.30.1.1');
        assert.equal(n.networkofferingid, offering);
        assert.equal(n.networkofferingname, 'DefaultIsolatedNetworkOfferingWithSourceNatService');
        assert.equal(n.zoneid, zone);
        assert.equal(n.zonename, zoneName);
        assert.equal(n.vpcid, undefined, 'no vpcid outside a VPC');
        const pip = ok(await alice('listPublicIpAddresses', { id: ip.id }), 'listPublicIpAddresses id');
        assert.equal(pip.count, 1);
        assert.equal(pip.publicipaddress[0].associatednetworkid, id);
        return n;
      };
      const first = await read();
      assert.equal(first.name, 'tf-net');
      assert.deepEqual(tagMap(first), { env: 'test', owner: 'tf' });

      // Update: name, display text and network domain; then the tag diff (removed first, then added).
      ok(
        await alice(
          'updateNetwork',
          { id, name: 'tf-net-2', displaytext: 'second', networkdomain: 'tf.example' },
          job,
        ),
        'updateNetwork',
      );
      ok(
        await alice(
          'deleteTags',
          { resourceids: id, resourcetype: 'Network', ...tagParams({ owner: 'tf' }) },
          job,
        ),
        'deleteTags',
      );
      ok(
        await alice(
          'createTags',
          { resourceids: id, resourcetype: 'Network', ...tagParams({ tier: 'web' }) },
          job,
        ),
        'createTags update',
      );
      const second = await read();
      assert.equal(second.name, 'tf-net-2');
      assert.equal(second.displaytext, 'second');
      assert.equal(second.networkdomain, 'tf.example');
      assert.deepEqual(tagMap(second), { env: 'test', tier: 'web' });

      // Delete, as done outside Terraform; then the provider's read and delete see it gone.
      ok(await alice('deleteNetwork', { id }, job), 'deleteNetwork');
      await goneFromReads('listNetworks', id);
      await goneFromReads('listPublicIpAddresses', ip.id);
      await alreadyGone('deleteNetwork', id);
    });

    test('cloudstack_ipaddress on a network: create, read, delete, read after', async () => {
      const offering = await idByName(
        'listNetworkOfferings',
        'networkoffering',
        'DefaultIsolatedNetworkOfferingWithSourceNatService',
      );
      const net = ok(
        await alice('createNetwork', {
          name: 'tf-ipnet',
          displaytext: 'tf-ipnet',
          networkofferingid: offering,
          zoneid: zone,
          gateway: '10.30.2.1',
          netmask: '255.255.255.0',
        }),
        'createNetwork',
      ).network.id as string;
      // The network's first address becomes its source NAT (as CloudStack does; cloudstack_network's
      // source_nat_ip acquires it); the cloudstack_ipaddress resource gets the next one.
      const snat = ok(await alice('associateIpAddress', { networkid: net }, job), 'source NAT').ipaddress;
      assert.equal(snat.issourcenat, true);
      const id = ok(await alice('associateIpAddress', { networkid: net }, job), 'associateIpAddress')
        .ipaddress.id as string;
      const r = ok(await alice('listPublicIpAddresses', { id }), 'listPublicIpAddresses id');
      assert.equal(r.count, 1);
      const a = r.publicipaddress[0];
      carries(a, ['ipaddress', 'associatednetworkid', 'zoneid', 'zonename'], 'listPublicIpAddresses');
      assert.equal(a.associatednetworkid, net);
      assert.equal(a.zonename, zoneName);
      assert.match(a.ipaddress, /^198\.51\.100\.\d+$/);
      // Tags on a public IP, as other resources put them there.
      ok(
        await alice(
          'createTags',
          { resourceids: id, resourcetype: 'PublicIpAddress', ...tagParams({ k: 'v' }) },
          job,
        ),
        'createTags ip',
      );
      assert.deepEqual(
        tagMap(ok(await alice('listPublicIpAddresses', { id }), 'tagged ip').publicipaddress[0]),
        { k: 'v' },
      );

      ok(await alice('disassociateIpAddress', { id }, job), 'disassociateIpAddress');
      await goneFromReads('listPublicIpAddresses', id);
      await alreadyGone('disassociateIpAddress', id);
      ok(await alice('deleteNetwork', { id: net }, job), 'deleteNetwork');
    });

    test('cloudstack_vpc, a VPC tier and an IP in the VPC: create, read, update, delete, read after', async () => {
      const vpcOffering = await idByName('listVPCOfferings', 'vpcoffering', 'Default VPC offering');
      const v = ok(
        await alice(
          'createVPC',
          {
            displaytext: 'tf-vpc',
            name: 'tf-vpc',
            vpcofferingid: vpcOffering,
            zoneid: zone,
            cidr: '10.40.0.0/16',
          },
          job,
        ),
        'createVPC',
      ).vpc;
      carries(v, ['id'], 'createVPC');
      const vpc = v.id as string;
      ok(
        await alice(
          'createTags',
          { resourceids: vpc, resourcetype: 'Vpc', ...tagParams({ env: 'test' }) },
          job,
        ),
        'createTags vpc',
      );

      const readVpc = async () => {
        const r = ok(await alice('listVPCs', { id: vpc }), 'listVPCs id');
        assert.equal(r.count, 1);
        const got = r.vpc[0];
        carries(
          got,
          ['name', 'displaytext', 'cidr', 'networkdomain', 'vpcofferingid', 'zoneid', 'zonename'],
          'listVPCs',
        );
        assert.equal(got.cidr, '10.40.0.0/16');
        assert.equal(got.vpcofferingid, vpcOffering);
        const o = ok(await alice('listVPCOfferings', { id: got.vpcofferingid }), 'listVPCOfferings id');
        assert.equal(o.count, 1);
        assert.equal(o.vpcoffering[0].name, 'Default VPC offering');
        const snat = ok(
          await alice('listPublicIpAddresses', { vpcid: vpc, issourcenat: true }),
          'listPublicIpAddresses vpcid issourcenat',
        );
        assert.equal(snat.count, 1, `the VPC's source NAT IP: ${JSON.stringify(snat)}`);
        carries(snat.publicipaddress[0], ['ipaddress'], 'source NAT IP');
        return got;
      };
      const first = await readVpc();
      assert.equal(first.name, 'tf-vpc');
      assert.deepEqual(tagMap(first), { env: 'test' });

      // The provider updates the name and the display text in two calls.
      ok(await alice('updateVPC', { id: vpc, name: 'tf-vpc-2' }, job), 'updateVPC name');
      ok(await alice('updateVPC', { id: vpc, displaytext: 'second' }, job), 'updateVPC displaytext');
      ok(
        await alice(
          'deleteTags',
          { resourceids: vpc, resourcetype: 'Vpc', ...tagParams({ env: 'test' }) },
          job,
        ),
        'deleteTags vpc',
      );
      const second = await readVpc();
      assert.equal(second.name, 'tf-vpc-2');
      assert.equal(second.displaytext, 'second');
      assert.deepEqual(tagMap(second), {});

      // A tier: cloudstack_network with vpc_id (no acl_id), tagged.
      const tierOffering = await idByName(
        'listNetworkOfferings',
        'networkoffering',
        'DefaultIsolatedNetworkOfferingForVpcNetworks',
      );
      const tier = ok(
        await alice('createNetwork', {
          name: 'tf-tier',
          displaytext: 'tf-tier',
          networkofferingid: tierOffering,
          zoneid: zone,
          gateway: '10.40.1.1',
          netmask: '255.255.255.0',
          vpcid: vpc,
        }),
        'createNetwork tier',
      ).network.id as string;
      ok(
        await alice(
          'createTags',
          { resourceids: tier, resourcetype: 'network', ...tagParams({ role: 'app' }) },
          job,
        ),
        'createTags tier',
      );
      const t = ok(await alice('listNetworks', { id: tier }), 'listNetworks tier').network[0];
      carries(t, ['name', 'displaytext', 'cidr', 'gateway', 'networkdomain', 'vpcid'], 'tier');
      carries(t, ['networkofferingid', 'networkofferingname', 'zoneid', 'zonename'], 'tier');
      assert.equal(t.vpcid, vpc);
      // Created without acl_id, the tier has no ACL list yet (as in CloudStack 4.18): no aclid, which the
      // provider reads as its default "none".
      assert.equal(t.aclid, undefined);
      assert.equal(t.cidr, '10.40.1.0/24');
      assert.deepEqual(tagMap(t), { role: 'app' });
      ok(
        await alice('updateNetwork', { id: tier, name: 'tf-tier-2', displaytext: 'tf-tier-2' }, job),
        'update tier',
      );
      assert.equal(ok(await alice('listNetworks', { id: tier }), 'tier again').network[0].name, 'tf-tier-2');

      // cloudstack_ipaddress with vpc_id.
      const ipId = ok(await alice('associateIpAddress', { vpcid: vpc }, job), 'associateIpAddress vpc')
        .ipaddress.id as string;
      const a = ok(await alice('listPublicIpAddresses', { id: ipId }), 'vpc ip').publicipaddress[0];
      carries(a, ['ipaddress', 'vpcid', 'zoneid', 'zonename'], 'VPC public IP');
      assert.equal(a.vpcid, vpc);
      ok(await alice('disassociateIpAddress', { id: ipId }, job), 'disassociate vpc ip');
      await goneFromReads('listPublicIpAddresses', ipId);

      // Deletes: the tier, then the VPC; reads after see them gone, and repeated deletes are tolerated.
      ok(await alice('deleteNetwork', { id: tier }, job), 'deleteNetwork tier');
      await goneFromReads('listNetworks', tier);
      await alreadyGone('deleteNetwork', tier);
      ok(await alice('deleteVPC', { id: vpc }, job), 'deleteVPC');
      const r = ok(await alice('listVPCs', { id: vpc }), 'listVPCs after');
      assert.equal(r.count ?? 0, 0);
      await alreadyGone('deleteVPC', vpc);
    });
  });
}
