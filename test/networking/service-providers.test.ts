/**
 * Network service providers through python `cs` (issue 14: the UI lists them, and an operator enables and
 * disables them): a new physical network has VirtualRouter, VpcVirtualRouter and InternalLbVm; a network whose
 * provider is disabled is not implemented and the error names the provider; a provider in use can be neither
 * disabled nor deleted. On SQLite and PostgreSQL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, ServerProcess, CsBridge } from '../api/harness.js';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { createTestZone, createUserClient } from './zone-fixture.js';

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');

for (const kind of kinds) {
  describe(`network service providers with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: CsClient;
    let user: CsClient;
    let zone: string;
    let pn: string;
    const job = { fetch_result: true };

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      user = (await createUserClient(admin, (k, s) => bridge.client(server.url, k, s), 'nsp-user')).client;
      ({ zone, physicalNetwork: pn } = await createTestZone(admin, {
        name: 'nsp-zone',
        vlans: '500-509',
        publicVlan: '20',
        publicPrefix: '198.51.100',
        guestCidr: '10.9.0.0/16',
      }));
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    const providers = async () => {
      const r = ok(await admin('listNetworkServiceProviders', { physicalnetworkid: pn }), 'list');
      return new Map(
        (
          r.networkserviceprovider as { name: string; id: string; state: string; servicelist: string[] }[]
        ).map((p) => [p.name, p]),
      );
    };

    test('a new physical network has the router providers enabled and the internal LB disabled', async () => {
      const p = await providers();
      assert.deepEqual([...p.keys()].sort(), ['InternalLbVm', 'VirtualRouter', 'VpcVirtualRouter']);
      assert.equal(p.get('VirtualRouter')!.state, 'Enabled');
      assert.equal(p.get('VpcVirtualRouter')!.state, 'Enabled');
      assert.equal(p.get('InternalLbVm')!.state, 'Disabled');
      assert.ok(p.get('VpcVirtualRouter')!.servicelist.includes('NetworkACL'));
      assert.ok(!p.get('VirtualRouter')!.servicelist.includes('NetworkACL'));
      const vr = ok(await admin('listNetworkServiceProviders', { name: 'VirtualRouter' }), 'by name');
      assert.equal(vr.count, 1);
      assert.equal(vr.networkserviceprovider[0].physicalnetworkid, pn);
      assert.equal(vr.networkserviceprovider[0].canenableindividualservice, true);
      // What the UI asks to decide whether to show security groups: none here.
      assert.deepEqual(
        ok(
          await admin('listNetworkServiceProviders', { name: 'SecurityGroupProvider', state: 'Enabled' }),
          'security groups',
        ),
        {},
      );
      refused(await user('listNetworkServiceProviders', {}), 432, /does not exist/, 'a user');
      const sup = ok(
        await admin('listSupportedNetworkServices', { provider: 'VpcVirtualRouter' }),
        'listSupportedNetworkServices',
      );
      assert.ok(sup.networkservice.some((s: { name: string }) => s.name === 'NetworkACL'));
    });

    test('a disabled provider keeps its networks from being implemented, and says which provider', async () => {
      const vrId = (await providers()).get('VirtualRouter')!.id;
      const off = ok(
        await admin('updateNetworkServiceProvider', { id: vrId, state: 'Disabled' }, job),
        'disable',
      );
      assert.equal(off.networkserviceprovider.state, 'Disabled');
      const offering = ok(
        await admin('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
        'offering',
      ).networkoffering[0].id;
      const net = ok(
        await user('createNetwork', {
          zoneid: zone,
          name: 'n1',
          displaytext: 'n1',
          networkofferingid: offering,
        }),
        'createNetwork',
      ).network.id;
      refused(
        await user('restartNetwork', { id: net }, job),
        534,
        /Service provider VirtualRouter is Disabled in physical network nsp-zone-pn/,
        'implement on a disabled provider',
      );
      // Nothing was half-done: no VLAN and no public IP were taken.
      assert.equal(ok(await user('listNetworks', { id: net }), 'listNetworks').network[0].state, 'Allocated');
      assert.deepEqual(ok(await user('listPublicIpAddresses', {}), 'listPublicIpAddresses'), {});

      ok(await admin('updateNetworkServiceProvider', { id: vrId, state: 'Enabled' }, job), 'enable');
      ok(await user('restartNetwork', { id: net }, job), 'implement after enabling');
      assert.equal(
        ok(await user('listNetworks', { id: net }), 'listNetworks').network[0].state,
        'Implemented',
      );

      refused(
        await admin('updateNetworkServiceProvider', { id: vrId, state: 'Disabled' }, job),
        431,
        /1 network\(s\) of this physical network use VirtualRouter/,
        'disable in use',
      );
      refused(
        await admin('deleteNetworkServiceProvider', { id: vrId }, job),
        431,
        /use VirtualRouter; delete them first/,
        'delete in use',
      );
    });

    test('states, service lists and add/delete follow CloudStack’s rules', async () => {
      const p = await providers();
      refused(
        await admin('updateNetworkServiceProvider', { id: p.get('InternalLbVm')!.id, state: 'Enabled' }, job),
        431,
        /internal LB appliance is not available/,
        'enable the internal LB',
      );
      refused(
        await admin(
          'updateNetworkServiceProvider',
          { id: p.get('VpcVirtualRouter')!.id, state: 'Shutdown' },
          job,
        ),
        431,
        /does not shut a provider down/,
        'shutdown',
      );
      refused(
        await admin(
          'updateNetworkServiceProvider',
          { id: p.get('VpcVirtualRouter')!.id, servicelist: 'Dhcp' },
          job,
        ),
        431,
        /disable the provider before changing its services/,
        'servicelist while enabled',
      );
      const vpcId = p.get('VpcVirtualRouter')!.id;
      ok(
        await admin('updateNetworkServiceProvider', { id: vpcId, state: 'Disabled' }, job),
        'disable VPC VR',
      );
      refused(
        await admin('updateNetworkServiceProvider', { id: vpcId, servicelist: 'Dhcp,Teleport' }, job),
        431,
        /Teleport/,
        'unknown service',
      );
      const narrowed = ok(
        await admin('updateNetworkServiceProvider', { id: vpcId, servicelist: 'Dhcp,Dns,NetworkACL' }, job),
        'servicelist while disabled',
      );
      assert.deepEqual(narrowed.networkserviceprovider.servicelist, ['Dhcp', 'Dns', 'NetworkACL']);
      refused(
        await admin('addNetworkServiceProvider', { physicalnetworkid: pn, name: 'VpcVirtualRouter' }, job),
        431,
        /already has provider VpcVirtualRouter/,
        'duplicate',
      );
      refused(
        await admin('addNetworkServiceProvider', { physicalnetworkid: pn, name: 'Netscaler' }, job),
        431,
        /no such provider/,
        'unknown provider',
      );
      ok(await admin('deleteNetworkServiceProvider', { id: vpcId }, job), 'delete unused');
      assert.equal((await providers()).has('VpcVirtualRouter'), false);
      const added = ok(
        await admin('addNetworkServiceProvider', { physicalnetworkid: pn, name: 'VpcVirtualRouter' }, job),
        'add',
      );
      assert.equal(added.networkserviceprovider.state, 'Disabled');
      const events = ok(await admin('listEvents', { type: 'SERVICE.PROVIDER.DELETE' }), 'listEvents');
      assert.equal(events.count, 1);
    });
  });
}
