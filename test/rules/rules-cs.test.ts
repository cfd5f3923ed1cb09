/**
 * Port forwarding, firewall and egress rules as a CloudStack client sees them: a real `stacknet server` (simulator
 * driver) and the python `cs` client. Each kind is created, listed, updated and deleted; CloudStack's refusals
 * come back as 431 naming the parameter; a create job answers the rule Active once the router applied it; rules
 * go with their IP. The packets themselves are tested on the netns driver elsewhere.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, CsRig } from '../api/harness.js';
import { createUserNetworksWithVms } from '../networking/zone-fixture.js';

const kinds = testDbKinds();
const job = { fetch_result: true };

for (const kind of kinds) {
  describe(`port forwarding, firewall and egress rules with python cs (${kind})`, () => {
    let rig: CsRig;
    let alice: CsClient;
    const id: Record<string, string> = {};

    before(async () => {
      rig = await startCsRig(kind);
      const t = await createUserNetworksWithVms(rig, {
        name: 'rz',
        vlans: '600-620',
        publicVlan: '90',
        publicPrefix: '203.0.113',
        guestCidr: '10.60.0.0/16',
        user: 'ruler',
        vms: [
          ['vm1', 'web'],
          ['vm2', 'db'],
        ],
      });
      alice = t.client;
      Object.assign(id, t.id);
      id.webCidr = ok(await alice('listNetworks', { id: id.web }), 'listNetworks').network[0].cidr;
      for (const ip of ['ip1', 'ip2', 'ip3']) {
        id[ip] = ok(await alice('associateIpAddress', { networkid: id.web }, job), ip).ipaddress.id;
      }
    });

    after(async () => {
      await stopCsRig(rig ?? {});
    });

    test('port forwarding: create (Active after the job, openfirewall), conflicts, update, delete', async () => {
      const pf = ok(
        await alice(
          'createPortForwardingRule',
          { ipaddressid: id.ip1, protocol: 'tcp', publicport: 22, privateport: 22, virtualmachineid: id.vm1 },
          job,
        ),
        'createPortForwardingRule',
      ).portforwardingrule;
      assert.equal(pf.state, 'Active', rig.server.output().slice(-2000));
      assert.equal(pf.publicport, '22');
      assert.equal(pf.privateendport, '22');
      assert.equal(pf.virtualmachineid, id.vm1);
      assert.equal(pf.vmguestip, id.vm1ip);
      assert.equal(pf.networkid, id.web);
      assert.equal(pf.cidrlist, '0.0.0.0/0');
      // openfirewall defaults to true outside VPCs: the firewall rule for the same ports exists.
      const fws = ok(await alice('listFirewallRules', { ipaddressid: id.ip1 }), 'listFirewallRules');
      assert.equal(fws.count, 1);
      assert.equal(fws.firewallrule[0].startport, 22);
      assert.equal(fws.firewallrule[0].traffictype, 'Ingress');

      const range = ok(
        await alice(
          'createPortForwardingRule',
          {
            ipaddressid: id.ip1,
            protocol: 'tcp',
            publicport: 8000,
            publicendport: 8009,
            privateport: 9000,
            privateendport: 9009,
            virtualmachineid: id.vm1,
            openfirewall: false,
          },
          job,
        ),
        'PF range',
      ).portforwardingrule;
      assert.equal(range.publicendport, '8009');
      assert.equal(ok(await alice('listFirewallRules', { ipaddressid: id.ip1 }), 'fw').count, 1);
      // udp on the same port is no conflict
      ok(
        await alice(
          'createPortForwardingRule',
          {
            ipaddressid: id.ip1,
            protocol: 'udp',
            publicport: 22,
            privateport: 22,
            virtualmachineid: id.vm1,
            openfirewall: false,
          },
          job,
        ),
        'udp 22',
      );
      const pfBase = { ipaddressid: id.ip1, protocol: 'tcp', virtualmachineid: id.vm1, openfirewall: false };
      refused(
        await alice(
          'createPortForwardingRule',
          { ...pfBase, publicport: 20, publicendport: 30, privateport: 20, privateendport: 30 },
          job,
        ),
        537,
        /^The range specified, 20-30, conflicts with rule/,
        'overlapping public ports',
      );
      refused(
        await alice(
          'createPortForwardingRule',
          { ...pfBase, publicport: 100, publicendport: 110, privateport: 200, privateendport: 205 },
          job,
        ),
        431,
        /privateendport.*Private port and public port ranges have to be consistent/,
        'range lengths',
      );
      refused(
        await alice('createPortForwardingRule', { ...pfBase, publicport: 70000, privateport: 22 }, job),
        431,
        /publicport/,
        'port out of range',
      );
      refused(
        await alice(
          'createPortForwardingRule',
          { ...pfBase, protocol: 'icmp', publicport: 40, privateport: 40 },
          job,
        ),
        431,
        /protocol/,
        'icmp port forward',
      );
      refused(
        await alice(
          'createPortForwardingRule',
          { ...pfBase, publicport: 41, privateport: 41, virtualmachineid: id.vm2 },
          job,
        ),
        431,
        /virtualmachineid.*no NIC in the network of IP address/,
        'VM outside the IP network',
      );
      refused(
        await alice(
          'createPortForwardingRule',
          { ...pfBase, publicport: 42, privateport: 42, vmguestip: '10.99.0.5' },
          job,
        ),
        431,
        /vmguestip/,
        'vmguestip not of the VM',
      );
      refused(
        await alice('enableStaticNat', { ipaddressid: id.ip1, virtualmachineid: id.vm1 }),
        431,
        /ipaddressid.*already has PortForwarding rules assigned/,
        'static NAT on an IP with port forwards',
      );

      const up = ok(
        await alice(
          'updatePortForwardingRule',
          { id: range.id, privateport: 7000, privateendport: 7009 },
          job,
        ),
        'updatePortForwardingRule',
      ).portforwardingrule;
      assert.equal(up.privateport, '7000');
      assert.equal(up.privateendport, '7009');
      const listed = ok(
        await alice('listPortForwardingRules', { ipaddressid: id.ip1 }),
        'listPortForwardingRules',
      );
      assert.equal(listed.count, 3);
      assert.ok(listed.portforwardingrule.every((r: { state: string }) => r.state === 'Active'));

      ok(await alice('deletePortForwardingRule', { id: pf.id }, job), 'deletePortForwardingRule');
      // its openfirewall rule goes with it
      assert.equal(ok(await alice('listFirewallRules', { ipaddressid: id.ip1 }), 'fw').count ?? 0, 0);
      refused(await alice('deletePortForwardingRule', { id: pf.id }, job), 431, /id/, 'delete twice');
      for (const t of [
        'NET.RULEADD',
        'NET.RULEDELETE',
        'NET.RULEMODIFY',
        'NET.FIREWALLOPEN',
        'NET.FIREWALLCLOSE',
      ]) {
        assert.ok(ok(await alice('listEvents', { type: t }), t).count >= 1, `event ${t}`);
      }
    });

    test('a port forward on a static-NAT IP is refused', async () => {
      ok(
        await alice('enableStaticNat', { ipaddressid: id.ip2, virtualmachineid: id.vm1 }),
        'enableStaticNat',
      );
      refused(
        await alice(
          'createPortForwardingRule',
          { ipaddressid: id.ip2, protocol: 'tcp', publicport: 22, privateport: 22, virtualmachineid: id.vm1 },
          job,
        ),
        431,
        /ipaddressid.*1 to 1 Nat/,
        'PF on static NAT IP',
      );
    });

    test('firewall rules: create, validation, conflicts, update, delete', async () => {
      const fw = ok(
        await alice(
          'createFirewallRule',
          { ipaddressid: id.ip2, protocol: 'tcp', startport: 80, endport: 90, cidrlist: '198.51.100.0/24' },
          job,
        ),
        'createFirewallRule',
      ).firewallrule;
      assert.equal(fw.state, 'Active');
      assert.equal(fw.cidrlist, '198.51.100.0/24');
      assert.equal(fw.endport, 90);
      const icmp = ok(
        await alice(
          'createFirewallRule',
          { ipaddressid: id.ip2, protocol: 'icmp', icmptype: 8, icmpcode: 0 },
          job,
        ),
        'icmp rule',
      ).firewallrule;
      assert.equal(icmp.icmptype, 8);
      // the same ports from other sources is another rule, not a conflict (CloudStack compares cidrs)
      ok(
        await alice(
          'createFirewallRule',
          { ipaddressid: id.ip2, protocol: 'tcp', startport: 85, endport: 95 },
          job,
        ),
        'other cidr',
      );
      refused(
        await alice(
          'createFirewallRule',
          { ipaddressid: id.ip2, protocol: 'tcp', startport: 85, endport: 95, cidrlist: '198.51.100.0/24' },
          job,
        ),
        537,
        /^The range specified, 85-95, conflicts with rule/,
        'overlapping firewall rule',
      );
      refused(
        await alice(
          'createFirewallRule',
          { ipaddressid: id.ip2, protocol: 'tcp', startport: 1, icmptype: 8 },
          job,
        ),
        431,
        /icmptype.*ICMP protocol only/,
        'icmptype with tcp',
      );
      refused(
        await alice('createFirewallRule', { ipaddressid: id.ip2, protocol: 'gre' }, job),
        431,
        /protocol/,
        'unknown protocol',
      );
      refused(
        await alice(
          'createFirewallRule',
          { ipaddressid: id.ip2, protocol: 'udp', startport: 53, cidrlist: '10.0.0.0/33' },
          job,
        ),
        431,
        /cidrlist/,
        'bad CIDR',
      );
      const up = ok(
        await alice('updateFirewallRule', { id: fw.id, fordisplay: false }, job),
        'updateFirewallRule',
      ).firewallrule;
      assert.equal(up.fordisplay, false);
      ok(
        await alice(
          'createTags',
          { resourcetype: 'FirewallRule', resourceids: fw.id, 'tags[0].key': 'app', 'tags[0].value': 'web' },
          job,
        ),
        'createTags on a firewall rule',
      );
      const tagged = ok(
        await alice('listFirewallRules', { 'tags[0].key': 'app', 'tags[0].value': 'web' }),
        'list by tag',
      );
      assert.equal(tagged.count, 1);
      assert.equal(tagged.firewallrule[0].tags[0].value, 'web');
      assert.equal(ok(await alice('listFirewallRules', { ipaddressid: id.ip2 }), 'list').count, 3);
      ok(await alice('deleteFirewallRule', { id: fw.id }, job), 'deleteFirewallRule');
      assert.equal(ok(await alice('listFirewallRules', { ipaddressid: id.ip2 }), 'list').count, 2);
    });

    test('egress rules: inside the guest CIDR, any destination; update and delete', async () => {
      const eg = ok(
        await alice(
          'createEgressFirewallRule',
          {
            networkid: id.web,
            protocol: 'tcp',
            startport: 443,
            cidrlist: id.webCidr,
            destcidrlist: '192.0.2.0/24',
          },
          job,
        ),
        'createEgressFirewallRule',
      ).firewallrule;
      assert.equal(eg.state, 'Active');
      assert.equal(eg.traffictype, 'Egress');
      assert.equal(eg.destcidrlist, '192.0.2.0/24');
      refused(
        await alice(
          'createEgressFirewallRule',
          { networkid: id.web, protocol: 'tcp', startport: 80, cidrlist: '172.16.0.0/24' },
          job,
        ),
        431,
        /cidrlist.*is not within the network cidr/,
        'egress source outside the guest CIDR',
      );
      const renamed = '0e6a7c1e-1111-4222-8333-444455556666';
      const up = ok(
        await alice('updateEgressFirewallRule', { id: eg.id, customid: renamed }, job),
        'update',
      ).firewallrule;
      assert.equal(up.id, renamed);
      assert.equal(ok(await alice('listEgressFirewallRules', { networkid: id.web }), 'list').count, 1);
      // egress rules are not listed as ingress firewall rules
      assert.equal(ok(await alice('listFirewallRules', { id: renamed }), 'list').count ?? 0, 0);
      ok(await alice('deleteEgressFirewallRule', { id: renamed }, job), 'deleteEgressFirewallRule');
      assert.equal(ok(await alice('listEgressFirewallRules', { networkid: id.web }), 'list').count ?? 0, 0);
      for (const t of ['NET.FIREWALLEGRESSOPEN', 'NET.FIREWALLEGRESSUPDATE', 'NET.FIREWALLEGRESSCLOSE'])
        assert.ok(ok(await alice('listEvents', { type: t }), t).count >= 1, `event ${t}`);
    });

    test('rules go with their IP when it is disassociated', async () => {
      const pf = ok(
        await alice(
          'createPortForwardingRule',
          { ipaddressid: id.ip3, protocol: 'tcp', publicport: 25, privateport: 25, virtualmachineid: id.vm1 },
          job,
        ),
        'PF on ip3',
      ).portforwardingrule;
      ok(await alice('disassociateIpAddress', { id: id.ip3 }, job), 'disassociate');
      assert.equal(ok(await alice('listPortForwardingRules', { id: pf.id }), 'list').count ?? 0, 0);
      assert.equal(
        ok(await alice('listEvents', { type: 'NET.RULEDELETE' }), 'events').event.some(
          (e: { resourceid?: string; description: string }) => e.description.includes(pf.id),
        ),
        true,
      );
    });

    test('rules go with their VM (expunge) and their network (delete), with events', async () => {
      const pf = ok(
        await alice(
          'createPortForwardingRule',
          {
            ipaddressid: id.ip1,
            protocol: 'tcp',
            publicport: 3306,
            privateport: 3306,
            virtualmachineid: id.vm1,
          },
          job,
        ),
        'PF to vm1',
      ).portforwardingrule;
      const eg = ok(
        await alice('createEgressFirewallRule', { networkid: id.db, protocol: 'all' }, job),
        'egress on db',
      ).firewallrule;
      ok(await rig.admin('destroyVirtualMachine', { id: id.vm1, expunge: true }, job), 'expunge vm1');
      assert.equal(ok(await alice('listPortForwardingRules', { id: pf.id }), 'list').count ?? 0, 0);
      ok(await rig.admin('destroyVirtualMachine', { id: id.vm2, expunge: true }, job), 'expunge vm2');
      ok(await alice('deleteNetwork', { id: id.db }, job), 'deleteNetwork');
      assert.equal(ok(await alice('listEgressFirewallRules', { id: eg.id }), 'list').count ?? 0, 0);
      const closed = ok(await alice('listEvents', { type: 'NET.FIREWALLEGRESSCLOSE' }), 'events').event;
      assert.ok(closed.some((e: { description: string }) => e.description.includes(eg.id)));
    });

    test('createNetworkOffering without egressdefaultpolicy allows egress', async () => {
      const o = ok(
        await rig.admin('createNetworkOffering', {
          name: 'egress-default',
          displaytext: 'egress-default',
          guestiptype: 'Isolated',
          traffictype: 'GUEST',
          supportedservices: 'Dhcp,Dns,SourceNat,Firewall,PortForwarding',
          'serviceProviderList[0].service': 'Dhcp',
          'serviceProviderList[0].provider': 'VirtualRouter',
        }),
        'createNetworkOffering',
      ).networkoffering;
      assert.equal(o.egressdefaultpolicy, true);
    });
  });
}
