/**
 * Public load balancer rules as a CloudStack client sees them: a real `stacknet server` (simulator driver) and
 * the python `cs` client. Rules are created (Active after the job, openfirewall), listed, updated and deleted;
 * members assigned and removed (vmidipmap for a secondary address); stickiness and health check policies; every
 * refusal with CloudStack's code and text; rules go with their IP, their VMs and their network.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, CsRig } from '../api/harness.js';
import { createUserNetworksWithVms } from '../networking/zone-fixture.js';

const job = { fetch_result: true };

for (const kind of testDbKinds()) {
  describe(`load balancer rules with python cs (${kind})`, () => {
    let rig: CsRig;
    let alice: CsClient;
    const id: Record<string, string> = {};
    const count = async (cmd: string, args: Record<string, unknown>) =>
      Number(ok(await alice(cmd, args), cmd).count ?? 0);
    const events = async (type: string) =>
      (ok(await alice('listEvents', { type }), type).event ?? []) as {
        description: string;
        resourceid?: string;
      }[];

    before(async () => {
      rig = await startCsRig(kind);
      const t = await createUserNetworksWithVms(rig, {
        name: 'lz',
        vlans: '640-660',
        publicVlan: '91',
        publicPrefix: '198.51.100',
        guestCidr: '10.70.0.0/16',
        user: 'balancer',
        vms: [
          ['vm1', 'web'],
          ['vm2', 'web'],
          ['vm3', 'db'],
        ],
      });
      alice = t.client;
      Object.assign(id, t.id);
      id.vm1sec = ok(
        await alice('addIpToNic', { nicid: id.vm1nic }, job),
        'addIpToNic',
      ).nicsecondaryip.ipaddress;
      for (const ip of ['ip1', 'ip2', 'ip3']) {
        id[ip] = ok(await alice('associateIpAddress', { networkid: id.web }, job), ip).ipaddress.id;
      }
    });

    after(async () => {
      await stopCsRig(rig ?? {});
    });

    test('create (Active, openfirewall), conflicts and refusals, list, update', async () => {
      const lb = ok(
        await alice(
          'createLoadBalancerRule',
          { publicipid: id.ip1, name: 'web', algorithm: 'roundrobin', publicport: 80, privateport: 8080 },
          job,
        ),
        'createLoadBalancerRule',
      ).loadbalancer;
      id.lb = lb.id;
      assert.equal(lb.state, 'Active', rig.server.output().slice(-2000));
      assert.equal(lb.publicport, '80');
      assert.equal(lb.privateport, '8080');
      assert.equal(lb.algorithm, 'roundrobin');
      assert.equal(lb.protocol, 'tcp');
      assert.equal(lb.publicipid, id.ip1);
      assert.equal(lb.networkid, id.web);
      assert.equal(lb.cidrlist, '0.0.0.0/0');
      assert.equal(lb.zoneid, id.zone);
      // openfirewall defaults to true: the firewall rule for the public port.
      const fws = ok(await alice('listFirewallRules', { ipaddressid: id.ip1 }), 'listFirewallRules');
      assert.equal(fws.count, 1);
      assert.equal(fws.firewallrule[0].startport, 80);

      const base = { publicipid: id.ip1, name: 'x', algorithm: 'source', privateport: 80 };
      refused(
        await alice('createLoadBalancerRule', { ...base, publicport: 80, openfirewall: false }, job),
        537,
        /^The range specified, 80-80, conflicts with rule/,
        'LB on a port another LB holds',
      );
      refused(
        await alice(
          'createPortForwardingRule',
          {
            ipaddressid: id.ip1,
            protocol: 'udp',
            publicport: 80,
            privateport: 80,
            virtualmachineid: id.vm1,
            openfirewall: false,
          },
          job,
        ),
        537,
        /conflicts with rule/,
        'port forward on an LB port (any protocol)',
      );
      ok(
        await alice(
          'createPortForwardingRule',
          { ipaddressid: id.ip2, protocol: 'tcp', publicport: 22, privateport: 22, virtualmachineid: id.vm1 },
          job,
        ),
        'PF on ip2',
      );
      refused(
        await alice('createLoadBalancerRule', { ...base, publicipid: id.ip2, publicport: 22 }, job),
        537,
        /conflicts with rule/,
        'LB on a forwarded port',
      );
      refused(
        await alice('createLoadBalancerRule', { ...base, publicport: 81, protocol: 'udp' }, job),
        431,
        /protocol.*VirtualRouter provider supports tcp/,
        'udp',
      );
      refused(
        await alice('createLoadBalancerRule', { ...base, publicport: 81, protocol: 'tcp-proxy' }, job),
        431,
        /protocol.*VirtualRouter provider supports tcp/,
        'tcp-proxy',
      );
      refused(
        await alice('createLoadBalancerRule', { ...base, publicport: 81, algorithm: 'random' }, job),
        431,
        /algorithm.*Invalid algorithm: random/,
        'algorithm',
      );
      refused(
        await alice('createLoadBalancerRule', { ...base, publicport: 81, privateport: 70000 }, job),
        431,
        /privateport/,
        'private port',
      );
      refused(
        await alice('enableStaticNat', { ipaddressid: id.ip1, virtualmachineid: id.vm1 }),
        431,
        /ipaddressid.*already has LoadBalancing rules assigned/,
        'static NAT on an IP with LB rules',
      );
      ok(
        await alice('enableStaticNat', { ipaddressid: id.ip3, virtualmachineid: id.vm2 }),
        'enableStaticNat ip3',
      );
      refused(
        await alice('createLoadBalancerRule', { ...base, publicipid: id.ip3, publicport: 81 }, job),
        537,
        /Can't do load balance on ip address: 198\.51\.100\./,
        'LB on a static NAT IP',
      );
      ok(await alice('disableStaticNat', { ipaddressid: id.ip3 }, job), 'disableStaticNat ip3');

      assert.equal(await count('listLoadBalancerRules', { publicipid: id.ip1 }), 1);
      assert.equal(await count('listLoadBalancerRules', { name: 'web' }), 1);
      assert.equal(await count('listLoadBalancerRules', { name: 'nope' }), 0);
      const up = ok(
        await alice(
          'updateLoadBalancerRule',
          { id: id.lb, algorithm: 'leastconn', description: 'the web tier' },
          job,
        ),
        'updateLoadBalancerRule',
      ).loadbalancer;
      assert.equal(up.algorithm, 'leastconn');
      assert.equal(up.description, 'the web tier');
      assert.equal(up.state, 'Active');
      refused(
        await alice('updateLoadBalancerRule', { id: id.lb, algorithm: 'random' }, job),
        431,
        /algorithm/,
        'update algorithm',
      );
      for (const t of ['LB.CREATE', 'LB.UPDATE'])
        assert.ok(
          (await events(t)).some((e) => e.resourceid === id.lb || e.description.includes(id.lb!)),
          t,
        );
    });

    test('members: assign (vmidipmap), refusals, instances (lbvmips, servicestate), remove', async () => {
      ok(
        await alice(
          'assignToLoadBalancerRule',
          {
            id: id.lb,
            virtualmachineids: `${id.vm1},${id.vm2}`,
            'vmidipmap[0].vmid': id.vm1,
            'vmidipmap[0].vmip': id.vm1sec,
          },
          job,
        ),
        'assignToLoadBalancerRule',
      );
      const inst = ok(await alice('listLoadBalancerRuleInstances', { id: id.lb }), 'instances');
      assert.equal(inst.count, 2);
      assert.deepEqual(
        inst.loadbalancerruleinstance.map((v: { id: string }) => v.id).sort(),
        [id.vm1, id.vm2].sort(),
      );
      // No health report from the routers yet.
      assert.ok(
        inst.loadbalancerruleinstance.every((v: { servicestate: string }) => v.servicestate === 'Unknown'),
      );
      const withIps = ok(
        await alice('listLoadBalancerRuleInstances', { id: id.lb, lbvmips: true }),
        'lbvmips',
      );
      const vm1 = withIps.lbrulevmidip.find(
        (x: { loadbalancerruleinstance: { id: string } }) => x.loadbalancerruleinstance.id === id.vm1,
      );
      assert.deepEqual([...vm1.lbvmipaddresses].sort(), [id.vm1ip, id.vm1sec].sort());
      const free = ok(
        await alice('listLoadBalancerRuleInstances', { id: id.lb, applied: false }),
        'applied=false',
      );
      assert.equal(free.count ?? 0, 0);
      assert.equal(await count('listLoadBalancerRules', { virtualmachineid: id.vm2 }), 1);

      refused(
        await alice('assignToLoadBalancerRule', { id: id.lb, virtualmachineids: id.vm3 }, job),
        431,
        /virtualmachineids.*doesn't belong in the same network/,
        'VM outside the network',
      );
      refused(
        await alice('assignToLoadBalancerRule', { id: id.lb, virtualmachineids: id.vm2 }, job),
        431,
        /is already mapped to load balancer/,
        'VM assigned twice',
      );
      refused(
        await alice(
          'assignToLoadBalancerRule',
          { id: id.lb, 'vmidipmap[0].vmid': id.vm2, 'vmidipmap[0].vmip': '10.99.9.9' },
          job,
        ),
        431,
        /vmidipmap.*does not belong to nic in network/,
        'vmidipmap address not of the NIC',
      );
      refused(
        await alice('assignToLoadBalancerRule', { id: id.lb }, job),
        431,
        /can't be null/,
        'nothing to assign',
      );

      ok(
        await alice('removeFromLoadBalancerRule', { id: id.lb, virtualmachineids: id.vm2 }, job),
        'remove vm2',
      );
      assert.equal(await count('listLoadBalancerRuleInstances', { id: id.lb }), 1);
      ok(
        await alice(
          'removeFromLoadBalancerRule',
          { id: id.lb, 'vmidipmap[0].vmid': id.vm1, 'vmidipmap[0].vmip': id.vm1sec },
          job,
        ),
        'remove vm1 secondary',
      );
      const left = ok(await alice('listLoadBalancerRuleInstances', { id: id.lb, lbvmips: true }), 'left');
      assert.deepEqual(left.lbrulevmidip[0].lbvmipaddresses, [id.vm1ip]);
      assert.equal(
        ok(await alice('listLoadBalancerRuleInstances', { id: id.lb, applied: false }), 'free').count,
        1,
      );
      refused(
        await alice('removeFromLoadBalancerRule', { id: id.lb, virtualmachineids: id.vm2 }, job),
        431,
        /is not configured\s+for LB rule id/,
        'remove a VM not assigned',
      );
      for (const t of ['LB.ASSIGN.TO.RULE', 'LB.REMOVE.FROM.RULE'])
        assert.ok((await events(t)).length >= 1, t);
    });

    test('stickiness and health check policies', async () => {
      const st = ok(
        await alice(
          'createLBStickinessPolicy',
          {
            lbruleid: id.lb,
            name: 'sticky',
            methodname: 'LbCookie',
            'param[0].name': 'cookie-name',
            'param[0].value': 'SRV',
            'param[1].name': 'nocache',
          },
          job,
        ),
        'createLBStickinessPolicy',
      ).stickinesspolicies;
      assert.equal(st.lbruleid, id.lb);
      assert.equal(st.stickinesspolicy[0].methodname, 'LbCookie');
      assert.equal(st.stickinesspolicy[0].params['cookie-name'], 'SRV');
      const sb = { lbruleid: id.lb, name: 's2' };
      refused(
        await alice('createLBStickinessPolicy', { ...sb, methodname: 'Magic' }, job),
        431,
        /methodname.*Failed to match Stickiness method name/,
        'unknown method',
      );
      refused(
        await alice(
          'createLBStickinessPolicy',
          { ...sb, methodname: 'LbCookie', 'param[0].name': 'foo', 'param[0].value': '1' },
          job,
        ),
        431,
        /Stickiness policy does not support param name :foo/,
        'unknown param',
      );
      refused(
        await alice(
          'createLBStickinessPolicy',
          { ...sb, methodname: 'AppCookie', 'param[0].name': 'length', 'param[0].value': 'abc' },
          job,
        ),
        431,
        /Cause: length is not a number: abc/,
        'AppCookie length',
      );
      refused(
        await alice(
          'createLBStickinessPolicy',
          { ...sb, methodname: 'SourceBased', 'param[0].name': 'expire', 'param[0].value': '30x' },
          job,
        ),
        431,
        /Cause: expire is not in timeformat: 30x/,
        'SourceBased expire',
      );
      // A second policy replaces the first (CloudStack revokes the older one when it applies the new).
      const src = ok(
        await alice(
          'createLBStickinessPolicy',
          { ...sb, methodname: 'SourceBased', 'param[0].name': 'expire', 'param[0].value': '30m' },
          job,
        ),
        'SourceBased',
      ).stickinesspolicies.stickinesspolicy[0];
      const listed = ok(await alice('listLBStickinessPolicies', { lbruleid: id.lb }), 'list')
        .stickinesspolicies[0];
      assert.equal(listed.stickinesspolicy.length, 1);
      assert.equal(listed.stickinesspolicy[0].id, src.id);
      ok(await alice('deleteLBStickinessPolicy', { id: src.id }, job), 'deleteLBStickinessPolicy');
      assert.equal(
        ok(await alice('listLBStickinessPolicies', { lbruleid: id.lb }), 'list').stickinesspolicies[0]
          .stickinesspolicy.length,
        0,
      );

      const hc = ok(
        await alice('createLBHealthCheckPolicy', { lbruleid: id.lb }, job),
        'createLBHealthCheckPolicy',
      ).healthcheckpolicies.healthcheckpolicy[0];
      // CloudStack's defaults (LBHealthCheckPolicyVO).
      assert.equal(hc.pingpath, '/');
      assert.equal(hc.responsetime, 2);
      assert.equal(hc.healthcheckinterval, 5);
      assert.equal(hc.healthcheckthresshold, 2);
      assert.equal(hc.unhealthcheckthresshold, 1);
      refused(
        await alice('createLBHealthCheckPolicy', { lbruleid: id.lb, pingpath: '/health' }, job),
        431,
        /Already policy attached/,
        'second health check',
      );
      ok(await alice('deleteLBHealthCheckPolicy', { id: hc.id }, job), 'deleteLBHealthCheckPolicy');
      refused(
        await alice(
          'createLBHealthCheckPolicy',
          { lbruleid: id.lb, responsetimeout: 10, intervaltime: 5 },
          job,
        ),
        431,
        /Monitor interval must be greater than response timeout/,
        'timeout above interval',
      );
      refused(
        await alice(
          'createLBHealthCheckPolicy',
          { lbruleid: id.lb, responsetimeout: 61, intervaltime: 100 },
          job,
        ),
        431,
        /responsetimeout/,
        'timeout out of range',
      );
      const hc2 = ok(
        await alice(
          'createLBHealthCheckPolicy',
          {
            lbruleid: id.lb,
            pingpath: '/health',
            intervaltime: 10,
            responsetimeout: 3,
            unhealthythreshold: 4,
          },
          job,
        ),
        'hc2',
      ).healthcheckpolicies.healthcheckpolicy[0];
      assert.equal(hc2.pingpath, '/health');
      assert.equal(hc2.unhealthcheckthresshold, 4);
      const hl = ok(await alice('listLBHealthCheckPolicies', { lbruleid: id.lb }), 'list')
        .healthcheckpolicies[0];
      assert.equal(hl.healthcheckpolicy[0].id, hc2.id);
      for (const t of [
        'LB.STICKINESSPOLICY.CREATE',
        'LB.STICKINESSPOLICY.DELETE',
        'LB.HEALTHCHECKPOLICY.CREATE',
        'LB.HEALTHCHECKPOLICY.DELETE',
      ])
        assert.ok((await events(t)).length >= 1, t);
    });

    test('delete: the rule, its firewall rule and policies go', async () => {
      ok(await alice('deleteLoadBalancerRule', { id: id.lb }, job), 'deleteLoadBalancerRule');
      assert.equal(await count('listLoadBalancerRules', { id: id.lb }), 0);
      assert.equal(await count('listFirewallRules', { ipaddressid: id.ip1 }), 0);
      refused(
        await alice('listLBHealthCheckPolicies', { lbruleid: id.lb }),
        431,
        /lbruleid/,
        'policies of a deleted rule',
      );
      assert.ok(
        (await events('LB.DELETE')).some((e) => e.resourceid === id.lb || e.description.includes(id.lb!)),
      );
    });

    test('cleanup: disassociating the IP, expunging a VM, deleting the network', async () => {
      const onIp3 = ok(
        await alice(
          'createLoadBalancerRule',
          { publicipid: id.ip3, name: 'i3', algorithm: 'source', publicport: 443, privateport: 443 },
          job,
        ),
        'LB on ip3',
      ).loadbalancer;
      ok(await alice('assignToLoadBalancerRule', { id: onIp3.id, virtualmachineids: id.vm2 }, job), 'assign');
      ok(await alice('createLBHealthCheckPolicy', { lbruleid: onIp3.id }, job), 'hc');
      ok(await alice('disassociateIpAddress', { id: id.ip3 }, job), 'disassociate ip3');
      assert.equal(await count('listLoadBalancerRules', { id: onIp3.id }), 0);
      assert.ok(
        (await events('LB.DELETE')).some(
          (e) => e.resourceid === onIp3.id || e.description.includes(onIp3.id),
        ),
      );

      const onIp1 = ok(
        await alice(
          'createLoadBalancerRule',
          { publicipid: id.ip1, name: 'i1', algorithm: 'roundrobin', publicport: 80, privateport: 80 },
          job,
        ),
        'LB on ip1 again',
      ).loadbalancer;
      ok(
        await alice(
          'assignToLoadBalancerRule',
          { id: onIp1.id, virtualmachineids: `${id.vm1},${id.vm2}` },
          job,
        ),
        'assign 2',
      );
      ok(await rig.admin('destroyVirtualMachine', { id: id.vm1, expunge: true }, job), 'expunge vm1');
      const inst = ok(await alice('listLoadBalancerRuleInstances', { id: onIp1.id }), 'after expunge');
      assert.equal(inst.count, 1);
      assert.equal(inst.loadbalancerruleinstance[0].id, id.vm2);

      // A destroyed (not yet expunged) VM cannot be assigned (CloudStack: Destroyed or Expunging).
      ok(
        await alice('removeFromLoadBalancerRule', { id: onIp1.id, virtualmachineids: id.vm2 }, job),
        'remove vm2',
      );
      ok(await alice('destroyVirtualMachine', { id: id.vm2 }, job), 'destroy vm2');
      refused(
        await alice('assignToLoadBalancerRule', { id: onIp1.id, virtualmachineids: id.vm2 }, job),
        431,
        /virtualmachineids.*Invalid instance id specified/,
        'destroyed VM',
      );

      // Without publicipid, networkid picks the network's source NAT address (CloudStack's getSourceIpAddressId).
      const onDb = ok(
        await alice(
          'createLoadBalancerRule',
          { networkid: id.db, name: 'db', algorithm: 'source', publicport: 3306, privateport: 3306 },
          job,
        ),
        'LB on the db source NAT IP',
      ).loadbalancer;
      assert.equal(onDb.networkid, id.db);
      ok(
        await alice('assignToLoadBalancerRule', { id: onDb.id, virtualmachineids: id.vm3 }, job),
        'assign vm3',
      );
      ok(await rig.admin('destroyVirtualMachine', { id: id.vm3, expunge: true }, job), 'expunge vm3');
      ok(await alice('deleteNetwork', { id: id.db }, job), 'deleteNetwork db');
      assert.equal(await count('listLoadBalancerRules', { id: onDb.id }), 0);
      assert.ok(
        (await events('LB.DELETE')).some((e) => e.resourceid === onDb.id || e.description.includes(onDb.id)),
      );
    });
  });
}
