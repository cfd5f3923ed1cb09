/**
 * The two halves of the hosts driver together (issue 19): a real `stacknet server --driver hosts` and three host
 * namespaces (test/hosts/host-lab.ts) each running the real `stacknet host-agent --vm-backend netns` (light
 * VMs), driven only through the CloudStack API with the python `cs` client. A VXLAN zone: the three hosts Up in
 * listHosts; an isolated network with source NAT (the built-in offering) whose two VMs land on different hosts
 * and its router on a host; each guest holds exactly the address listVirtualMachines shows and reaches the other
 * across hosts; the router's public NIC on its host's public label (an untagged public range; the tagged one and a
 * VLAN zone: hosts-vlan.test.ts), so an egress rule lets a VM reach an outside namespace on the public underlay as the network's
 * source-NAT address; stop / start / destroy map to the hosts; a host cut off (agent SIGKILLed, its underlay and public legs down) goes Disconnected then Down and its
 * router is rebuilt on another host, where a guest leases again. The set-up is hosts-rig.ts (the libvirt test's too).
 * Root; `npm run build` first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ok } from '../api/harness.js';
import type { CsClient, ServerProcess } from '../api/harness.js';
import {
  eventually,
  execIn,
  leaseHistory,
  listNamespaces,
  readLease,
  tcpGreeterArgv,
  tcpProbe,
} from '../../src/netns/index.js';
import type { HostLab, LabHost } from '../hosts/host-lab.js';
import { HostsRig } from './hosts-rig.js';

const isRoot = process.getuid?.() === 0;

describe(
  'hosts driver end to end: server + three host agents (python cs)',
  { skip: !isRoot && 'needs root' },
  () => {
    let rig: HostsRig;
    let lab: HostLab;
    let server: ServerProcess;
    let admin: CsClient;
    let id: HostsRig['id'];
    /** The isolated network the VMs join: the fixture's n1, DefaultIsolatedNetworkOfferingWithSourceNatService. */
    let net = '';
    /** The outside world on the hosts' public underlay (host-lab.ts `outside`): the public range's gateway. */
    let outside = '';
    const hosts: LabHost[] = [];
    /** Lab host by the host's uuid in the API. */
    const byUuid = new Map<string, LabHost>();
    const vms: Record<string, { id: string; ip: string; instance: string; host: LabHost }> = {};

    const logs = () =>
      [
        `--- server\n${server?.output().slice(-6000)}`,
        ...hosts.map((h) => `--- agent ${h.name}\n${h.agent?.output().slice(-3000) ?? ''}`),
      ].join('\n');
    const vmNs = (name: string) => `${vms[name]!.host.prefix}${vms[name]!.instance}`;
    const listHosts = async () =>
      ok(await admin('listHosts', { type: 'Routing' }), 'listHosts').host as {
        id: string;
        name: string;
        state: string;
      }[];
    const router = async () => ok(await admin('listRouters', { networkid: net }), 'listRouters').router[0];
    const holds = async (name: string) => {
      const v = vms[name]!;
      return eventually(
        async () => {
          const l = await readLease(vmNs(name), 'eth0');
          assert.equal(l?.ip, v.ip, `${name} on ${v.host.name} holds ${v.ip}`);
          return l!;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: `${name} to lease ${v.ip}` },
      );
    };
    const deploy = async (name: string) => {
      const r = ok(
        await admin(
          'deployVirtualMachine',
          { serviceofferingid: id.so, templateid: id.tpl, zoneid: id.zone, networkids: net, name },
          { fetch_result: true },
        ),
        `deploy ${name}`,
      ).virtualmachine;
      const host = byUuid.get(r.hostid);
      assert.ok(host, `${name} placed on a known host: ${JSON.stringify(r)}`);
      vms[name] = { id: r.id, ip: r.nic[0].ipaddress, instance: r.instancename, host };
      return r;
    };
    /** Within two ping intervals (see the stop / destroy test). */
    const soon = (fn: () => Promise<void>) => eventually(fn, { timeoutMs: 5000, intervalMs: 100 });
    const pings = async (from: string, to: string) =>
      (await execIn(vmNs(from), ['ping', '-c', '1', '-W', '1', vms[to]!.ip])).code === 0;

    before(async () => {
      rig = new HostsRig({ vmBackend: 'netns' });
      lab = rig.lab;
      await rig.start();
      ({ server, admin, id } = rig);
      hosts.push(...rig.hosts);
      // The fixture's public range is on VLAN 50; here the hosts' public side is untagged (a tagged one is
      // hosts-vlan.test.ts's): the range swapped for an untagged one (no address of it is allocated yet).
      for (const r of ok(await admin('listVlanIpRanges', { zoneid: id.zone }), 'listVlanIpRanges')
        .vlaniprange)
        ok(await admin('deleteVlanIpRange', { id: r.id }), 'deleteVlanIpRange');
      ok(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: 'untagged',
          gateway: '198.51.100.1',
          netmask: '255.255.255.0',
          startip: '198.51.100.10',
          endip: '198.51.100.30',
          forvirtualnetwork: 'true',
        }),
        'createVlanIpRange',
      );
      net = id.net;
      outside = await lab.outside('198.51.100.1/24');
      lab.net.spawnIn(outside, tcpGreeterArgv(8080, 'out'));
    });

    after(async () => {
      await rig?.stop();
    });

    test('three agents register: listHosts shows them Up', async () => {
      for (const h of hosts) lab.startAgent(h, { serverPort: server.port, args: ['--vm-backend', 'netns'] });
      const up = await eventually(
        async () => {
          const l = (await listHosts()) ?? [];
          assert.deepEqual(
            l.map((x) => `${x.name}:${x.state}`).sort(),
            ['host-A:Up', 'host-B:Up', 'host-C:Up'],
            logs(),
          );
          return l;
        },
        { timeoutMs: 30_000, intervalMs: 250, what: 'three hosts Up' },
      );
      for (const x of up)
        byUuid.set(
          x.id,
          hosts.find((h) => `host-${h.name}` === x.name)!,
        );
    });

    test('two VMs on different hosts lease their API addresses from the router on a third; ping over VXLAN', async () => {
      await deploy('vm1');
      await deploy('vm2');
      const r = await router();
      assert.ok(byUuid.get(r.hostid), `router on a host: ${JSON.stringify(r)}`);
      const placed = new Set([vms.vm1!.host, vms.vm2!.host, byUuid.get(r.hostid)]);
      assert.equal(placed.size, 3, 'the router and the two VMs on three different hosts (fewest first)');
      for (const n of ['vm1', 'vm2']) {
        const l = await holds(n);
        const listed = ok(await admin('listVirtualMachines', { id: vms[n]!.id }), 'listVirtualMachines')
          .virtualmachine[0];
        assert.equal(listed.nic[0].ipaddress, l.ip);
        assert.equal(listed.hostid, [...byUuid].find(([, h]) => h === vms[n]!.host)![0]);
        assert.equal(l.router, r.guestipaddress);
      }
      await eventually(async () => assert.ok(await pings('vm1', 'vm2')), {
        timeoutMs: 10_000,
        what: 'vm1 pings vm2 across hosts',
      });
      assert.ok(await pings('vm2', 'vm1'), 'vm2 pings vm1');
    });

    test("the router's public NIC on its host: a VM gets out through an egress rule as the source-NAT address", async () => {
      const r = await router();
      assert.equal(r.state, 'Running');
      const snat = ok(
        await admin('listPublicIpAddresses', { associatednetworkid: net, issourcenat: true }),
        'source NAT ip',
      ).publicipaddress[0].ipaddress as string;
      assert.equal(r.publicip, snat, JSON.stringify(r));
      const seen = async () => (await tcpProbe(vmNs('vm2'), '198.51.100.1', 8080)).reply;
      assert.equal(await seen(), '', 'the built-in offering denies egress: nothing leaves without a rule');
      ok(
        await admin(
          'createEgressFirewallRule',
          { networkid: net, protocol: 'tcp', startport: 8080, endport: 8080, cidrlist: '10.1.1.0/24' },
          { fetch_result: true },
        ),
        'createEgressFirewallRule',
      );
      await eventually(async () => assert.equal(await seen(), `out ${snat}`, logs()), {
        timeoutMs: 15_000,
        intervalMs: 250,
        what: 'vm2 reaches the outside as the source-NAT address',
      });
    });

    test('stop, start, destroy map to the host', async () => {
      const addr = async () =>
        (await execIn(vmNs('vm2'), ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout.trim();
      ok(await admin('stopVirtualMachine', { id: vms.vm2!.id }, { fetch_result: true }), 'stop vm2');
      assert.equal(
        ok(await admin('listVirtualMachines', { id: vms.vm2!.id }), 'list').virtualmachine[0].state,
        'Stopped',
      );
      // "soon", not "now": once in five runs the expunged VM's namespace was still there when the job returned
      // (not explained yet; a candidate: the driver does not wait for a host that is not Up, and a beat late on
      // a loaded machine makes a host Disconnected for a moment at ping.interval 2).
      await soon(async () => assert.equal(await addr(), '', 'a stopped light VM holds no address'));
      const before = (await leaseHistory(vmNs('vm2'))).length;
      ok(await admin('startVirtualMachine', { id: vms.vm2!.id }, { fetch_result: true }), 'start vm2');
      await holds('vm2');
      assert.ok((await leaseHistory(vmNs('vm2'))).length > before, 'started again: a new lease');
      ok(
        await admin('destroyVirtualMachine', { id: vms.vm2!.id, expunge: true }, { fetch_result: true }),
        'destroy vm2',
      );
      await soon(async () =>
        assert.ok(!(await listNamespaces()).includes(vmNs('vm2')), 'the expunged VM is gone from its host'),
      );
    });

    test('a host cut off goes Disconnected then Down; its router is rebuilt elsewhere; a guest leases again', async () => {
      const r0 = await router();
      const dead = byUuid.get(r0.hostid)!;
      // The host fails: its agent gone without a word, its underlay leg down (its router's dnsmasq stays, unreachable).
      await rig.cutOff(dead);
      const seen = new Set<string>();
      await eventually(
        async () => {
          const s = (await listHosts()).find((x) => x.name === `host-${dead.name}`)!.state;
          seen.add(s);
          assert.equal(s, 'Down');
        },
        { timeoutMs: 20_000, intervalMs: 200, what: `host ${dead.name} Down` },
      );
      assert.ok(seen.has('Disconnected'), `Disconnected before Down: ${[...seen]}`);
      const r1 = await eventually(
        async () => {
          const r = await router();
          assert.ok(r.hostid !== r0.hostid && r.state === 'Running', JSON.stringify(r));
          return r;
        },
        { timeoutMs: 45_000, intervalMs: 500, what: 'the router rebuilt on another host' },
      );
      assert.ok(byUuid.get(r1.hostid) && byUuid.get(r1.hostid) !== dead);
      // vm1 forgets its lease (udhcpc: SIGUSR2 releases, SIGUSR1 asks again) and gets it from the new router.
      const pid = Number(
        readFileSync(lab.dataFile(vms.vm1!.host, 'vms', vms.vm1!.instance, 'udhcpc.pid'), 'utf8'),
      );
      const before = (await leaseHistory(vmNs('vm1'))).length;
      process.kill(pid, 'SIGUSR2');
      process.kill(pid, 'SIGUSR1');
      await eventually(async () => assert.ok((await leaseHistory(vmNs('vm1'))).length > before), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: 'vm1 leases again',
      });
      await holds('vm1');
    });
  },
);
