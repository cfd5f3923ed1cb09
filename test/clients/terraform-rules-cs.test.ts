/**
 * Terraform's CloudStack provider (issue 14), its rule resources: the call sequences cloudstack_port_forward,
 * cloudstack_firewall, cloudstack_egress_firewall, cloudstack_network_acl, cloudstack_network_acl_rule and
 * cloudstack_static_nat make through the cloudstack-go SDK, replayed with python `cs` (simulator driver) on SQLite
 * and PostgreSQL. Each is created, read (refresh), updated as the provider does it (a changed port forward or
 * firewall port is a delete and a create; an ACL item is updated in place), deleted, and read again after a delete
 * made outside Terraform: the list the provider refreshes from must no longer hold the rule, and a second delete
 * must answer the "entity does not exist" text the provider treats as already gone. Answers carry the fields the
 * provider reads, with the JSON types the SDK's structs decode (port forward and ACL item ports as strings,
 * firewall icmp fields and ACL numbers as numbers, `cidrlist` as one comma-separated string).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, CsRig } from '../api/harness.js';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import { createTestZone, createUserClient } from '../networking/zone-fixture.js';
import { carries, job, postJob, sdkSteps, typed } from './terraform-sdk.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');

/** The provider's cidr_list set, from the comma-separated `cidrlist` it splits. */
const cidrSet = (list: string) => (list === '' ? [] : list.split(',').sort());

/** The SDK's PortForwardingRule: ports are strings the provider parses with strconv.Atoi. */
const pfTypes = {
  id: 'string',
  protocol: 'string',
  privateport: 'string',
  privateendport: 'string',
  publicport: 'string',
  publicendport: 'string',
  virtualmachineid: 'string',
  vmguestip: 'string',
  cidrlist: 'string',
  state: 'string',
} as const;
/** FirewallRule / EgressFirewallRule: icmp fields ints; ports ints (the SDK also converts strings). */
const fwTypes = {
  id: 'string',
  protocol: 'string',
  cidrlist: 'string',
  destcidrlist: 'string',
  icmptype: 'number',
  icmpcode: 'number',
  state: 'string',
} as const;
/** What the provider reads of a firewall or egress rule. */
const fwFields = ['id', 'protocol', 'cidrlist'];
/** NetworkACL (an ACL item): ports strings, number and icmp fields ints. */
const aclItemTypes = {
  id: 'string',
  aclid: 'string',
  action: 'string',
  protocol: 'string',
  traffictype: 'string',
  cidrlist: 'string',
  startport: 'string',
  endport: 'string',
  number: 'number',
  icmptype: 'number',
  icmpcode: 'number',
  reason: 'string',
} as const;

for (const kind of kinds) {
  describe(`Terraform provider rule resources with python cs (${kind})`, () => {
    let rig: CsRig;
    let alice: CsClient;
    let steps: ReturnType<typeof sdkSteps>;
    let zone: string;
    let net: string;
    let netCidr: string;
    let vm: string;

    const createNet = async (name: string) => {
      const offering = await steps.idByName(
        'listNetworkOfferings',
        'networkoffering',
        'DefaultIsolatedNetworkOfferingWithSourceNatService',
      );
      return ok(
        await alice('createNetwork', { name, displaytext: name, networkofferingid: offering, zoneid: zone }),
        `createNetwork ${name}`,
      ).network.id as string;
    };

    const newIp = async () =>
      ok(await alice('associateIpAddress', { networkid: net }, job), 'associateIpAddress').ipaddress
        .id as string;

    /** GetVirtualMachineByID, and the NIC network the provider sends (vm_guest_ip's NIC, else the first). */
    const vmNic = async (guestIp?: string) => {
      const v = await steps.byId('listVirtualMachines', 'virtualmachine', vm);
      carries(v, ['id', 'nic'], 'listVirtualMachines');
      const nic = guestIp ? v.nic.find((n: any) => n.ipaddress === guestIp) : v.nic[0];
      carries(nic, ['networkid', 'ipaddress'], 'VM NIC');
      return nic as { networkid: string; ipaddress: string };
    };

    /** One create call as the SDK makes it (a form POST, the job awaited): the new rule's id. */
    const creator =
      (command: string, key: string, base: Record<string, unknown>, types: Parameters<typeof typed>[1]) =>
      async (f: Record<string, unknown>) => {
        const r = ok(await alice(command, { ...base, ...f }, postJob), `${command} ${JSON.stringify(f)}`)[
          key
        ];
        carries(r, ['id'], command);
        typed(r, types, command);
        return r.id as string;
      };

    /**
     * A refresh: the list the provider reads with listall=true, every item of the SDK's JSON types and carrying
     * what the provider reads; the items by id.
     */
    const refresh = async (
      command: string,
      params: Record<string, unknown>,
      key: string,
      types: Parameters<typeof typed>[1],
      fields: string[],
    ) => {
      const l = ok(await alice(command, { ...params, listall: true }), command);
      const items: any[] = l[key] ?? [];
      assert.equal(l.count ?? 0, items.length, `${command}: count ${JSON.stringify(l)}`);
      for (const it of items) {
        typed(it, types, command);
        carries(it, fields, command);
      }
      return new Map<string, any>(items.map((it) => [it.id, it]));
    };

    before(async () => {
      rig = await startCsRig(kind);
      const { admin, bridge, server } = rig;
      alice = (await createUserClient(admin, (k, s) => bridge.client(server.url, k, s), 'tf-rules')).client;
      steps = sdkSteps(alice);
      zone = (
        await createTestZone(admin, {
          name: 'tf-rules-zone',
          vlans: '740-759',
          publicVlan: '42',
          publicPrefix: '192.0.2',
          guestCidr: '10.70.0.0/16',
        })
      ).zone;
      net = await createNet('tf-rules-net');
      const so = ok(await alice('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0]
        .id;
      const tpl = ok(await alice('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
      vm = ok(
        await alice(
          'deployVirtualMachine',
          { serviceofferingid: so, templateid: tpl, zoneid: zone, networkids: net, name: 'tf-vm' },
          job,
        ),
        'deployVirtualMachine',
      ).virtualmachine.id;
      netCidr = (await steps.byId('listNetworks', 'network', net)).cidr;
    });

    after(async () => {
      await stopCsRig(rig ?? {});
    });

    test('cloudstack_port_forward: create, read, update, delete, read after', async () => {
      const ip = await newIp();
      // Create: the IP read across projects (to inherit one), the VM read for its NIC's network.
      // projectid=-1 lists only project resources (CloudStack, for a user): nothing to inherit here.
      const inherit = ok(await alice('listPublicIpAddresses', { id: ip, projectid: -1 }), 'ip in projects');
      assert.equal(inherit.count ?? 0, 0);
      await steps.byId('listPublicIpAddresses', 'publicipaddress', ip);
      const nic = await vmNic();
      const create = creator(
        'createPortForwardingRule',
        'portforwardingrule',
        { ipaddressid: ip, virtualmachineid: vm, openfirewall: false },
        pfTypes,
      );
      const ssh = await create({
        protocol: 'tcp',
        privateport: 22,
        publicport: 2222,
        networkid: nic.networkid,
      });
      const withGuestIp = await vmNic(nic.ipaddress);
      const range = await create({
        protocol: 'udp',
        privateport: 9000,
        privateendport: 9009,
        publicport: 8000,
        publicendport: 8009,
        vmguestip: nic.ipaddress,
        networkid: withGuestIp.networkid,
      });

      // Read: the IP (by id, then projectid=-1), then every forward of the IP.
      const read = async () => {
        await steps.byId('listPublicIpAddresses', 'publicipaddress', ip);
        const m = await refresh(
          'listPortForwardingRules',
          { ipaddressid: ip },
          'portforwardingrule',
          pfTypes,
          ['id', 'protocol', 'privateport', 'publicport', 'virtualmachineid', 'vmguestip'],
        );
        for (const f of m.values()) {
          for (const p of ['privateport', 'privateendport', 'publicport', 'publicendport'])
            assert.match(f[p] ?? '', /^\d+$/, `strconv.Atoi(${p}) of ${JSON.stringify(f)}`);
          assert.equal(f.virtualmachineid, vm);
          assert.equal(f.vmguestip, nic.ipaddress);
        }
        return m;
      };
      const first = await read();
      assert.deepEqual([...first.keys()].sort(), [ssh, range].sort());
      const s = first.get(ssh);
      assert.deepEqual(
        [s.protocol, s.privateport, s.privateendport, s.publicport, s.publicendport],
        ['tcp', '22', '22', '2222', '2222'],
      );
      const r = first.get(range);
      assert.deepEqual(
        [r.protocol, r.privateport, r.privateendport, r.publicport, r.publicendport],
        ['udp', '9000', '9009', '8000', '8009'],
      );

      // Update: a changed forward is deleted, then created again.
      ok(await alice('deletePortForwardingRule', { id: ssh }, postJob), 'deletePortForwardingRule');
      const ssh2 = await create({
        protocol: 'tcp',
        privateport: 22,
        publicport: 2200,
        networkid: nic.networkid,
      });
      const second = await read();
      assert.deepEqual([...second.keys()].sort(), [ssh2, range].sort());
      assert.equal(second.get(ssh2).publicport, '2200');

      // A forward deleted outside Terraform is missing from the refresh; deleting it again is tolerated.
      ok(await alice('deletePortForwardingRule', { id: range }, postJob), 'delete outside');
      assert.deepEqual([...(await read()).keys()], [ssh2]);
      await steps.alreadyGone('deletePortForwardingRule', range, postJob);
      // Delete.
      ok(await alice('deletePortForwardingRule', { id: ssh2 }, postJob), 'delete');
      assert.equal((await read()).size, 0);
      const empty = ok(await alice('listPortForwardingRules', { ipaddressid: ip, listall: true }), 'empty');
      assert.equal(empty.count ?? 0, 0);
      await steps.alreadyGone('deletePortForwardingRule', ssh2, postJob);
      // The IP released outside Terraform: the refresh's by-id read finds nothing.
      ok(await alice('disassociateIpAddress', { id: ip }, job), 'disassociateIpAddress');
      await steps.goneFromReads('listPublicIpAddresses', ip);
    });

    test('cloudstack_firewall: create, read, update, delete, read after', async () => {
      const ip = await newIp();
      const create = creator('createFirewallRule', 'firewallrule', { ipaddressid: ip }, fwTypes);
      // One rule with ports ["80", "443"] and two CIDRs: one createFirewallRule per port; icmp apart.
      const web = { protocol: 'tcp', cidrlist: '10.0.0.0/8,192.168.0.0/16' };
      const p80 = await create({ ...web, startport: 80, endport: 80 });
      const p443 = await create({ ...web, startport: 443, endport: 443 });
      const icmp = await create({ protocol: 'icmp', cidrlist: '0.0.0.0/0', icmptype: 8, icmpcode: 0 });

      const read = async () => {
        const m = await refresh('listFirewallRules', { ipaddressid: ip }, 'firewallrule', fwTypes, fwFields);
        for (const f of m.values())
          for (const p of ['startport', 'endport'])
            if (f[p] !== undefined) assert.match(String(f[p]), /^\d+$/, `${p} of ${JSON.stringify(f)}`);
        return m;
      };
      const first = await read();
      assert.deepEqual([...first.keys()].sort(), [p80, p443, icmp].sort());
      assert.deepEqual(cidrSet(first.get(p80).cidrlist), ['10.0.0.0/8', '192.168.0.0/16']);
      assert.equal(first.get(p443).protocol, 'tcp');
      const i = first.get(icmp);
      assert.deepEqual(
        [i.protocol, i.icmptype, i.icmpcode, cidrSet(i.cidrlist)],
        ['icmp', 8, 0, ['0.0.0.0/0']],
      );

      // Update: ports ["80", "8080"]: 443's rule deleted, 8080's created.
      ok(await alice('deleteFirewallRule', { id: p443 }, postJob), 'deleteFirewallRule');
      const p8080 = await create({ ...web, startport: 8080, endport: 8080 });
      assert.deepEqual([...(await read()).keys()].sort(), [p80, p8080, icmp].sort());

      // Deleted outside Terraform: gone from the refresh, and its delete tolerated.
      ok(await alice('deleteFirewallRule', { id: icmp }, postJob), 'delete outside');
      assert.deepEqual([...(await read()).keys()].sort(), [p80, p8080].sort());
      await steps.alreadyGone('deleteFirewallRule', icmp, postJob);
      for (const id of [p80, p8080])
        ok(await alice('deleteFirewallRule', { id }, postJob), 'deleteFirewallRule');
      const empty = ok(await alice('listFirewallRules', { ipaddressid: ip, listall: true }), 'empty');
      assert.equal(empty.count ?? 0, 0);
      await steps.alreadyGone('deleteFirewallRule', p80, postJob);
      ok(await alice('disassociateIpAddress', { id: ip }, job), 'disassociateIpAddress');
    });

    test('cloudstack_egress_firewall: create, read, update, delete, read after', async () => {
      const create = creator('createEgressFirewallRule', 'firewallrule', { networkid: net }, fwTypes);
      const https = await create({
        protocol: 'tcp',
        cidrlist: netCidr,
        destcidrlist: '198.51.100.0/24,203.0.113.0/24',
        startport: 443,
        endport: 443,
      });
      const all = await create({ protocol: 'all', cidrlist: netCidr });
      const icmp = await create({ protocol: 'icmp', cidrlist: netCidr, icmptype: 8, icmpcode: 0 });
      // cidr_list left out (not sent): CloudStack stores and answers the guest CIDR. 0.0.0.0/0 is accepted.
      const dns = await create({ protocol: 'udp', startport: 53, endport: 53 });
      const anySource = await create({
        protocol: 'udp',
        cidrlist: '0.0.0.0/0',
        startport: 123,
        endport: 123,
      });

      const read = () =>
        refresh('listEgressFirewallRules', { networkid: net }, 'firewallrule', fwTypes, fwFields);
      const first = await read();
      assert.deepEqual([...first.keys()].sort(), [https, all, icmp, dns, anySource].sort());
      assert.equal(first.get(dns).cidrlist, netCidr);
      assert.equal(first.get(anySource).cidrlist, '0.0.0.0/0');
      const h = first.get(https);
      assert.deepEqual(
        [h.protocol, cidrSet(h.cidrlist), cidrSet(h.destcidrlist ?? '')],
        ['tcp', [netCidr], ['198.51.100.0/24', '203.0.113.0/24']],
      );
      assert.equal(first.get(all).protocol.toLowerCase(), 'all');
      assert.deepEqual(cidrSet(first.get(all).destcidrlist ?? ''), [], 'no destination: an empty set');
      const i = first.get(icmp);
      assert.deepEqual([i.protocol, i.icmptype, i.icmpcode], ['icmp', 8, 0]);

      // Update: port 443 → 8443 is a delete and a create.
      ok(await alice('deleteEgressFirewallRule', { id: https }, postJob), 'deleteEgressFirewallRule');
      const alt = await create({ protocol: 'tcp', cidrlist: netCidr, startport: 8443, endport: 8443 });
      assert.deepEqual([...(await read()).keys()].sort(), [alt, all, icmp, dns, anySource].sort());

      ok(await alice('deleteEgressFirewallRule', { id: all }, postJob), 'delete outside');
      assert.deepEqual([...(await read()).keys()].sort(), [alt, icmp, dns, anySource].sort());
      await steps.alreadyGone('deleteEgressFirewallRule', all, postJob);
      for (const id of [alt, icmp, dns, anySource])
        ok(await alice('deleteEgressFirewallRule', { id }, postJob), 'delete');
      const empty = ok(await alice('listEgressFirewallRules', { networkid: net, listall: true }), 'empty');
      assert.equal(empty.count ?? 0, 0);
      await steps.alreadyGone('deleteEgressFirewallRule', alt, postJob);
    });

    test('cloudstack_network_acl and cloudstack_network_acl_rule: create, read, update, delete, read after', async () => {
      const vpcOffering = await steps.idByName('listVPCOfferings', 'vpcoffering', 'Default VPC offering');
      const vpc = ok(
        await alice(
          'createVPC',
          {
            name: 'tf-acl-vpc',
            displaytext: 'tf-acl-vpc',
            vpcofferingid: vpcOffering,
            zoneid: zone,
            cidr: '10.80.0.0/16',
          },
          job,
        ),
        'createVPC',
      ).vpc.id as string;

      // cloudstack_network_acl: the VPC read across projects, the list created with the name as description.
      // The VPC read across projects: not in one, so nothing to inherit (count 0, as for the IP above).
      assert.equal(ok(await alice('listVPCs', { id: vpc, projectid: -1 }), 'vpc in projects').count ?? 0, 0);
      const created = ok(
        await alice('createNetworkACLList', { name: 'tf-acl', vpcid: vpc, description: 'tf-acl' }, postJob),
        'createNetworkACLList',
      ).networkacllist;
      carries(created, ['id'], 'createNetworkACLList');
      const acl = created.id as string;
      const list = await steps.byId('listNetworkACLLists', 'networkacllist', acl);
      assert.deepEqual([list.name, list.description, list.vpcid], ['tf-acl', 'tf-acl', vpc]);
      assert.equal(list.vpcid, (await steps.byId('listVPCs', 'vpc', list.vpcid)).id);

      // cloudstack_network_acl_rule: the list checked, one createNetworkACL per rule (port, all ports, icmp, all).
      await steps.byId('listNetworkACLLists', 'networkacllist', acl);
      const create = creator('createNetworkACL', 'networkacl', { aclid: acl }, aclItemTypes);
      const ssh = await create({
        protocol: 'tcp',
        number: 10,
        action: 'allow',
        cidrlist: '10.0.0.0/8,172.16.0.0/12',
        traffictype: 'ingress',
        reason: 'ssh in',
        startport: 22,
        endport: 22,
      });
      const anyTcp = await create({
        protocol: 'tcp',
        action: 'deny',
        cidrlist: '0.0.0.0/0',
        traffictype: 'egress',
      });
      const icmp = await create({
        protocol: 'icmp',
        action: 'allow',
        cidrlist: '0.0.0.0/0',
        traffictype: 'ingress',
        icmptype: -1,
        icmpcode: -1,
      });
      const all = await create({
        protocol: 'all',
        action: 'allow',
        cidrlist: '10.80.0.0/16',
        traffictype: 'egress',
      });

      const read = async () => {
        await steps.byId('listNetworkACLLists', 'networkacllist', acl);
        return refresh('listNetworkACLs', { aclid: acl }, 'networkacl', aclItemTypes, [
          'id',
          'action',
          'protocol',
          'traffictype',
          'cidrlist',
          'number',
        ]);
      };
      const first = await read();
      assert.deepEqual([...first.keys()].sort(), [ssh, anyTcp, icmp, all].sort());
      const s = first.get(ssh);
      assert.deepEqual(
        [s.action.toLowerCase(), s.protocol, s.traffictype.toLowerCase(), cidrSet(s.cidrlist), s.number],
        ['allow', 'tcp', 'ingress', ['10.0.0.0/8', '172.16.0.0/12'], 10],
      );
      assert.deepEqual([s.startport, s.endport, s.reason], ['22', '22', 'ssh in']);
      const a = first.get(anyTcp);
      assert.deepEqual([a.action.toLowerCase(), a.traffictype.toLowerCase()], ['deny', 'egress']);
      assert.ok(a.number > 10, `a number is chosen: ${JSON.stringify(a)}`);
      const i = first.get(icmp);
      assert.deepEqual([i.protocol, i.icmptype, i.icmpcode], ['icmp', -1, -1]);
      assert.equal(first.get(all).protocol, 'all');

      // Update in place: updateNetworkACLItem with every field of the new rule.
      ok(
        await alice(
          'updateNetworkACLItem',
          {
            id: ssh,
            action: 'deny',
            cidrlist: '10.1.0.0/16',
            reason: 'ssh closed',
            protocol: 'tcp',
            traffictype: 'ingress',
            number: 10,
            startport: 2222,
            endport: 2222,
          },
          postJob,
        ),
        'updateNetworkACLItem',
      );
      const u = (await read()).get(ssh);
      assert.deepEqual(
        [u.action.toLowerCase(), cidrSet(u.cidrlist), u.reason, u.startport, u.endport, u.number],
        ['deny', ['10.1.0.0/16'], 'ssh closed', '2222', '2222', 10],
      );

      // An item deleted outside Terraform is gone from the refresh; its delete is tolerated.
      ok(await alice('deleteNetworkACL', { id: icmp }, postJob), 'delete outside');
      assert.deepEqual([...(await read()).keys()].sort(), [ssh, anyTcp, all].sort());
      await steps.alreadyGone('deleteNetworkACL', icmp, postJob);
      for (const id of [ssh, anyTcp, all])
        ok(await alice('deleteNetworkACL', { id }, postJob), 'deleteNetworkACL');
      const empty = ok(await alice('listNetworkACLs', { aclid: acl, listall: true }), 'no items');
      assert.equal(empty.count ?? 0, 0);
      await steps.alreadyGone('deleteNetworkACL', ssh, postJob);

      // cloudstack_network_acl deleted: the list is gone from both reads, and a second delete is tolerated.
      ok(await alice('deleteNetworkACLList', { id: acl }, postJob), 'deleteNetworkACLList');
      await steps.goneFromReads('listNetworkACLLists', acl);
      await steps.alreadyGone('deleteNetworkACLList', acl, postJob);
      ok(await alice('deleteVPC', { id: vpc }, job), 'deleteVPC');
    });

    test('cloudstack_static_nat: create, read, delete, read after', async () => {
      const ip = await newIp();
      const enable = async (extra: Record<string, unknown>) => {
        const r = ok(
          await alice(
            'enableStaticNat',
            { ipaddressid: ip, virtualmachineid: vm, ...extra },
            { method: 'post' },
          ),
          'enableStaticNat',
        );
        // EnableStaticNatResponse.success: a boolean (the SDK also takes "true").
        assert.ok(r.success === true || r.success === 'true', JSON.stringify(r));
      };
      const read = async () => {
        const a = await steps.byId('listPublicIpAddresses', 'publicipaddress', ip);
        typed(
          a,
          { isstaticnat: 'boolean', virtualmachineid: 'string', vmipaddress: 'string', id: 'string' },
          'ip',
        );
        return a;
      };
      const nic = await vmNic();
      await enable({ networkid: nic.networkid });
      const a = await read();
      assert.equal(a.isstaticnat, true);
      assert.deepEqual([a.virtualmachineid, a.vmipaddress, a.id], [vm, nic.ipaddress, ip]);

      // Delete (disableStaticNat by ipaddressid): the refresh then sees isstaticnat false and drops it.
      ok(await alice('disableStaticNat', { ipaddressid: ip }, postJob), 'disableStaticNat');
      assert.equal((await read()).isstaticnat, false);

      // With vm_guest_ip: the NIC holding it gives the networkid.
      await enable({ vmguestip: nic.ipaddress, networkid: (await vmNic(nic.ipaddress)).networkid });
      assert.equal((await read()).vmipaddress, nic.ipaddress);
      // The IP released outside Terraform: no match on the refresh.
      ok(await alice('disassociateIpAddress', { id: ip }, job), 'disassociateIpAddress');
      await steps.goneFromReads('listPublicIpAddresses', ip);
    });
  });
}
