/**
 * VPC tiers and redundant pairs on the hosts driver (issue 19), driven only through the CloudStack API (python
 * `cs`): a real `stacknet server --driver hosts` and four host namespaces on a VXLAN underlay, each running the
 * real `stacknet host-agent --vm-backend netns` (hosts-rig.ts).
 *
 * - A VPC with two tiers on four hosts: its tier routers share one host (the VPC's transit `vpc0` is a bridge on
 *   that host), the tiers' guests sit on two others; each guest holds the address the API gave it, reaches the
 *   other tier's guest through the tier routers (its own address seen: no NAT between tiers) and the outside
 *   through the edge tier's router, as the VPC's source-NAT address. The routers' host cut off (Down): both tier
 *   routers are rebuilt together on one other host, and the tiers reach each other and the outside again.
 * - A redundant isolated network: its two routers on two different hosts (listRouters: different hostid,
 *   redundantstate PRIMARY and BACKUP), VRRP between them over the network's VXLAN; only the primary runs
 *   dnsmasq, and the guests lease from it. The primary's host cut off (agent SIGKILLed, underlay leg down) → the
 *   backup becomes PRIMARY and a guest on a live host leases again.
 *
 * Root; `npm run build` first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ok } from '../api/harness.js';
import {
  eventually,
  exec,
  execIn,
  leaseHistory,
  readLease,
  run,
  tcpGreeterArgv,
  tcpProbe,
} from '../../src/netns/index.js';
import type { LabHost } from '../hosts/host-lab.js';
import { HostsRig } from './hosts-rig.js';

const isRoot = process.getuid?.() === 0;

interface Vm {
  id: string;
  ip: string;
  instance: string;
  host: LabHost;
}

interface Router {
  id: string;
  name: string;
  hostid: string;
  state: string;
  redundantstate: string;
  guestipaddress: string;
  guestnetworkid: string;
}

describe(
  'hosts driver: VPC tiers and a redundant pair across four host agents (python cs)',
  { skip: !isRoot && 'needs root' },
  () => {
    const rig = new HostsRig({ vmBackend: 'netns', hosts: ['A', 'B', 'C', 'D'] });
    const vms: Record<string, Vm> = {};
    /** The redundant network and its pair, from the test that makes them. */
    const ctx: { net?: string; primary?: Router; backup?: Router } = {};
    /** The VPC and its tiers' guests, from the test that makes them. */
    const vpcCtx: { vpc?: string; a?: Vm; b?: Vm } = {};
    /** vpc-a reaches vpc-b's server across the tiers (its own address seen); each reaches the outside as the VPC's source NAT. */
    const vpcWorks = async (what: string) => {
      const { vpc, a, b } = vpcCtx;
      const snat = (await cs('listPublicIpAddresses', { vpcid: vpc, issourcenat: true })).publicipaddress[0]
        .ipaddress as string;
      const reaches = (from: Vm, to: string, port: number, want: string, label: string) =>
        eventually(
          async () => {
            const r = await tcpProbe(vmNs(from), to, port, 1);
            assert.equal(r.reply, want, r.stderr);
          },
          { timeoutMs: 45_000, intervalMs: 250, what: `${label} (${what})` },
        ).catch((e: unknown) => {
          throw new Error(`${String(e)}\n${rig.logs()}`);
        });
      await reaches(a!, b!.ip, 80, `web ${a!.ip}`, 'vpc-a → vpc-b:80 across tiers and hosts');
      for (const v of [a!, b!])
        await reaches(v, '198.51.100.1', 8080, `out ${snat}`, `${v.instance} → outside as the source NAT`);
    };
    const cs = async (command: string, params: Record<string, unknown> = {}, what = command) =>
      ok(await rig.admin(command, params, { fetch_result: true }), what);
    const vmNs = (v: Vm) => `${v.host.prefix}${v.instance}`;
    const hostOf = (uuid: string) => rig.byUuid.get(uuid);
    const deploy = async (name: string, network: string): Promise<Vm> => {
      const r = (
        await cs(
          'deployVirtualMachine',
          {
            serviceofferingid: rig.id.so,
            templateid: rig.id.tpl,
            zoneid: rig.id.zone,
            networkids: network,
            name,
          },
          `deploy ${name}`,
        )
      ).virtualmachine;
      const host = hostOf(r.hostid);
      assert.ok(host, `${name} placed on a known host: ${JSON.stringify(r)}`);
      vms[name] = { id: r.id, ip: r.nic[0].ipaddress, instance: r.instancename, host };
      return vms[name];
    };
    const holds = (v: Vm, timeoutMs = 30_000) =>
      eventually(
        async () => {
          const l = await readLease(vmNs(v), 'eth0');
          assert.equal(l?.ip, v.ip, `${v.instance} on ${v.host.name} holds ${v.ip}`);
          return l!;
        },
        { timeoutMs, intervalMs: 200, what: `${v.instance} to lease ${v.ip}` },
      ).catch((e: unknown) => {
        throw new Error(`${String(e)}\n${rig.logs()}`);
      });
    const routers = async (q: Record<string, string>) =>
      (ok(await rig.admin('listRouters', q), 'listRouters').router ?? []) as Router[];
    /** The commands running in a router's namespace on its host (`ip netns pids`). */
    const processesIn = async (ns: string) => {
      const r = await exec(['ip', 'netns', 'pids', ns]);
      const names: string[] = [];
      for (const pid of r.stdout.split('\n').filter(Boolean))
        try {
          names.push(readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
        } catch {
          /* gone meanwhile */
        }
      return names;
    };
    const routerNs = (r: Router) => `${hostOf(r.hostid)!.prefix}${r.name}`;
    /** The lab's udhcpc of a light VM forgets its lease and asks again (SIGUSR2 releases, SIGUSR1 renews). */
    const askAgain = async (v: Vm) => {
      const pid = Number(readFileSync(rig.lab.dataFile(v.host, 'vms', v.instance, 'udhcpc.pid'), 'utf8'));
      const before = (await leaseHistory(vmNs(v))).length;
      process.kill(pid, 'SIGUSR2');
      process.kill(pid, 'SIGUSR1');
      return before;
    };

    before(async () => {
      await rig.start();
      // As hosts-netns.test.ts: the fixture's VLAN 50 public range is swapped for an untagged one (the hosts'
      // public label pub0; tagged: hosts-vlan.test.ts), before any address of it is allocated.
      for (const r of ok(await rig.admin('listVlanIpRanges', { zoneid: rig.id.zone }), 'listVlanIpRanges')
        .vlaniprange)
        ok(await rig.admin('deleteVlanIpRange', { id: r.id }), 'deleteVlanIpRange');
      ok(
        await rig.admin('createVlanIpRange', {
          zoneid: rig.id.zone,
          vlan: 'untagged',
          gateway: '198.51.100.1',
          netmask: '255.255.255.0',
          startip: '198.51.100.10',
          endip: '198.51.100.30',
          forvirtualnetwork: 'true',
        }),
        'createVlanIpRange',
      );
      const outside = await rig.lab.outside('198.51.100.1/24');
      rig.lab.net.spawnIn(outside, tcpGreeterArgv(8080, 'out'));
      await rig.hostsUp();
    });

    after(async () => {
      await rig.stop();
    });

    test("a VPC's two tiers: guests on two hosts, the tier routers on a third; across tiers and out", async () => {
      const vo = await cs('listVPCOfferings', {});
      const vpc = (
        await cs('createVPC', {
          zoneid: rig.id.zone,
          name: 'vpc1',
          displaytext: 'vpc1',
          cidr: '10.97.0.0/16',
          vpcofferingid: vo.vpcoffering[0].id,
        })
      ).vpc.id as string;
      const allow = (await cs('listNetworkACLLists', { name: 'default_allow' })).networkacllist[0]
        .id as string;
      const tierOffering = (
        await cs('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingForVpcNetworks' })
      ).networkoffering[0].id as string;
      const tier = async (name: string, gateway: string) =>
        (
          await cs('createNetwork', {
            zoneid: rig.id.zone,
            name,
            displaytext: name,
            networkofferingid: tierOffering,
            vpcid: vpc,
            aclid: allow,
            gateway,
            netmask: '255.255.255.0',
          })
        ).network.id as string;
      const tierA = await tier('tier-a', '10.97.1.1');
      const tierB = await tier('tier-b', '10.97.2.1');
      const a = await deploy('vpc-a', tierA);
      const b = await deploy('vpc-b', tierB);
      const rs = await routers({ vpcid: vpc });
      assert.equal(rs.length, 2, `one router per tier: ${JSON.stringify(rs)}`);
      assert.equal(
        rs[0]!.hostid,
        rs[1]!.hostid,
        `the tier routers of one VPC share a host: ${JSON.stringify(rs)}`,
      );
      const routerHost = hostOf(rs[0]!.hostid)!;
      assert.equal(
        new Set([a.host, b.host, routerHost]).size,
        3,
        `the guests and the VPC's routers on three hosts: a on ${a.host.name}, b on ${b.host.name}, routers on ${routerHost.name}`,
      );
      for (const v of [a, b]) {
        const l = await holds(v);
        assert.equal(l.router, v === a ? '10.97.1.1' : '10.97.2.1', "the tier's gateway");
      }
      rig.lab.net.spawnIn(vmNs(b), tcpGreeterArgv(80, 'web'));
      Object.assign(vpcCtx, { vpc, a, b });
      await vpcWorks('first');
      assert.equal(
        (await execIn(vmNs(b), ['ping', '-c', '1', '-W', '2', a.ip])).code,
        0,
        'vpc-b pings vpc-a',
      );
    });

    test("the VPC routers' host cut off: both tier routers rebuilt together on another host; the tiers work again", async () => {
      const { vpc, a, b } = vpcCtx;
      assert.ok(vpc && a && b, 'the VPC of the test before');
      const before = await routers({ vpcid: vpc });
      const dead = hostOf(before[0]!.hostid)!;
      await rig.cutOff(dead);
      const after = await eventually(
        async () => {
          const rs = await routers({ vpcid: vpc });
          assert.ok(
            rs.length === 2 && rs.every((r) => r.state === 'Running' && hostOf(r.hostid) !== dead),
            JSON.stringify(rs.map((r) => [r.name, r.state, hostOf(r.hostid)?.name])),
          );
          return rs;
        },
        { timeoutMs: 60_000, intervalMs: 500, what: 'the tier routers rebuilt off the dead host' },
      ).catch((e: unknown) => {
        throw new Error(`${String(e)}\n${rig.logs()}`);
      });
      assert.equal(after[0]!.hostid, after[1]!.hostid, 'rebuilt on one host: the transit is a bridge there');
      await vpcWorks('after the rebuild');
      // Drift: the VPC's bridge deleted on the routers' host; the agent's next beat makes it again and replugs
      // both tier routers' vpc0.
      const host = hostOf(after[0]!.hostid)!;
      const bridges = (await execIn(host.ns, ['ip', '-o', 'link', 'show', 'type', 'bridge'])).stdout
        .split('\n')
        .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
        .filter((b) => /^brvpc\d+$/.test(b));
      assert.equal(bridges.length, 1, `one VPC bridge on ${host.name}: ${bridges}`);
      await run(['ip', '-n', host.ns, 'link', 'del', bridges[0]!]);
      await vpcWorks('after the bridge was deleted');
    });

    test('a redundant pair on two hosts: PRIMARY and BACKUP, guests lease from the primary', async () => {
      const off = (
        await cs('createNetworkOffering', {
          name: 'RedundantOnHosts',
          displaytext: 'redundant router pair',
          guestiptype: 'Isolated',
          traffictype: 'Guest',
          supportedservices: 'Dhcp,Dns,UserData',
          enable: true,
        })
      ).networkoffering.id as string;
      const net = (
        await cs('createNetwork', {
          zoneid: rig.id.zone,
          name: 'rnet',
          displaytext: 'rnet',
          networkofferingid: off,
          gateway: '10.1.7.1',
          netmask: '255.255.255.0',
        })
      ).network.id as string;
      const r1 = await deploy('red-1', net);
      const pair = await eventually(
        async () => {
          const rs = await routers({ networkid: net });
          assert.equal(
            rs
              .map((x) => x.redundantstate)
              .sort()
              .join(),
            'BACKUP,PRIMARY',
            JSON.stringify(rs),
          );
          return rs;
        },
        { timeoutMs: 45_000, intervalMs: 500, what: 'one PRIMARY and one BACKUP' },
      ).catch((e: unknown) => {
        throw new Error(`${String(e)}\n${rig.logs()}`);
      });
      assert.notEqual(pair[0]!.hostid, pair[1]!.hostid, `the pair on two hosts: ${JSON.stringify(pair)}`);
      const primary = pair.find((x) => x.redundantstate === 'PRIMARY')!;
      const backup = pair.find((x) => x.redundantstate === 'BACKUP')!;
      // DHCP follows the primary: the backup runs no dnsmasq.
      assert.ok((await processesIn(routerNs(primary))).includes('dnsmasq'), 'the primary runs dnsmasq');
      assert.ok(!(await processesIn(routerNs(backup))).includes('dnsmasq'), 'the backup runs none');
      const l = await holds(r1);
      assert.equal(l.router, '10.1.7.1', 'the gateway is the VIP');
      // A second guest away from the primary's host: it survives the host's failure below.
      const r2 = await deploy('red-2', net);
      await holds(r2);
      ctx.net = net;
      ctx.primary = primary;
      ctx.backup = backup;
    });

    test("the primary's host cut off: the backup becomes PRIMARY and a guest leases again", async () => {
      const { net, primary, backup } = ctx;
      assert.ok(net && primary && backup, 'the pair of the test before');
      const dead = hostOf(primary.hostid)!;
      const guest = Object.values(vms).find((v) => v.host !== dead && v.ip.startsWith('10.1.7.'));
      assert.ok(guest, 'a guest of the pair on a host that stays');
      await rig.cutOff(dead);
      // VRRP: the backup stops hearing adverts and takes the VIP over; its agent reports it, the server lists it.
      await eventually(
        async () => {
          const rs = await routers({ networkid: net });
          const b = rs.find((x) => x.id === backup.id);
          assert.equal(b?.redundantstate, 'PRIMARY', JSON.stringify(rs));
        },
        { timeoutMs: 30_000, intervalMs: 250, what: 'the backup PRIMARY' },
      ).catch((e: unknown) => {
        throw new Error(`${String(e)}\n${rig.logs()}`);
      });
      const before = await askAgain(guest);
      await eventually(async () => assert.ok((await leaseHistory(vmNs(guest))).length > before), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: `${guest.instance} leases again`,
      });
      await holds(guest);
    });
  },
);
