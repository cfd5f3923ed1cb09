/**
 * The hosts driver over VLAN (issue 19: "over VLAN and over VXLAN"), driven only through the CloudStack API with
 * the python `cs` client: a real `stacknet server --driver hosts` whose zone's physical network isolates by VLAN
 * (hosts-rig.ts `isolation: 'VLAN'`), three host namespaces each running `stacknet host-agent --vm-backend
 * netns`. The VLAN devices are 802.1Q sub-interfaces where the kernel has them, else the agent's eBPF tagger
 * (src/hostagent/vlan-tagger.ts; this CI's kernel). Two VMs of an isolated network with source NAT on two hosts
 * lease from its router on the third and reach each other, their frames tagged with the network's VLAN on the
 * underlay; the router's public NIC is on the fixture's tagged public VLAN 50, and an egress rule lets a VM reach
 * an outside namespace on that VLAN as the source-NAT address (tagged 50 on the public underlay); a second network
 * with the same CIDR on another VLAN does not reach the first. Root; `npm run build` first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ok } from '../api/harness.js';
import type { CsClient } from '../api/harness.js';
import { eventually, execIn, readLease, tcpGreeterArgv, tcpProbe } from '../../src/netns/index.js';
import { kernelHas8021q } from '../../src/hostagent/vlan-tagger.js';
import type { LabHost } from '../hosts/host-lab.js';
import { HostsRig } from './hosts-rig.js';

const isRoot = process.getuid?.() === 0;
/** The fixture's public range (zoneWithTwoNetworks): VLAN 50, gateway 203.0.113.1/24. */
const PUBLIC = { vlan: '50', gateway: '203.0.113.1' };

describe(
  'hosts driver over VLAN: server + three host agents (python cs)',
  { skip: !isRoot && 'needs root' },
  () => {
    let rig: HostsRig;
    let admin: CsClient;
    const vms: Record<string, { id: string; ip: string; instance: string; host: LabHost; network: string }> =
      {};
    const vmNs = (name: string) => `${vms[name]!.host.prefix}${vms[name]!.instance}`;
    const vlanOf = async (network: string) =>
      ok(await admin('listNetworks', { id: network, listall: true }), 'listNetworks').network[0]
        .vlan as string;
    const deploy = async (name: string, network: string) => {
      const r = ok(
        await admin(
          'deployVirtualMachine',
          {
            serviceofferingid: rig.id.so,
            templateid: rig.id.tpl,
            zoneid: rig.id.zone,
            networkids: network,
            name,
          },
          { fetch_result: true },
        ),
        `deploy ${name}`,
      ).virtualmachine;
      const host = rig.byUuid.get(r.hostid);
      assert.ok(host, `${name} placed on a known host: ${JSON.stringify(r)}`);
      vms[name] = { id: r.id, ip: r.nic[0].ipaddress, instance: r.instancename, host, network };
    };
    const holds = (name: string) =>
      eventually(
        async () => {
          const l = await readLease(vmNs(name), 'eth0');
          assert.equal(l?.ip, vms[name]!.ip, `${name} on ${vms[name]!.host.name} holds ${vms[name]!.ip}`);
        },
        { timeoutMs: 30_000, intervalMs: 200, what: `${name} to lease ${vms[name]!.ip}` },
      );
    const pings = async (from: string, ip: string) =>
      (await execIn(vmNs(from), ['ping', '-c', '1', '-W', '1', ip])).code === 0;

    before(async () => {
      rig = new HostsRig({ vmBackend: 'netns', isolation: 'VLAN' });
      await rig.start();
      admin = rig.admin;
      rig.lab.net.spawnIn(
        await rig.lab.outsideTagged(`${PUBLIC.gateway}/24`, PUBLIC.vlan),
        tcpGreeterArgv(8080, 'out'),
      );
      await rig.hostsUp();
    });

    after(async () => {
      await rig?.stop();
    });

    test("two VMs on two hosts lease from the router on a third over the network's VLAN, tagged on the underlay", async (t) => {
      t.diagnostic(
        (await kernelHas8021q())
          ? 'VLAN devices: 802.1Q sub-interfaces'
          : 'VLAN devices: the eBPF tagger (no 802.1Q here)',
      );
      await deploy('vm1', rig.id.net);
      await deploy('vm2', rig.id.net);
      const r = ok(await admin('listRouters', { networkid: rig.id.net }), 'listRouters').router[0];
      assert.equal(
        new Set([vms.vm1!.host, vms.vm2!.host, rig.byUuid.get(r.hostid)]).size,
        3,
        JSON.stringify(r),
      );
      await holds('vm1');
      await holds('vm2');
      const vlan = await vlanOf(rig.id.net);
      assert.match(vlan, /^\d+$/);
      const icmp = `icmp and net 10.1.1.0/24`;
      const frames = await rig.lab.tcpdump(`(${icmp}) or (vlan and ${icmp})`, async () => {
        await eventually(async () => assert.ok(await pings('vm1', vms.vm2!.ip)), {
          timeoutMs: 10_000,
          what: 'vm1 pings vm2 across hosts',
        });
        assert.ok(await pings('vm2', vms.vm1!.ip), 'vm2 pings vm1');
      });
      assert.ok(frames.filter((l) => /ICMP echo/.test(l)).length >= 2, frames.join('\n'));
      for (const l of frames)
        assert.match(l, new RegExp(`ethertype 802\\.1Q \\(0x8100\\).* vlan ${vlan}, p 0, `), l);
    });

    test('the router on public VLAN 50: a VM gets out through an egress rule as the source-NAT address, tagged 50', async () => {
      const snat = ok(
        await admin('listPublicIpAddresses', { associatednetworkid: rig.id.net, issourcenat: true }),
        'source NAT ip',
      ).publicipaddress[0];
      assert.equal(snat.vlanname, `vlan://${PUBLIC.vlan}`);
      ok(
        await admin(
          'createEgressFirewallRule',
          { networkid: rig.id.net, protocol: 'tcp', startport: 8080, endport: 8080, cidrlist: '10.1.1.0/24' },
          { fetch_result: true },
        ),
        'createEgressFirewallRule',
      );
      const tcp = `host ${PUBLIC.gateway} and tcp port 8080`;
      const frames = await rig.lab.tcpdump(
        `(${tcp}) or (vlan and ${tcp})`,
        () =>
          eventually(
            async () =>
              assert.equal(
                (await tcpProbe(vmNs('vm2'), PUBLIC.gateway, 8080)).reply,
                `out ${snat.ipaddress}`,
                rig.logs(),
              ),
            { timeoutMs: 20_000, intervalMs: 250, what: 'vm2 reaches the outside as the source-NAT address' },
          ),
        rig.lab.publicBridge,
      );
      assert.ok(
        frames.some((l) => l.includes(`${snat.ipaddress}.`)),
        frames.join('\n'),
      );
      for (const l of frames)
        assert.match(l, new RegExp(`ethertype 802\\.1Q \\(0x8100\\).* vlan ${PUBLIC.vlan}, p 0, `), l);
    });

    test("a network with the same CIDR on another VLAN does not reach the first one's VMs", async () => {
      const net3 = await rig.isolatedNetwork(
        'n3',
        '10.1.1.1',
        'DefaultIsolatedNetworkOfferingWithSourceNatService',
      );
      await deploy('vm3', net3);
      await holds('vm3');
      const [v1, v3] = [await vlanOf(rig.id.net), await vlanOf(net3)];
      assert.notEqual(v1, v3, 'the two networks on two VLANs');
      // Its own router answers; the first network's VMs (other addresses of the same subnet) do not.
      await eventually(async () => assert.ok(await pings('vm3', '10.1.1.1')), {
        what: 'vm3 pings its gateway',
      });
      for (const other of ['vm1', 'vm2'])
        if (vms[other]!.ip !== vms.vm3!.ip)
          assert.equal(
            await pings('vm3', vms[other]!.ip),
            false,
            `vm3 (VLAN ${v3}) reaches ${other} (VLAN ${v1})`,
          );
      assert.ok(await pings('vm1', vms.vm2!.ip), 'the first network still whole');
    });
  },
);
