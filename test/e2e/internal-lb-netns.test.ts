/**
 * Issue 18, "an internal LB in a VPC tier balances traffic from another tier, subject to that tier's network ACL",
 * black box: a spawned `stacknet server --driver netns` driven only through the python `cs` client. A VPC with
 * two tiers; three VMs in tier B each answer on tcp/80 with their name; createLoadBalancer (scheme Internal) in
 * tier B makes the internal LB appliance (a namespace on B's bridge holding the source address, haproxy only).
 * A client VM in tier A:
 * - sees roundrobin spread its connections evenly over the three (counted);
 * - is blocked once tier B's ACL item for tier A's CIDR on the port says Deny, and let through again on Allow;
 * - loses the service while the appliance is stopped (stopInternalLoadBalancerVM) and has it back, with the same
 *   rule and members, after startInternalLoadBalancerVM.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsDriver } from '../../src/drivers/netns.js';
import { TestNet, eventually, execIn, readLease, tcpGreeterArgv, tcpProbe } from '../../src/netns/index.js';
import { ok, startCsRig, stopCsRig, type CsRig } from '../api/harness.js';

const isRoot = process.getuid?.() === 0;

describe(
  'internal load balancing in a VPC tier on the netns driver (python cs)',
  { skip: !isRoot && 'needs root' },
  () => {
    let rig: Partial<CsRig> = {};
    const prefix = `sn-${randomBytes(3).toString('hex')}-`;
    const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-ilb-'));
    const ctl = `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`;
    // Only to track the servers started in the VMs' namespaces (the driver owns the namespaces themselves).
    const procs = new TestNet();
    const id: Record<string, string> = {};
    const vm: Record<string, { id: string; ip: string; ns: string }> = {};
    const backends = ['b1', 'b2', 'b3'];
    let src = '';
    const cs = (cmd: string, p: Record<string, unknown>, what = cmd) =>
      rig.admin!(cmd, p, { fetch_result: true }).then((r) => ok(r, what));

    /** n connections from the client in tier A to the LB: who answered (the greeting names the VM). */
    const tally = async (n: number): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const r = await tcpProbe(vm.a!.ns, src, 80, 1);
        const who = r.ok ? r.reply.split(' ')[0]! : 'failed';
        out[who] = (out[who] ?? 0) + 1;
      }
      return out;
    };

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
        vlan: '400-499',
      });
      for (const t of ['Guest', 'Public', 'Management'])
        await cs('addTrafficType', { physicalnetworkid: pn.physicalnetwork.id, traffictype: t });
      await cs('updatePhysicalNetwork', { id: pn.physicalnetwork.id, state: 'Enabled' });
      await cs('createVlanIpRange', {
        zoneid: id.zone,
        vlan: '61',
        gateway: '203.0.113.1',
        netmask: '255.255.255.0',
        startip: '203.0.113.10',
        endip: '203.0.113.40',
        forvirtualnetwork: true,
      });
      const vo = await cs('listVPCOfferings', {});
      id.vpc = (
        await cs('createVPC', {
          zoneid: id.zone,
          name: 'vpc1',
          displaytext: 'vpc1',
          cidr: '10.97.0.0/16',
          vpcofferingid: vo.vpcoffering[0].id,
        })
      ).vpc.id;
      // Tier B lets tier A in on tcp/80 (item 10, turned to Deny and back by the ACL test); tier A goes out.
      const web = await cs('createNetworkACLList', { name: 'web', description: 'web', vpcid: id.vpc });
      id.webAcl = web.networkacllist.id;
      id.item = (
        await cs('createNetworkACL', {
          aclid: id.webAcl,
          protocol: 'tcp',
          startport: 80,
          endport: 80,
          number: 10,
          traffictype: 'Ingress',
          action: 'Allow',
          cidrlist: '10.97.1.0/24',
        })
      ).networkacl.id;
      const out = await cs('createNetworkACLList', { name: 'out', description: 'out', vpcid: id.vpc });
      await cs('createNetworkACL', {
        aclid: out.networkacllist.id,
        protocol: 'all',
        number: 10,
        traffictype: 'Egress',
        action: 'Allow',
        cidrlist: '0.0.0.0/0',
      });
      const tierOffering = (
        await cs('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingForVpcNetworks' })
      ).networkoffering[0].id;
      const tier = async (name: string, gateway: string, aclid: string) =>
        (
          await cs('createNetwork', {
            zoneid: id.zone,
            name,
            displaytext: name,
            networkofferingid: tierOffering,
            vpcid: id.vpc,
            gateway,
            netmask: '255.255.255.0',
            aclid,
          })
        ).network.id as string;
      id.tierA = await tier('tier-a', '10.97.1.1', out.networkacllist.id);
      id.tierB = await tier('tier-b', '10.97.2.1', id.webAcl!);
      const so = (await cs('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0].id;
      const tpl = (await cs('listTemplates', { templatefilter: 'featured' })).template[0].id;
      for (const [k, net] of [['a', id.tierA], ...backends.map((b) => [b, id.tierB] as const)] as const) {
        const d = await cs('deployVirtualMachine', {
          serviceofferingid: so,
          templateid: tpl,
          zoneid: id.zone,
          networkids: net,
          name: `vm-${k}`,
        });
        vm[k] = {
          id: d.virtualmachine.id,
          ip: d.virtualmachine.nic[0].ipaddress,
          ns: `${prefix}${d.virtualmachine.instancename}`,
        };
      }
      for (const k of Object.keys(vm))
        await eventually(
          async () => {
            const l = await readLease(vm[k]!.ns, 'eth0');
            assert.equal(l?.ip, vm[k]!.ip);
          },
          { timeoutMs: 30_000, what: `vm-${k} to hold ${vm[k]!.ip} over DHCP` },
        );
      for (const b of backends) procs.spawnIn(vm[b]!.ns, tcpGreeterArgv(80, b));
    });

    after(async () => {
      await procs.cleanup();
      await stopCsRig(rig);
      await NetnsDriver.cleanup(join(dataDir, 'netns'));
      rmSync(dataDir, { recursive: true, force: true });
    });

    test('roundrobin over the three VMs of tier B, seen from tier A', async () => {
      const lb = (
        await cs('createLoadBalancer', {
          name: 'web',
          scheme: 'Internal',
          sourceipaddressnetworkid: id.tierB,
          networkid: id.tierB,
          sourceport: 80,
          instanceport: 80,
          algorithm: 'roundrobin',
        })
      ).loadbalancer;
      id.lb = lb.id;
      src = lb.sourceipaddress;
      assert.match(src, /^10\.97\.2\.\d+$/);
      await cs('assignToLoadBalancerRule', {
        id: id.lb,
        virtualmachineids: backends.map((b) => vm[b]!.id).join(','),
      });
      const ilb = (await cs('listInternalLoadBalancerVMs', { vpcid: id.vpc })).internalloadbalancervm[0];
      id.ilb = ilb.id;
      assert.equal(ilb.state, 'Running');
      // The appliance is a namespace with only its address and haproxy: no dnsmasq in it.
      const ns = `${prefix}${ilb.name}`;
      const addr = await execIn(ns, ['ip', '-4', '-o', 'addr', 'show', 'eth0']);
      assert.match(addr.stdout, new RegExp(`${src.replace(/\./g, '\\.')}/24`));
      const route = await execIn(ns, ['ip', 'route', 'show', 'default']);
      assert.match(route.stdout, /via 10\.97\.2\.1 dev eth0/);
      const pids = await execIn(ns, ['ip', 'netns', 'pids', ns]);
      for (const pid of pids.stdout.split('\n').filter(Boolean)) {
        const comm = await execIn(ns, ['cat', `/proc/${pid}/comm`]);
        assert.notEqual(comm.stdout.trim(), 'dnsmasq', 'the appliance runs no dnsmasq');
      }
      await eventually(
        async () => {
          const r = await tcpProbe(vm.a!.ns, src, 80, 1);
          assert.ok(r.ok, r.stderr);
        },
        { timeoutMs: 30_000, what: 'the internal LB to answer tier A' },
      );
      const t = await tally(30);
      assert.deepEqual(t, { b1: 10, b2: 10, b3: 10 }, JSON.stringify(t));
    });

    test("tier B's network ACL: Deny for tier A's CIDR blocks it, Allow lets it through", async () => {
      await cs('updateNetworkACLItem', { id: id.item, action: 'Deny' });
      await eventually(
        async () => {
          const r = await tcpProbe(vm.a!.ns, src, 80, 1);
          assert.equal(r.ok, false, `denied, yet answered: ${r.reply}`);
        },
        { timeoutMs: 30_000, what: 'the Deny item to block tier A' },
      );
      await cs('updateNetworkACLItem', { id: id.item, action: 'Allow' });
      await eventually(
        async () => {
          const r = await tcpProbe(vm.a!.ns, src, 80, 1);
          assert.ok(r.ok, r.stderr);
        },
        { timeoutMs: 30_000, what: 'the Allow item to let tier A in again' },
      );
    });

    test('stopInternalLoadBalancerVM stops the service; start brings it back with the same rule', async () => {
      const stopped = await cs('stopInternalLoadBalancerVM', { id: id.ilb });
      assert.equal(stopped.internalloadbalancervm.state, 'Stopped');
      const r = await tcpProbe(vm.a!.ns, src, 80, 1);
      assert.equal(r.ok, false, `a stopped appliance answered: ${r.reply}`);
      const started = await cs('startInternalLoadBalancerVM', { id: id.ilb });
      assert.equal(started.internalloadbalancervm.state, 'Running');
      await eventually(
        async () => {
          const p = await tcpProbe(vm.a!.ns, src, 80, 1);
          assert.ok(p.ok, p.stderr);
        },
        { timeoutMs: 30_000, what: 'the restarted appliance to answer' },
      );
      const t = await tally(30);
      assert.deepEqual(t, { b1: 10, b2: 10, b3: 10 }, JSON.stringify(t));
    });

    test('deleteLoadBalancer of the last rule removes the appliance and its namespace', async () => {
      const name = (await cs('listInternalLoadBalancerVMs', { id: id.ilb })).internalloadbalancervm[0].name;
      await cs('deleteLoadBalancer', { id: id.lb });
      await eventually(
        async () => {
          const l = await execIn(`${prefix}up-z1`, ['ip', 'netns', 'list']);
          assert.ok(!l.stdout.includes(`${prefix}${name}`), l.stdout);
        },
        { timeoutMs: 30_000, what: 'the appliance namespace to go' },
      );
    });
  },
);
