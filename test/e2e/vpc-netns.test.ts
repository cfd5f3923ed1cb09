/**
 * Issue 13, "The VPC router routes between tiers and applies each tier's list", black box: a spawned
 * `stacknet server --driver netns` driven only through the python `cs` client. A VPC with two tiers, one VM in
 * each (real DHCP from its tier's router); tier B's list lets tier A in on tcp/80 only. A's guest reaches B's
 * server on 80 with its own address (the tier routers route over the VPC transit, no NAT between tiers) and not
 * on 22; replaceNetworkACLList with a list allowing 22 only turns that round on the next connection attempt.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsDriver } from '../../src/drivers/netns.js';
import { TestNet, eventually, readLease, tcpGreeterArgv, tcpProbe } from '../../src/netns/index.js';
import { ok, startCsRig, stopCsRig, type CsRig } from '../api/harness.js';

const isRoot = process.getuid?.() === 0;

describe(
  'VPC tiers and their ACL lists on the netns driver (python cs)',
  { skip: !isRoot && 'needs root' },
  () => {
    let rig: Partial<CsRig> = {};
    const prefix = `sn-${randomBytes(3).toString('hex')}-`;
    const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-vpc-'));
    const ctl = `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`;
    // Only to track the servers started in the VMs' namespaces (the driver owns the namespaces themselves).
    const procs = new TestNet();
    const id: Record<string, string> = {};
    const vm: Record<'a' | 'b', { ip: string; ns: string }> = {
      a: { ip: '', ns: '' },
      b: { ip: '', ns: '' },
    };
    const cs = (cmd: string, p: Record<string, unknown>, what = cmd) =>
      rig.admin!(cmd, p, { fetch_result: true }).then((r) => ok(r, what));

    before(async () => {
      rig = await startCsRig('sqlite', {
        STACKNET_DRIVER: 'netns',
        STACKNET_DATA_DIR: dataDir,
        STACKNET_NETNS_PREFIX: prefix,
        STACKNET_CONTROL_CIDR: ctl,
      });
      const z = await cs('createZone', {
        name: 'z1',
        networktype: 'Advanced',
        dns1: '192.0.2.53',
        internaldns1: '192.0.2.53',
      });
      id.zone = z.zone.id;
      const pn = await cs('createPhysicalNetwork', {
        zoneid: id.zone,
        name: 'pn1',
        isolationmethods: 'VLAN',
        vlan: '300-399',
      });
      for (const t of ['Guest', 'Public', 'Management'])
        await cs('addTrafficType', { physicalnetworkid: pn.physicalnetwork.id, traffictype: t });
      await cs('updatePhysicalNetwork', { id: pn.physicalnetwork.id, state: 'Enabled' });
      await cs('createVlanIpRange', {
        zoneid: id.zone,
        vlan: '60',
        gateway: '203.0.113.1',
        netmask: '255.255.255.0',
        startip: '203.0.113.10',
        endip: '203.0.113.40',
        forvirtualnetwork: true,
      });
      const vo = await cs('listVPCOfferings', {});
      const vpc = await cs('createVPC', {
        zoneid: id.zone,
        name: 'vpc1',
        displaytext: 'vpc1',
        cidr: '10.98.0.0/16',
        vpcofferingid: vo.vpcoffering[0].id,
      });
      id.vpc = vpc.vpc.id;
      const list = async (name: string, port: number) => {
        const l = await cs('createNetworkACLList', { name, description: name, vpcid: id.vpc });
        await cs('createNetworkACL', {
          aclid: l.networkacllist.id,
          protocol: 'tcp',
          startport: port,
          endport: port,
          number: 10,
          traffictype: 'Ingress',
          action: 'Allow',
          cidrlist: '10.98.1.0/24',
        });
        return l.networkacllist.id as string;
      };
      // Tier A's own list lets it out anywhere; tier B's has no egress item, so (as CloudStack's VR) it may send
      // anywhere too: network-acls/desired.ts adds the implicit egress item.
      const out = await cs('createNetworkACLList', { name: 'out', description: 'out', vpcid: id.vpc });
      await cs('createNetworkACL', {
        aclid: out.networkacllist.id,
        protocol: 'all',
        number: 10,
        traffictype: 'Egress',
        action: 'Allow',
        cidrlist: '0.0.0.0/0',
      });
      id.out = out.networkacllist.id;
      id.web = await list('web', 80);
      id.ssh = await list('ssh', 22);
      const tierOffering = (
        await cs('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingForVpcNetworks' })
      ).networkoffering[0].id;
      const tier = async (name: string, gateway: string, extra: Record<string, unknown> = {}) =>
        (
          await cs('createNetwork', {
            zoneid: id.zone,
            name,
            displaytext: name,
            networkofferingid: tierOffering,
            vpcid: id.vpc,
            gateway,
            netmask: '255.255.255.0',
            ...extra,
          })
        ).network.id as string;
      id.tierA = await tier('tier-a', '10.98.1.1', { aclid: id.out });
      id.tierB = await tier('tier-b', '10.98.2.1', { aclid: id.web });
      const so = (await cs('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0].id;
      const tpl = (await cs('listTemplates', { templatefilter: 'featured' })).template[0].id;
      for (const [k, net] of [
        ['a', id.tierA],
        ['b', id.tierB],
      ] as const) {
        const d = await cs('deployVirtualMachine', {
          serviceofferingid: so,
          templateid: tpl,
          zoneid: id.zone,
          networkids: net,
          name: `vm-${k}`,
        });
        vm[k] = { ip: d.virtualmachine.nic[0].ipaddress, ns: `${prefix}${d.virtualmachine.instancename}` };
      }
      for (const k of ['a', 'b'] as const)
        await eventually(
          async () => {
            const l = await readLease(vm[k].ns, 'eth0');
            assert.equal(l?.ip, vm[k].ip);
          },
          { timeoutMs: 30_000, what: `vm-${k} to hold ${vm[k].ip} over DHCP` },
        );
      procs.spawnIn(vm.b.ns, tcpGreeterArgv(80, 'http'));
      procs.spawnIn(vm.b.ns, tcpGreeterArgv(22, 'ssh'));
      procs.spawnIn(`${prefix}up-z1`, tcpGreeterArgv(8080, 'up'));
    });

    after(async () => {
      await procs.cleanup();
      await stopCsRig(rig);
      await NetnsDriver.cleanup(join(dataDir, 'netns'));
      rmSync(dataDir, { recursive: true, force: true });
    });

    test("tier A reaches tier B on tcp/80 with its own address, not on 22 (B's list)", async () => {
      await eventually(
        async () => {
          const r = await tcpProbe(vm.a.ns, vm.b.ip, 80, 1);
          assert.equal(r.reply, `http ${vm.a.ip}`, r.stderr);
        },
        { timeoutMs: 30_000, what: 'vm-a → vm-b:80 across the tiers' },
      );
      const ssh = await tcpProbe(vm.a.ns, vm.b.ip, 22, 1);
      assert.equal(ssh.ok, false, `22 must not pass: ${ssh.reply}`);
    });

    test('replaceNetworkACLList turns it round: 22 passes, 80 no longer does', async () => {
      await cs('replaceNetworkACLList', { aclid: id.ssh, networkid: id.tierB });
      await eventually(
        async () => {
          const r = await tcpProbe(vm.a.ns, vm.b.ip, 22, 1);
          assert.equal(r.reply, `ssh ${vm.a.ip}`, r.stderr);
        },
        { timeoutMs: 30_000, what: 'vm-a → vm-b:22 after the replace' },
      );
      const http = await tcpProbe(vm.a.ns, vm.b.ip, 80, 1);
      assert.equal(http.ok, false, `80 must not pass any more: ${http.reply}`);
    });

    test("both tiers reach outside through the edge tier, seen as the VPC's source-NAT address", async () => {
      const snat = (await cs('listPublicIpAddresses', { vpcid: id.vpc, issourcenat: true }))
        .publicipaddress[0].ipaddress as string;
      for (const k of ['a', 'b'] as const)
        await eventually(
          async () => {
            const r = await tcpProbe(vm[k].ns, '203.0.113.1', 8080, 1);
            assert.equal(r.reply, `up ${snat}`, r.stderr);
          },
          { timeoutMs: 30_000, what: `vm-${k} → the upstream server through the VPC's source NAT` },
        );
    });
  },
);
