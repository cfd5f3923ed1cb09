/**
 * What a router holds on its public side changes only with a new generation (DESIGN.md guarantee 5): through the
 * API (python `cs`, simulator driver), every associate, enableStaticNat, disableStaticNat and disassociate moves
 * the network's router's desired generation, and in a VPC a tier's router coming or going moves every tier's
 * (the edge tier, which holds the VPC's public IPs, may change).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import { ok, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsRig } from '../api/harness.js';
import { createTestVpc, createTestZone } from './zone-fixture.js';

for (const kind of testDbKinds()) {
  describe(`public IP changes bump the routers' generations (${kind})`, () => {
    let rig: Partial<CsRig> = {};
    const id: Record<string, string> = {};
    const deploy = async (name: string, networkid: string) =>
      ok(
        await rig.admin!(
          'deployVirtualMachine',
          { serviceofferingid: id.so, templateid: id.tpl, zoneid: id.zone, networkids: networkid, name },
          { fetch_result: true },
        ),
        `deploy ${name}`,
      ).virtualmachine as { id: string };
    /** The desired generation of the network's (one) router. */
    const generation = async (networkid: string): Promise<number> => {
      const r = ok(await rig.admin!('listRouters', { networkid, listall: true }), 'listRouters').router;
      assert.equal(r?.length, 1, `one router in ${networkid}`);
      return Number(r[0].desiredgeneration);
    };

    before(async () => {
      rig = await startCsRig(kind);
      const admin = rig.admin!;
      id.zone = (
        await createTestZone(admin, {
          name: 'z1',
          vlans: '100-199',
          publicVlan: '50',
          publicPrefix: '203.0.113',
          guestCidr: '10.1.0.0/16',
        })
      ).zone;
      id.so = ok(await admin('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0].id;
      id.tpl = ok(await admin('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
      const offering = async (name: string) =>
        ok(await admin('listNetworkOfferings', { name }), name).networkoffering[0].id as string;
      id.isolated = await offering('DefaultIsolatedNetworkOfferingWithSourceNatService');
      id.tier = await offering('DefaultIsolatedNetworkOfferingForVpcNetworks');
      id.vpcOffering = ok(
        await admin('listVPCOfferings', { name: 'Default VPC offering' }),
        'vpc offering',
      ).vpcoffering[0].id;
    });

    after(async () => {
      await stopCsRig(rig);
    });

    test('isolated network: associate, static NAT on/off, disassociate', async () => {
      const admin = rig.admin!;
      const net = ok(
        await admin('createNetwork', {
          zoneid: id.zone,
          name: 'n1',
          displaytext: 'n1',
          networkofferingid: id.isolated,
          gateway: '10.1.1.1',
          netmask: '255.255.255.0',
        }),
        'createNetwork',
      ).network.id as string;
      const vm = await deploy('vm1', net);
      let g = await generation(net);
      const step = async (what: string, call: () => Promise<unknown>) => {
        await call();
        const now = await generation(net);
        assert.ok(now > g, `${what}: generation ${g} → ${now}`);
        g = now;
      };
      let ipId = '';
      await step('associateIpAddress', async () => {
        ipId = ok(await admin('associateIpAddress', { networkid: net }, { fetch_result: true }), 'associate')
          .ipaddress.id;
      });
      await step('enableStaticNat', async () =>
        ok(await admin('enableStaticNat', { ipaddressid: ipId, virtualmachineid: vm.id }), 'enableStaticNat'),
      );
      await step('disableStaticNat', async () =>
        ok(
          await admin('disableStaticNat', { ipaddressid: ipId }, { fetch_result: true }),
          'disableStaticNat',
        ),
      );
      await step('disassociateIpAddress', async () =>
        ok(await admin('disassociateIpAddress', { id: ipId }, { fetch_result: true }), 'disassociate'),
      );
    });

    test("VPC: a tier's router coming or going moves every tier's router", async () => {
      const admin = rig.admin!;
      const vpc = await createTestVpc(admin, {
        zone: id.zone!,
        name: 'vpc1',
        cidr: '10.10.0.0/16',
        offering: id.vpcOffering!,
      });
      const tier = async (name: string, gateway: string) =>
        ok(
          await admin('createNetwork', {
            zoneid: id.zone,
            name,
            displaytext: name,
            networkofferingid: id.tier,
            vpcid: vpc,
            gateway,
            netmask: '255.255.255.0',
          }),
          `tier ${name}`,
        ).network.id as string;
      const t1 = await tier('t1', '10.10.1.1');
      await deploy('a1', t1);
      const g1 = await generation(t1);
      const t2 = await tier('t2', '10.10.2.1');
      const b1 = await deploy('b1', t2);
      const g2 = await generation(t1);
      assert.ok(g2 > g1, `t2's router came: t1's router ${g1} → ${g2}`);
      // An IP associated with the VPC: every tier's router re-reads (the edge holds it).
      const g2b = await generation(t2);
      ok(await admin('associateIpAddress', { vpcid: vpc }, { fetch_result: true }), 'associate to the VPC');
      assert.ok((await generation(t1)) > g2 && (await generation(t2)) > g2b, 'VPC associate');
      const g3 = await generation(t1);
      ok(
        await admin('destroyVirtualMachine', { id: b1.id, expunge: true }, { fetch_result: true }),
        'expunge b1',
      );
      ok(await admin('deleteNetwork', { id: t2 }, { fetch_result: true }), 'delete t2');
      assert.ok((await generation(t1)) > g3, "t2's router went: t1's router moves");
    });
  });
}
