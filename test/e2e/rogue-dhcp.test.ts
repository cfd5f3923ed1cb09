/**
 * Issue 12 item 5: a guest acting as a DHCP server (or IPv6 router) on the netns driver's guest bridge. The VMs
 * are plugged by the driver itself (namespaces, ports, the port rules it installs); the victims run real udhcpc
 * and dhclient, the router is the real agent started by the driver, and the rogue (rogue-guest.py) builds its
 * frames by hand: OFFER/ACK from UDP 1067 or 68, in VLAN priority tags, router advertisements, DHCPv6 replies,
 * redirects. Before the fix, with no router, the rogue won every udhcpc run and every dhclient run but those under
 * two tags, and with the router serving it still won most runs (it answers first); now it never does, the victims
 * get exactly the addresses the router was told, and the rogue's port counts its frames as dropped. No database:
 * the router's desired state stands for what the database holds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { resolve, join } from 'node:path';
import { NetnsDriver } from '../../src/drivers/netns.js';
import type { GuestNetworkRuntime, RouterRuntime, VmRuntime } from '../../src/drivers/types.js';
import type { DesiredState } from '../../src/agent/desired-state.js';
import { leaseDirFor } from '../../src/agent/lease-dir.js';
import { eui64Address } from '../../src/agent/render/ip.js';
import {
  TestNet,
  addAddress,
  chainCounters,
  eventually,
  execIn,
  linkLocalReady,
  removeState,
  runIn,
  startRogueGuest,
  type Lease,
} from '../../src/netns/index.js';

const isRoot = process.getuid?.() === 0;

const GATEWAY = '10.77.0.1';
const ROGUE_IP = '10.77.0.66';
const ROGUE_OFFER = '10.77.0.250';
const V6_PREFIX = '2001:db8:77::';
const ROGUE_PREFIX = '2001:db8:bad::';

describe(
  'rogue DHCP and router advertisements from a guest (netns driver)',
  { skip: !isRoot && 'needs root' },
  () => {
    const net = new TestNet();
    const prefix = `${net.prefix}-`;
    const third = 10 + (randomBytes(1)[0]! % 240);
    let driver: NetnsDriver;
    let dataDir = '';
    const network: GuestNetworkRuntime = {
      id: 1,
      vnet: 77,
      isolation: 'VLAN',
      cidr: '10.77.0.0/24',
      gateway: GATEWAY,
    };
    const vm = (id: number, ip: string, hostname: string): VmRuntime => {
      const mac = `02:00:00:77:00:0${id}`;
      return {
        id,
        uuid: `vm-${id}`,
        accountId: 2,
        instanceName: `i-2-${id}-VM`,
        hostname,
        nics: [
          {
            id,
            mac,
            ipv4s: [ip],
            ipv6: eui64Address(`${V6_PREFIX}/64`, mac),
            isDefault: true,
            deviceId: 0,
            network,
          },
        ],
      };
    };
    const rogue = vm(1, ROGUE_IP, 'rogue');
    const victims = { udhcpc: vm(2, '10.77.0.11', 'vu'), dhclient: vm(3, '10.77.0.12', 'vd') };
    const ns = (v: VmRuntime) => driver.vmNs(v);
    const mac = (v: VmRuntime) => v.nics[0]!.mac;
    const ll = (v: VmRuntime) => eui64Address('fe80::/64', mac(v));
    // Every VM port's frames go through the one `guard` chain (its sets keyed by port): its counters count the
    // rogue's drops, the only port here that sends what they stop.
    const rogueDrops = () => chainCounters(`${prefix}switch`, 'stacknet', 'guard');
    const router: RouterRuntime = {
      id: 1,
      uuid: 'r-1',
      name: 'r-1-VM',
      zoneId: 1,
      network,
      guestIp: GATEWAY,
      guestMac: '02:00:00:77:01:01',
      redundant: false,
      vpcId: null,
      controlIp: `169.254.${third}.7`,
      controlPort: 3922,
      secret: randomBytes(16).toString('hex'),
      publicNics: [],
    };

    /** One DHCP run of `client` in its victim's namespace, from no address. */
    const lease = async (client: 'udhcpc' | 'dhclient'): Promise<Lease | undefined> => {
      const v = ns(victims[client]);
      await runIn(v, ['ip', '-4', 'addr', 'flush', 'dev', 'eth0']);
      const r =
        client === 'udhcpc'
          ? await net.udhcpc(v, 'eth0', { hostname: victims[client].hostname, discoverAttempts: 2 })
          : await net.dhclient(v, 'eth0', { hostname: victims[client].hostname, timeoutSec: 3 });
      return r.lease;
    };

    before(async () => {
      dataDir = await net.tempDir('driver');
      driver = new NetnsDriver({ dataDir, prefix, controlCidr: `169.254.${third}.0/24` });
      // updateVm plugs the ports and installs their rules without starting the driver's own DHCP client.
      for (const v of [rogue, victims.udhcpc, victims.dhclient]) await driver.updateVm(v);
      await addAddress(ns(rogue), 'eth0', `${ROGUE_IP}/24`);
    });

    after(async () => {
      await NetnsDriver.cleanup(dataDir);
      for (const v of [rogue, victims.udhcpc, victims.dhclient]) await removeState(ns(v));
      await net.cleanup();
    });

    test('with no router, no victim takes the rogue lease, whatever its source port or VLAN tags', async (t) => {
      const variants = [
        { name: 'UDP 1067', args: ['--sport', '1067'], rule: 'dhcp server' },
        { name: 'UDP 68', args: ['--sport', '68'], rule: 'dhcp server' },
        {
          name: 'UDP 1067, priority tag (VID 0)',
          args: ['--sport', '1067', '--tags', '0'],
          rule: 'untagged ip ip6 arp only',
        },
        {
          name: 'UDP 1067, two priority tags',
          args: ['--sport', '1067', '--tags', '0,0'],
          rule: 'untagged ip ip6 arp only',
        },
      ];
      const runs = { udhcpc: 3, dhclient: 2 };
      const report: string[] = [];
      const failures: string[] = [];
      for (const variant of variants) {
        const before = (await rogueDrops()).get(variant.rule) ?? 0;
        const r = await startRogueGuest(net.spawnIn.bind(net), ns(rogue), 'dhcp4', [
          '--mac',
          mac(rogue),
          '--ip',
          ROGUE_IP,
          '--offer',
          ROGUE_OFFER,
          ...variant.args,
        ]);
        for (const client of ['udhcpc', 'dhclient'] as const) {
          let won = 0;
          for (let i = 0; i < runs[client]; i++) {
            const l = await lease(client);
            if (l) won++;
            if (l)
              failures.push(
                `${variant.name}: ${client} bound ${l.ip} from ${l.serverId}, gateway ${l.router}`,
              );
          }
          report.push(`${variant.name}: rogue won ${won} of ${runs[client]} ${client} runs`);
        }
        const sent = r.sent().length;
        await r.stop();
        const dropped = ((await rogueDrops()).get(variant.rule) ?? 0) - before;
        report.push(`${variant.name}: rogue sent ${sent}, port rule "${variant.rule}" dropped ${dropped}`);
        if (sent === 0) failures.push(`${variant.name}: the rogue never answered (no DISCOVER reached it)`);
        // A broadcast counts once per port it would have reached (two victims here), so at least once each.
        if (dropped < sent)
          failures.push(`${variant.name}: ${sent} rogue frames sent, ${dropped} counted as dropped`);
      }
      t.diagnostic(report.join('\n'));
      assert.deepEqual(failures, [], report.join('\n'));
    });

    test('with the router serving, the victims get exactly its addresses while the rogue answers', async (t) => {
      const transport = await driver.ensureRouter(router);
      net.removeOnCleanup(leaseDirFor(resolve(join(dataDir, 'routers', router.name, 'data'))));
      const host = (v: VmRuntime) => ({
        mac: mac(v),
        ipv4: v.nics[0]!.ipv4s[0]!,
        ipv6: v.nics[0]!.ipv6!,
        hostname: v.hostname,
        defaultNic: true,
        vmId: v.uuid,
      });
      const state: DesiredState = {
        generation: 1,
        router: { name: router.name, guestIp: GATEWAY },
        network: {
          cidr: network.cidr,
          gateway: GATEWAY,
          domain: 'rogue.internal',
          dnsServers: ['192.0.2.53'],
          useExternalDns: false,
          leaseTime: 3600,
          ipv6Cidr: `${V6_PREFIX}/64`,
        },
        hosts: [rogue, victims.udhcpc, victims.dhclient].map(host),
        metadata: {},
        passwords: {},
        firewall: { enabled: true },
      };
      const pushed = await transport.pushFull(state);
      assert.ok(pushed.ok, JSON.stringify(pushed));
      // A guest's own DHCP client traffic (68 → 67) crosses its port: the rogue itself gets its address.
      const own = await net.udhcpc(ns(rogue), 'eth0', { hostname: 'rogue', discoverAttempts: 10 });
      assert.equal(own.lease?.ip, ROGUE_IP, own.output);

      const r = await startRogueGuest(net.spawnIn.bind(net), ns(rogue), 'dhcp4', [
        '--mac',
        mac(rogue),
        '--ip',
        ROGUE_IP,
        '--offer',
        ROGUE_OFFER,
        '--sport',
        '1067',
      ]);
      const runs = { udhcpc: 5, dhclient: 3 };
      const report: string[] = [];
      const wrong: string[] = [];
      for (const client of ['udhcpc', 'dhclient'] as const) {
        let won = 0;
        for (let i = 0; i < runs[client]; i++) {
          const l = await lease(client);
          const want = victims[client].nics[0]!.ipv4s[0]!;
          if (l?.serverId === ROGUE_IP || l?.ip === ROGUE_OFFER) won++;
          if (l?.ip !== want || l.router !== GATEWAY || l.dns.join() !== GATEWAY)
            wrong.push(
              `${client} run ${i + 1}: ${l ? `${l.ip} gateway ${l.router} dns ${l.dns.join()}` : 'no lease'}`,
            );
        }
        report.push(`router serving: rogue won ${won} of ${runs[client]} ${client} runs`);
      }
      const sent = r.sent().length;
      await r.stop();
      report.push(`router serving: rogue sent ${sent} frames`);
      t.diagnostic(report.join('\n'));
      assert.ok(sent > 0, 'the rogue answered');
      assert.deepEqual(wrong, [], report.join('\n'));
    });

    test('IPv6: no rogue router advertisement, redirect, DHCPv6 reply or relay gets through; the router still serves', async (t) => {
      const victim = ns(victims.udhcpc);
      const routerLl = eui64Address('fe80::/64', router.guestMac!);
      const defaults = async () => (await execIn(victim, ['ip', '-6', 'route', 'show', 'default'])).stdout;
      // The router's port has no rules: its advertisements reach the guest (a down/up makes the guest solicit one).
      await runIn(victim, ['ip', 'link', 'set', 'eth0', 'down']);
      await runIn(victim, ['ip', 'link', 'set', 'eth0', 'up']);
      await eventually(
        async () => {
          if (!(await defaults()).includes(`via ${routerLl} `)) throw new Error(await defaults());
        },
        { timeoutMs: 20_000, what: `a default route via the router ${routerLl}` },
      );

      // The guest's own DHCPv6 client traffic (546 → 547) crosses its port, and the router's reply comes back. The
      // down/up above restarted duplicate address detection: dhclient -6 cannot bind a tentative link-local.
      await linkLocalReady(victim);
      const d6 = await net.tempDir('dhcp6');
      const client6 = net.spawnIn(victim, [
        'dhclient',
        '-6',
        '-d',
        '-1',
        '-v',
        '-cf',
        '/dev/null',
        '-lf',
        join(d6, 'leases'),
        '-pf',
        join(d6, 'pid'),
        '-sf',
        '/bin/true',
        'eth0',
      ]);
      await eventually(
        () => assert.match(client6.output(), new RegExp(`RCV: Reply message on eth0 from ${routerLl}`)),
        {
          timeoutMs: 20_000,
          what: 'a DHCPv6 Reply from the router',
        },
      );
      assert.ok(client6.output().includes(victims.udhcpc.nics[0]!.ipv6!), client6.output());
      await client6.stop();

      // A listener on the DHCPv6 client port shows whether anything reaches it.
      const listener = net.spawnIn(victim, [
        '/usr/bin/python3',
        '-u',
        '-c',
        'import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.bind(("::",546))\nprint("listening")\nwhile True:\n  d,a=s.recvfrom(2048)\n  print("got",a[0],a[1])',
      ]);
      await eventually(() => assert.match(listener.output(), /listening/), { what: 'the 546 listener' });

      const before = await rogueDrops();
      const send = async (mode: 'ra' | 'udp6' | 'icmp', args: string[]) => {
        const r = await startRogueGuest(net.spawnIn.bind(net), ns(rogue), mode, [
          '--mac',
          mac(rogue),
          ...args,
        ]);
        await r.process.exited;
        return r.sent().length;
      };
      // "Reach 2001:db8::53 through me", posing as the router (any link-local source passes the source rule).
      const redirect6 = await send('icmp', [
        '--kind',
        'redirect6',
        '--src',
        routerLl,
        '--dst',
        ll(victims.udhcpc),
        '--dstmac',
        mac(victims.udhcpc),
        '--gateway',
        ll(rogue),
        '--target',
        '2001:db8::53',
      ]);
      // Checked before the rogue's RA can give the victim a default route through it.
      const redirected = (await execIn(victim, ['ip', '-6', 'route', 'get', '2001:db8::53'])).stdout;
      const sent = {
        redirect6,
        ra: await send('ra', ['--prefix', ROGUE_PREFIX, '--count', '3']),
        // A DHCPv6 server's Advertise to the victim, from 547 and from any other port; relay traffic to servers.
        dhcp6: await send('udp6', [
          '--dst',
          ll(victims.udhcpc),
          '--dstmac',
          mac(victims.udhcpc),
          '--sport',
          '547',
        ]),
        dhcp6Any: await send('udp6', [
          '--dst',
          ll(victims.udhcpc),
          '--dstmac',
          mac(victims.udhcpc),
          '--sport',
          '5000',
        ]),
        relay: await send('udp6', [
          '--dst',
          'ff02::1:2',
          '--dstmac',
          '33:33:00:01:00:02',
          '--sport',
          '547',
          '--dport',
          '547',
        ]),
        redirect4: await send('icmp', [
          '--kind',
          'redirect4',
          '--src',
          ROGUE_IP,
          '--dst',
          '10.77.0.11',
          '--dstmac',
          mac(victims.udhcpc),
          '--gateway',
          ROGUE_IP,
        ]),
      };
      // What reached the victim first (before the fix all of it did), then what the rogue's port counted: a frame
      // counts once per port the bridge would have sent it to (a multicast RA reaches three), so at least once.
      const found: string[] = [];
      const addrs = (await execIn(victim, ['ip', '-6', 'addr', 'show', 'dev', 'eth0'])).stdout;
      if (/2001:db8:bad:/.test(addrs)) found.push('an address from the rogue prefix');
      if ((await defaults()).includes(`via ${ll(rogue)} `)) found.push('a default route via the rogue');
      if (redirected.includes(`via ${ll(rogue)} `))
        found.push(`a redirect to the rogue: ${redirected.trim()}`);
      if (/got/.test(listener.output())) found.push(`DHCPv6 client port reached: ${listener.output()}`);
      const grew = async (rule: string) => ((await rogueDrops()).get(rule) ?? 0) - (before.get(rule) ?? 0);
      const counted: [string, number][] = [
        ['router advert', sent.ra + sent.redirect6],
        ['dhcp server', sent.dhcp6 + sent.dhcp6Any + sent.relay],
        ['redirect', sent.redirect4],
      ];
      for (const [rule, want] of counted) {
        const dropped = await grew(rule);
        if (dropped < want) found.push(`rule "${rule}" dropped ${dropped} of ${want}`);
      }
      t.diagnostic(`IPv6 rogue: sent ${JSON.stringify(sent)}; got through: ${found.join('; ') || 'nothing'}`);
      assert.deepEqual(found, []);
      await listener.stop();
    });
  },
);
