// Issue 15: the router's DHCP behaviours on both DHCP backends, one dnsmasq and K dnsmasq shards (the agent's
// `--dhcp-shards 4` shards a small network, so every shard can be checked with a few real clients): udhcpc in
// every shard gets its address, options 3/6/15 and its hostname (option 12); a non-default NIC in a shard other
// than the first gets no router, DNS or domain; real dhclient -6 and dhcpcd -6 guests whose MACs hash to every
// shard get exactly their address over DHCPv6; a stranger gets no answer from any shard, v4 or v6; a router
// solicitation gets one advertisement, not one per shard. The big-network files (vr-big-network,
// vr-redundant-big) check the rest with thousands of hosts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, execIn, linkLocalReady, stateDir } from '../../src/netns/index.js';

import type { DesiredState, HostSpec } from '../../src/agent/desired-state.js';
import { shardOf } from '../../src/agent/appliers/dnsmasq/shards.js';
import { eui64Address } from '../../src/agent/render/ip.js';
import { VrLab, type RouterUnderTest } from './vr-lab.js';

const prefix = 'fd00:61::/64';

/**
 * ISC dhclient -6 in the foreground until its lease file holds an address (the `iaaddr` of the server's Reply),
 * or `timeoutMs`; the address it got, or undefined. Its script is `true`: the answer is checked, not the guest's
 * configuration.
 */
async function dhclient6(lab: VrLab, ns: string, timeoutMs = 15_000): Promise<string | undefined> {
  await linkLocalReady(ns);
  const dir = join(stateDir(ns), 'dhclient6');
  mkdirSync(dir, { recursive: true });
  const lf = join(dir, 'leases');
  writeFileSync(lf, '');
  const proc = lab.net.spawnIn(ns, [
    'dhclient',
    '-6',
    '-d',
    '-v',
    '-sf',
    '/bin/true',
    '-lf',
    lf,
    '-pf',
    join(dir, 'pid'),
    'eth0',
  ]);
  try {
    return await eventually(
      () => {
        const m = /iaaddr ([0-9a-f:]+) \{/.exec(readFileSync(lf, 'utf8'));
        assert.ok(m, `${ns}: no DHCPv6 address yet`);
        return m[1];
      },
      { timeoutMs, intervalMs: 100, what: `${ns}: dhclient -6 bound` },
    ).catch(() => undefined);
  } finally {
    await proc.stop();
  }
}

/**
 * dhcpcd -6 (DHCPv6 only, soliciting an address at once: `noipv6rs`, `ia_na 1`; `-1`: it exits once bound)
 * until its hook sees an address bound, or `timeoutMs`; the address, or undefined. Its files are its own (bind
 * mounts, as the toolkit's dhcpcd runner does), so guests do not meet.
 */
async function dhcpcd6(lab: VrLab, ns: string, timeoutMs = 15_000): Promise<string | undefined> {
  await linkLocalReady(ns);
  const dir = join(stateDir(ns), 'dhcpcd6');
  mkdirSync(join(dir, 'run'), { recursive: true });
  mkdirSync(join(dir, 'db'), { recursive: true });
  const conf = join(dir, 'dhcpcd.conf');
  writeFileSync(conf, 'ipv6only\nnoipv6rs\nia_na 1\n');
  const hook = join(dir, 'hook.sh');
  writeFileSync(hook, '#!/bin/sh\necho "$reason ${new_dhcp6_ia_na1_ia_addr1:-}" >> "$SN_OUT"\n', {
    mode: 0o755,
  });
  const out = join(dir, 'events');
  writeFileSync(out, '');
  const proc = lab.net.spawnIn(ns, [
    'sh',
    '-c',
    'mkdir -p /run/dhcpcd && mount --bind "$0" /run/dhcpcd && mount --bind "$1" /var/lib/dhcpcd && shift && exec "$@"',
    join(dir, 'run'),
    join(dir, 'db'),
    'dhcpcd',
    '-B',
    '-6',
    '-1',
    '-f',
    conf,
    '-c',
    hook,
    '-e',
    `SN_OUT=${out}`,
    'eth0',
  ]);
  try {
    return await eventually(
      () => {
        const bound = readFileSync(out, 'utf8')
          .split('\n')
          .map((l) => l.split(' '))
          .find(([reason, ip]) => reason === 'BOUND6' && ip);
        assert.ok(bound, `${ns}: no DHCPv6 address yet`);
        return bound[1];
      },
      { timeoutMs, intervalMs: 100, what: `${ns}: dhcpcd -6 bound` },
    ).catch(() => undefined);
  } finally {
    await proc.stop();
  }
}

/**
 * Sends one router solicitation from `ns` and lists the advertisements sent back to it (unicast to its
 * link-local address: dnsmasq answers a solicitation that way) within `windowSec`; periodic ones to ff02::1 are
 * left out, so each sender of RAs counts once.
 */
async function solicitedAdvertisements(ns: string, windowSec = 2): Promise<string[]> {
  const py = String.raw`
import socket, sys, time
idx = socket.if_nametoindex('eth0')
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth0')
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ('ff02::2', 0, 0, idx))
end = time.time() + float(sys.argv[1])
while time.time() < end:
    s.settimeout(max(0.01, end - time.time()))
    try:
        data, anc, _, src = s.recvmsg(2048, 256)
    except socket.timeout:
        break
    if not data or data[0] != 134:
        continue
    dst = [socket.inet_ntop(socket.AF_INET6, d[:16]) for (l, t, d) in anc if t == socket.IPV6_PKTINFO]
    if dst and not dst[0].startswith('ff'):
        print(src[0], dst[0], flush=True)
`;
  const r = await execIn(ns, ['python3', '-c', py, String(windowSec)], {
    timeoutMs: windowSec * 1000 + 5000,
  });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

const backends = [
  { name: 'one dnsmasq', shards: 1, args: [] as string[], cidr: '10.61.0.0/24' },
  { name: '4 DHCP shards', shards: 4, args: ['--dhcp-shards', '4'], cidr: '10.62.0.0/24' },
];

for (const backend of backends) {
  describe(`router agent: DHCP, DHCPv6 and router advertisements (${backend.name})`, () => {
    const lab = new VrLab({ cidr: backend.cidr });
    const K = backend.shards;
    let vr: RouterUnderTest;
    let state: DesiredState;
    /** Two guests of every shard (one dnsmasq: two guests), `02:6d:00:00:00:<n>` MACs picked by their hash. */
    const guests: { shard: number; host: HostSpec }[] = [];
    /** A non-default NIC, of the last shard. */
    let nic: HostSpec;
    /** Each guest's namespace, made once (two namespaces with one MAC on the bridge fail IPv6 DAD). */
    const made = new Map<string, string>();
    const guestNs = async (h: HostSpec) => {
      let ns = made.get(h.mac);
      if (!ns) made.set(h.mac, (ns = await lab.guest(`g${made.size}`, h.mac)));
      return ns;
    };

    before(async () => {
      await lab.setup();
      vr = await lab.router('vr', backend.args);
      let c = 1;
      /** The next `02:6d:00:00:00:<c>` MAC that hashes to `shard`. */
      const macOf = (shard: number) => {
        for (;;) {
          const mac = `02:6d:00:00:00:${(c++).toString(16).padStart(2, '0')}`;
          if (shardOf(mac, K) === shard) return mac;
        }
      };
      for (let shard = 0; shard < K; shard++)
        for (let n = 0; n < 2; n++) {
          const mac = macOf(shard);
          const i = guests.length;
          guests.push({
            shard,
            host: lab.host(20 + i, mac, `v6vm${i}`, { ipv6: eui64Address(prefix, mac) }),
          });
        }
      const mac = macOf(K - 1);
      nic = lab.host(80, mac, 'v6vm0-nic2', { defaultNic: false, ipv6: eui64Address(prefix, mac) });
      state = lab.state(1, [
        ...guests.map((g) => g.host),
        nic,
        // A host without a guest: the shards hold more than the guests asking.
        lab.host(90, '02:6d:00:00:01:00', 'idle', { ipv6: eui64Address(prefix, '02:6d:00:00:01:00') }),
      ]);
      state.network.ipv6Cidr = prefix;
      const r = await vr.push(state);
      assert.ok(r.ok, `push failed: ${JSON.stringify(r)}\n${vr.log()}`);
    });

    after(async () => {
      await lab.cleanup();
    });

    it(`runs ${K} DHCP server${K > 1 ? 's' : ''}`, async () => {
      const st = await vr.status();
      assert.equal(st.dhcpShards, K);
      assert.ok(st.dnsmasq.running, JSON.stringify(st));
    });

    it('udhcpc in every shard gets exactly its address, gateway, DNS, domain and its hostname', async () => {
      for (const g of guests.filter((_, i) => i % 2 === 0)) {
        const r = await lab.net.udhcpc(await guestNs(g.host), 'eth0');
        const why = `${g.host.hostname} (shard ${g.shard} of ${K}): ${r.output}`;
        assert.equal(r.lease?.ip, g.host.ipv4, why);
        assert.deepEqual(r.lease?.routers, [lab.ip(1)], why);
        assert.deepEqual(r.lease?.dns, [lab.ip(1)], why);
        assert.equal(r.lease?.domain, lab.domain, why);
        // Option 12: the name the router holds for the MAC (the client sent none).
        assert.equal(r.lease?.hostname, g.host.hostname, why);
      }
    });

    it('a non-default NIC (last shard) gets its address without router, DNS or domain', async () => {
      const r = await lab.net.udhcpc(await guestNs(nic), 'eth0');
      assert.equal(r.lease?.ip, nic.ipv4, r.output);
      assert.deepEqual(r.lease?.routers, []);
      assert.deepEqual(r.lease?.dns, []);
      assert.equal(r.lease?.domain, undefined);
    });

    it('a MAC not in the state gets no DHCPv4 answer from any shard', async () => {
      const ns = await lab.guest('x4', '02:6d:00:00:02:97');
      const r = await lab.net.udhcpc(ns, 'eth0', { discoverAttempts: 2, discoverTimeoutSec: 1 });
      assert.equal(r.lease, undefined, JSON.stringify(r.lease));
    });

    // Each guest runs one client: a second client would bring its own DUID, and dnsmasq does not give an address
    // leased to one client (DUID) to another.
    it('dhclient -6 gets exactly its address over DHCPv6, whichever shard holds its MAC', async () => {
      for (const g of guests.filter((_, i) => i % 2 === 0)) {
        const got = await dhclient6(lab, await guestNs(g.host));
        assert.equal(got, g.host.ipv6, `${g.host.hostname} (shard ${g.shard} of ${K})\n${vr.log()}`);
      }
    });

    it('dhcpcd -6 gets exactly its address over DHCPv6 from the first shard and the last', async () => {
      for (const g of [...new Set([guests[1]!, guests[guests.length - 1]!])]) {
        const got = await dhcpcd6(lab, await guestNs(g.host));
        assert.equal(got, g.host.ipv6, `${g.host.hostname} (shard ${g.shard} of ${K})\n${vr.log()}`);
      }
    });

    it('a MAC not in the state gets no DHCPv6 answer from any shard', async () => {
      // dhclient -6 solicits at about 1, 3 and 7 s: three tries unanswered.
      const ns = await lab.guest('x6', '02:6d:00:00:02:99');
      assert.equal(await dhclient6(lab, ns, 8000), undefined);
    });

    it('a router solicitation gets one advertisement: one sender of RAs, however many shards', async () => {
      const ns = await lab.guest('rs', '02:6d:00:00:02:98');
      await linkLocalReady(ns);
      const ras = await solicitedAdvertisements(ns);
      assert.equal(ras.length, 1, ras.join('\n'));
      assert.match(ras[0]!, /^fe80::/);
    });
  });
}
