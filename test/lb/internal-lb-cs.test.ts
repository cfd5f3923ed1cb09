/**
 * Internal load balancing in a VPC tier as a CloudStack client sees it: a real `stacknet server` (simulator
 * driver) and the python `cs` client. createLoadBalancer (scheme Internal) allocates the source address from the
 * tier (or takes the one asked for) and makes the internal LB appliance holding it; a second rule on that address
 * shares the appliance; members are assigned and listed; listInternalLoadBalancerVMs answers it router-shaped;
 * stop/start; CloudStack's refusals; deleting the last rule destroys the appliance and frees the address.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, CsRig } from '../api/harness.js';
import { createTestZone, createUserClient } from '../networking/zone-fixture.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const job = { fetch_result: true };

for (const kind of testDbKinds()) {
  describe(`internal load balancers with python cs (${kind})`, () => {
    let rig: CsRig;
    let alice: CsClient;
    let admin: CsClient;
    const id: Record<string, string> = {};

    before(async () => {
      rig = await startCsRig(kind);
      admin = rig.admin;
      id.zone = (
        await createTestZone(admin, {
          name: 'ilbz',
          vlans: '700-720',
          publicVlan: '92',
          publicPrefix: '198.51.100',
          guestCidr: '10.71.0.0/16',
        })
      ).zone;
      alice = (await createUserClient(admin, (k, s) => rig.bridge.client(rig.server.url, k, s), 'ilb-alice'))
        .client;
      const vpcOffering = ok(
        await alice('listVPCOfferings', { name: 'Default VPC offering' }),
        'listVPCOfferings',
      ).vpcoffering[0].id;
      id.vpc = ok(
        await alice(
          'createVPC',
          {
            name: 'ilb',
            displaytext: 'ilb',
            vpcofferingid: vpcOffering,
            zoneid: id.zone,
            cidr: '10.80.0.0/16',
          },
          job,
        ),
        'createVPC',
      ).vpc.id;
      const offerings = ok(await alice('listNetworkOfferings', {}), 'listNetworkOfferings').networkoffering;
      const tierOffering = offerings.find(
        (o: any) => o.name === 'DefaultIsolatedNetworkOfferingForVpcNetworks',
      ).id;
      const iso = offerings.find(
        (o: any) => o.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService',
      ).id;
      for (const [name, n] of [
        ['a', 1],
        ['b', 2],
      ] as const)
        id[name] = ok(
          await alice('createNetwork', {
            name,
            displaytext: name,
            networkofferingid: tierOffering,
            zoneid: id.zone,
            gateway: `10.80.${n}.1`,
            netmask: '255.255.255.0',
            vpcid: id.vpc,
          }),
          `createNetwork ${name}`,
        ).network.id;
      id.iso = ok(
        await alice('createNetwork', {
          name: 'iso',
          displaytext: 'iso',
          networkofferingid: iso,
          zoneid: id.zone,
        }),
        'createNetwork iso',
      ).network.id;
      const so = ok(await alice('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0]
        .id;
      const tpl = ok(await alice('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
      for (const [vm, net] of [
        ['b1', 'b'],
        ['b2', 'b'],
        ['a1', 'a'],
      ] as const) {
        const v = ok(
          await alice(
            'deployVirtualMachine',
            { serviceofferingid: so, templateid: tpl, zoneid: id.zone, networkids: id[net], name: vm },
            job,
          ),
          `deploy ${vm}`,
        ).virtualmachine;
        id[vm] = v.id;
        id[`${vm}ip`] = v.nic[0].ipaddress;
      }
    });

    after(async () => {
      await stopCsRig(rig ?? {});
    });

    const create = (p: Record<string, unknown>) =>
      alice(
        'createLoadBalancer',
        {
          name: 'web',
          scheme: 'Internal',
          sourceipaddressnetworkid: id.b,
          networkid: id.b,
          sourceport: 80,
          instanceport: 8080,
          algorithm: 'roundrobin',
          ...p,
        },
        job,
      );

    test('create allocates the source address and an appliance; a second rule shares it', async () => {
      const lb = ok(await create({}), 'createLoadBalancer').loadbalancer;
      id.lb = lb.id;
      assert.equal(lb.name, 'web');
      assert.equal(lb.algorithm, 'roundrobin');
      assert.equal(lb.networkid, id.b);
      assert.equal(lb.sourceipaddressnetworkid, id.b);
      assert.match(lb.sourceipaddress, /^10\.80\.2\.\d+$/);
      assert.notEqual(lb.sourceipaddress, '10.80.2.1');
      assert.deepEqual(lb.loadbalancerrule, [{ sourceport: 80, instanceport: 8080, state: 'Active' }]);
      assert.equal(lb.account, 'ilb-alice');
      id.src = lb.sourceipaddress;

      const vms = ok(await admin('listInternalLoadBalancerVMs', { vpcid: id.vpc }), 'listILBVMs');
      assert.equal(vms.count, 1);
      const vm = vms.internalloadbalancervm[0];
      id.ilbvm = vm.id;
      assert.equal(vm.role, 'INTERNAL_LB_VM');
      assert.equal(vm.serviceofferingname, 'System Offering For Internal LB VM');
      assert.match(vm.name, /^b-\d+-VM$/);
      assert.equal(vm.guestipaddress, id.src);
      assert.equal(vm.guestnetworkid, id.b);
      assert.equal(vm.vpcid, id.vpc);
      assert.equal(vm.state, 'Running');
      assert.equal(vm.publicip, undefined);
      assert.deepEqual(
        vm.nic.map((n: any) => n.traffictype),
        ['Guest', 'Control'],
      );
      // Not a router: listRouters does not show it.
      const routers = ok(await admin('listRouters', { listall: true }), 'listRouters').router;
      assert.ok(routers.every((r: any) => r.id !== vm.id && r.role === 'VIRTUAL_ROUTER'));

      const second = ok(
        await create({ name: 'api', sourceport: 8443, instanceport: 443, sourceipaddress: id.src }),
        'createLoadBalancer same source',
      ).loadbalancer;
      id.lb2 = second.id;
      assert.equal(second.sourceipaddress, id.src);
      assert.equal(
        ok(await admin('listInternalLoadBalancerVMs', { vpcid: id.vpc }), 'listILBVMs').count,
        1,
        'one appliance per source address',
      );
      // The source address is the appliance's: no VM can take it.
      const so = ok(await alice('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0]
        .id;
      const tpl = ok(await alice('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
      const taken = await alice(
        'deployVirtualMachine',
        { serviceofferingid: so, templateid: tpl, zoneid: id.zone, networkids: id.b, ipaddress: id.src },
        job,
      );
      assert.ok(!taken.ok, `a VM took the LB's source address: ${JSON.stringify(taken.data)}`);
      const events = ok(await alice('listEvents', { type: 'LB.CREATE' }), 'events').event ?? [];
      assert.ok(events.some((e: any) => e.resourceid === id.lb || String(e.description).includes(id.lb!)));
    });

    test('refusals: scheme, ports, algorithm, tier, source address, conflicts', async () => {
      refused(
        await create({ scheme: 'Public' }),
        431,
        /Invalid value for scheme. Supported value is internal/,
        'Public',
      );
      refused(await create({ sourceport: 0 }), 431, /Invalid value for source port: 0/, 'sourceport');
      refused(await create({ instanceport: 70000 }), 431, /Invalid value for instance port/, 'instanceport');
      refused(await create({ algorithm: 'fastest' }), 431, /Invalid algorithm: fastest/, 'algorithm');
      refused(
        await create({ networkid: id.iso, sourceipaddressnetworkid: id.iso }),
        431,
        /VPC tiers only/,
        'isolated network',
      );
      refused(
        await create({ sourceipaddressnetworkid: id.a }),
        431,
        /source IP network must be the tier/,
        'source network',
      );
      refused(
        await create({ sourceipaddress: '10.80.9.9' }),
        431,
        /not in the network's CIDR subnet/,
        'outside the tier',
      );
      refused(
        await create({ sourceipaddress: id.b1ip }),
        431,
        /sourceipaddress|already|in use/i,
        'a VM address',
      );
      refused(
        await create({ sourceipaddress: id.src, sourceport: 80 }),
        537,
        /conflicts with rule/,
        'same source port',
      );
      const e = await alice('createLoadBalancer', {
        name: 'x',
        scheme: 'Internal',
        sourceipaddressnetworkid: id.b,
        sourceport: 1,
        instanceport: 1,
        algorithm: 'roundrobin',
      });
      refused(e, 431, /networkid/, 'missing networkid');
    });

    test('members: VMs of the tier only; listLoadBalancers and listLoadBalancerRuleInstances', async () => {
      ok(
        await alice('assignToLoadBalancerRule', { id: id.lb, virtualmachineids: `${id.b1},${id.b2}` }, job),
        'assign',
      );
      const bad = await alice('assignToLoadBalancerRule', { id: id.lb, virtualmachineids: id.a1 }, job);
      refused(bad, 431, /doesn't belong in the same network/, 'a VM of tier a');
      const list = ok(await alice('listLoadBalancers', { id: id.lb }), 'listLoadBalancers');
      assert.equal(list.count, 1);
      assert.deepEqual(
        list.loadbalancer[0].loadbalancerinstance.map((i: any) => i.ipaddress).sort(),
        [id.b1ip, id.b2ip].sort(),
      );
      assert.equal(ok(await alice('listLoadBalancers', { sourceipaddress: id.src }), 'by source').count, 2);
      assert.equal(ok(await alice('listLoadBalancers', { networkid: id.a }), 'by tier a').count ?? 0, 0);
      // listLoadBalancerRules is for public rules.
      assert.equal(ok(await alice('listLoadBalancerRules', {}), 'listLoadBalancerRules').count ?? 0, 0);
      const inst = ok(await alice('listLoadBalancerRuleInstances', { id: id.lb }), 'instances');
      assert.equal(inst.count, 2);
      ok(await alice('removeFromLoadBalancerRule', { id: id.lb, virtualmachineids: id.b2 }, job), 'remove');
      assert.equal(ok(await alice('listLoadBalancerRuleInstances', { id: id.lb }), 'instances').count, 1);
      const upd = ok(await alice('updateLoadBalancer', { id: id.lb, fordisplay: false }, job), 'update');
      assert.equal(upd.loadbalancer.fordisplay, false);
      refused(
        await alice('deleteLoadBalancerRule', { id: id.lb }, job),
        431,
        /deleteLoadBalancer/,
        'wrong delete',
      );
    });

    test('stop and start the appliance; users may not', async () => {
      refused(await alice('listInternalLoadBalancerVMs', {}), 432, /./, 'user');
      const stopped = ok(await admin('stopInternalLoadBalancerVM', { id: id.ilbvm }, job), 'stop');
      assert.equal(stopped.internalloadbalancervm.state, 'Stopped');
      const started = ok(await admin('startInternalLoadBalancerVM', { id: id.ilbvm }, job), 'start');
      assert.equal(started.internalloadbalancervm.state, 'Running');
      const ev =
        ok(await admin('listEvents', { type: 'INTERNALLBVM.STOP', listall: true }), 'ev').event ?? [];
      assert.ok(ev.length >= 1);
    });

    test('deleting the last rule destroys the appliance and frees the address', async () => {
      ok(await alice('deleteLoadBalancer', { id: id.lb }, job), 'delete 1');
      assert.equal(
        ok(await admin('listInternalLoadBalancerVMs', { vpcid: id.vpc }), 'after 1').count,
        1,
        'the other rule keeps it',
      );
      ok(await alice('deleteLoadBalancer', { id: id.lb2 }, job), 'delete 2');
      assert.equal(
        ok(await admin('listInternalLoadBalancerVMs', { vpcid: id.vpc }), 'after 2').count ?? 0,
        0,
      );
      refused(await alice('deleteLoadBalancer', { id: id.lb2 }, job), 431, /./, 'gone');
      // The address is free again: a new rule may ask for it.
      const again = ok(await create({ sourceipaddress: id.src }), 'again').loadbalancer;
      assert.equal(again.sourceipaddress, id.src);
      ok(await alice('deleteLoadBalancer', { id: again.id }, job), 'delete again');
    });
  });
}
