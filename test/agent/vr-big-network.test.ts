// Issue 15: a router for a big network. Past 2,048 hosts the agent serves DHCP from several dnsmasq shards
// (src/agent/appliers/dnsmasq/shards.ts) and DNS from a dnsmasq of its own; real udhcpc/dhclient guests check
// that every behaviour of the small router holds there: new MAC served, options, non-default NIC, hostname in
// DNS, a freed address reused by a new MAC in the same shard or another (the old lease released to the shard
// holding it, no shard restarted), a stranger ignored, renewals unicast to the router answered by every shard
// (udhcpc, dhcpcd, dhclient; a moved address NAKed), and DNS answering all the way through a burst of new VMs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DhcpProbe,
  dig,
  eventually,
  hookScripts,
  leaseHistory,
  leaseStatePath,
  readLease,
  resolvConfPath,
  stateDir,
  TestNet,
  type SpawnedProcess,
} from '../../src/netns/index.js';
import type { DesiredState, HostSpec } from '../../src/agent/desired-state.js';
import { shardCount, shardDirName, shardOf } from '../../src/agent/appliers/dnsmasq/shards.js';
import { getStatus } from '../../src/agent/control-client.js';
import { VrLab, type RouterUnderTest } from './vr-lab.js';

const N = 3000;
const K = shardCount(N);
const hex = (x: number) => x.toString(16).padStart(2, '0');
const macAt = (kind: number, i: number) =>
  `02:${hex(kind)}:00:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)}`;
/** Address i of 10.64.0.0/16, never .0/.255 and never 10.64.0.x (the router's). */
const ipAt = (i: number) => `10.64.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
const host = (mac: string, i: number, hostname: string, extra: Partial<HostSpec> = {}): HostSpec => ({
  mac,
  ipv4: ipAt(i),
  hostname,
  defaultNic: true,
  vmId: `vm-${hostname}`,
  ...extra,
});

/** A lab whose namespaces, bridges and veths are named `shd-<random>-…` (this file's own prefix). */
function shdLab(): VrLab {
  const lab = new VrLab({ cidr: '10.64.0.0/16', domain: 'big.internal' });
  const suffix = [...randomBytes(5)].map((b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');
  Object.defineProperty(lab, 'net', { value: new TestNet(`shd-${suffix}`) });
  return lab;
}

/** One line of a guest's lease history: `<ms> <event> ip=<ip> ...`. */
const historyLine = (line: string) => {
  const [at, event, ip] = line.split(' ');
  return { at: Number(at), event: event!, ip: ip!.replace(/^ip=/, '') };
};

describe('router agent: a big network (DHCP shards, DNS apart)', () => {
  const lab = shdLab();
  let vr: RouterUnderTest;
  let state: DesiredState;
  let gen = 1;
  let next = N; // next free address index

  const patch = async (upsert: HostSpec[], remove: string[] = []) => {
    const r = await vr.patch({ baseGeneration: gen, generation: gen + 1, hosts: { upsert, remove } });
    assert.ok(r.ok, JSON.stringify(r));
    gen++;
    const gone = new Set([...remove, ...upsert.map((h) => h.mac)]);
    state = { ...state, generation: gen, hosts: [...state.hosts.filter((h) => !gone.has(h.mac)), ...upsert] };
    return r;
  };

  /** Each shard's dnsmasq pid, from its pid file. */
  const shardPids = () =>
    Array.from({ length: K }, (_, i) =>
      Number(readFileSync(join(vr.dataDir, shardDirName(i), 'dnsmasq.pid'), 'utf8').trim()),
    );
  /** The leases every shard holds (the status merges them). */
  const leases = async () => (await getStatus(vr.control, vr.secret, { leases: true })).leases ?? [];

  /**
   * `old` (leased by a real client) freed and its address given to `fresh` in one delta: the old lease goes
   * from the shard holding it (released, not restarted: every shard's dnsmasq keeps its pid and the agent
   * counts no restart) and a real udhcpc with the new MAC gets the address.
   */
  const reuse = async (old: HostSpec, fresh: HostSpec, guest: string, full = false) => {
    assert.ok(
      (await leases()).some((l) => l.mac === old.mac && l.ip === old.ipv4),
      'the old host holds its lease',
    );
    const pids = shardPids();
    const before = (await vr.status()).counters;
    if (full) {
      gen++;
      state = { ...state, generation: gen, hosts: [...state.hosts.filter((h) => h.mac !== old.mac), fresh] };
      const r = await vr.push(state, { timeoutMs: 60_000 });
      assert.ok(r.ok, JSON.stringify(r));
    } else await patch([fresh], [old.mac]);
    await eventually(
      async () => assert.ok(!(await leases()).some((l) => l.mac === old.mac), 'old lease gone'),
      {
        timeoutMs: 5000,
      },
    );
    const gn = await lab.guest(guest, fresh.mac);
    const r = await lab.net.udhcpc(gn, 'eth0');
    assert.equal(r.lease?.ip, old.ipv4, r.output);
    assert.deepEqual(shardPids(), pids, 'no shard restarted');
    const after = (await vr.status()).counters;
    assert.equal(after.restarts, before.restarts);
    assert.ok(after.leasesReleased > before.leasesReleased, JSON.stringify(after));
  };

  before(async () => {
    await lab.setup();
    vr = await lab.router('vr');
    const hosts = Array.from({ length: N }, (_, i) => host(macAt(0xb0, i), i, `f${i}`));
    state = lab.state(gen, hosts);
    state.router.guestIp = '10.64.0.1';
    state.network.gateway = '10.64.0.1';
    const r = await vr.push(state, { timeoutMs: 120_000 });
    assert.ok(r.ok, `push failed: ${JSON.stringify(r)}\n${vr.log()}`);
  });

  after(async () => {
    await lab.cleanup();
  });

  it(`runs ${K} DHCP shards and a DNS dnsmasq`, async () => {
    assert.ok(K > 1);
    const st = await vr.status();
    assert.equal(st.dhcpShards, K);
    assert.ok(st.dnsmasq.running && st.dns?.running, JSON.stringify(st));
    assert.equal(st.leaseCount, N, 'every host pre-seeded in its shard');
  });

  it('a new MAC is served by udhcpc, dhclient and dhcpcd with gateway, DNS and domain; its name resolves', async () => {
    const a = host('02:b1:00:00:00:01', next++, 'newa');
    const b = host('02:b1:00:00:00:02', next++, 'newb');
    const c = host('02:b1:00:00:00:05', next++, 'newc');
    await patch([a]);
    await patch([b]);
    await patch([c]);
    const ga = await lab.guest('ga', a.mac);
    const ra = await lab.net.udhcpc(ga, 'eth0', { hostname: 'newa' });
    assert.equal(ra.lease?.ip, a.ipv4, ra.output);
    assert.deepEqual(ra.lease?.routers, ['10.64.0.1']);
    assert.deepEqual(ra.lease?.dns, ['10.64.0.1']);
    assert.equal(ra.lease?.domain, lab.domain);
    const gb = await lab.guest('gb', b.mac);
    const rb = await lab.net.dhclient(gb, 'eth0', { hostname: 'newb' });
    assert.equal(rb.lease?.ip, b.ipv4, rb.output);
    const gc = await lab.guest('gc', c.mac);
    const rc = await lab.net.dhcpcd(gc, 'eth0', { hostname: 'newc' });
    assert.equal(rc.lease?.ip, c.ipv4, rc.output);
    assert.deepEqual(rc.lease?.routers, ['10.64.0.1']);
    assert.deepEqual(rc.lease?.dns, ['10.64.0.1']);
    assert.equal(rc.lease?.domain, lab.domain);
    const d = await dig(ga, `newb.${lab.domain}`, '10.64.0.1');
    assert.deepEqual(d.answers, [b.ipv4], d.raw);
    const f = await dig(ga, 'f2999', '10.64.0.1');
    assert.deepEqual(f.answers, [ipAt(2999)], f.raw);
  });

  it('a MAC not in the state gets no answer from any shard', async () => {
    const g = await lab.guest('str', '02:b9:00:00:00:99');
    const r = await lab.net.udhcpc(g, 'eth0', { discoverAttempts: 2, discoverTimeoutSec: 1 });
    assert.equal(r.lease, undefined, JSON.stringify(r.lease));
  });

  it('a non-default NIC gets its address without router, DNS or domain', async () => {
    const nic = host('02:b1:00:00:00:03', next++, 'newa-nic2', { defaultNic: false });
    await patch([nic]);
    const g = await lab.guest('nic2', nic.mac);
    const r = await lab.net.udhcpc(g, 'eth0');
    assert.equal(r.lease?.ip, nic.ipv4, r.output);
    assert.deepEqual(r.lease?.routers, []);
    assert.deepEqual(r.lease?.dns, []);
    assert.equal(r.lease?.domain, undefined);
  });

  it('a freed address goes to a new MAC of the same shard: the old lease is released', async () => {
    const old = host('02:b1:00:00:00:04', next++, 'old');
    await patch([old]);
    const go = await lab.guest('old', old.mac);
    assert.equal((await lab.net.udhcpc(go, 'eth0')).lease?.ip, old.ipv4);
    let c = 0x10;
    while (shardOf(`02:b1:00:00:00:${hex(c)}`, K) !== shardOf(old.mac, K)) c++;
    await reuse(old, { ...host(`02:b1:00:00:00:${hex(c)}`, 0, 'reused'), ipv4: old.ipv4 }, 'reused');
  });

  it('a freed address goes to a new MAC of another shard: the old lease is released there, the new shard serves it', async () => {
    const old = host('02:b1:00:00:00:06', next++, 'old2');
    await patch([old]);
    const go = await lab.guest('old2', old.mac);
    assert.equal((await lab.net.udhcpc(go, 'eth0')).lease?.ip, old.ipv4);
    let c = 0x40;
    while (shardOf(`02:b1:00:00:00:${hex(c)}`, K) === shardOf(old.mac, K)) c++;
    await reuse(old, { ...host(`02:b1:00:00:00:${hex(c)}`, 0, 'reused2'), ipv4: old.ipv4 }, 'reused2');
  });

  it('a full push that gives a leased address to a new MAC: released to its shard, no shard restarted', async () => {
    const old = host('02:b1:00:00:00:07', next++, 'old3');
    await patch([old]);
    const go = await lab.guest('old3', old.mac);
    assert.equal((await lab.net.udhcpc(go, 'eth0')).lease?.ip, old.ipv4);
    await reuse(old, { ...host('02:b1:00:00:00:08', 0, 'reused3'), ipv4: old.ipv4 }, 'reused3', true);
  });

  /**
   * A client renewing at T1 unicasts its DHCPREQUEST to the router's address. It must reach the shard holding the
   * client's host, not only whichever shard bound port 67 last (the kernel hands a unicast datagram to one of
   * the sockets): that shard ACKs the same address at once, no NAK, no fall back to a broadcast rebind.
   */
  const renewal = async (ns: string, h: HostSpec, renewEvent: string, sinceMs: number, timeoutMs: number) => {
    const { r, hist } = await eventually(
      async () => {
        const hist = (await leaseHistory(ns)).map(historyLine);
        const r = hist.find((l) => l.event === renewEvent && l.at >= sinceMs);
        assert.ok(r, `${ns} (shard ${shardOf(h.mac, K)}): no ${renewEvent} yet: ${JSON.stringify(hist)}`);
        return { r, hist };
      },
      { timeoutMs, intervalMs: 20, what: `${ns} renewed` },
    );
    assert.equal(r.ip, h.ipv4);
    assert.deepEqual(
      hist.filter((l) => l.at >= sinceMs && /nak|NAK|EXPIRE|FAIL|REBIND|deconfig|leasefail/.test(l.event)),
      [],
      `${ns}: no NAK, no rebind, the address kept`,
    );
    return r.at;
  };

  const bound = (ns: string, h: HostSpec) =>
    eventually(
      async () => {
        const l = await readLease(ns);
        assert.equal(l?.ip, h.ipv4, `${ns}: bound`);
        return l!;
      },
      { timeoutMs: 15_000, what: `${ns} bound` },
    );

  /** A pre-seeded host (f<j>) of shard `i`, not used by another client of this file. */
  const used = new Set<number>();
  const hostOfShard = (i: number) => {
    let j = 100;
    while (used.has(j) || shardOf(macAt(0xb0, j), K) !== i) j++;
    used.add(j);
    return host(macAt(0xb0, j), j, `f${j}`);
  };

  /** A renewal made with SIGUSR1 (udhcpc, dhcpcd): how long it took, in ms. */
  const signalledRenewal = async (ns: string, h: HostSpec, proc: SpawnedProcess, event: string) => {
    const sent = Date.now();
    proc.child.kill('SIGUSR1');
    return (await renewal(ns, h, event, sent, 5000)) - sent;
  };

  it('udhcpc renewals (SIGUSR1: unicast to the router) are ACKed by every shard, same address, no NAK', async () => {
    for (let i = 0; i < K; i++) {
      const h = hostOfShard(i);
      const ns = await lab.guest(`ru${i}`, h.mac);
      const proc = (await lab.net.udhcpc(ns, 'eth0', { keepRunning: true })).process!;
      await bound(ns, h);
      // busybox udhcpc sends one unicast renewal, then after -T (1 s) a broadcast one: a renewal that took over
      // a second was not answered by unicast (every one, for 3 shards in 4, before the unicast rule). It also
      // misses an answer now and then whatever the server (seen with one dnsmasq: 2 to 11 renewals in 20, one
      // every 0.3 s on this loaded machine; fewer spaced out): so up to five tries a second apart, one
      // answered at once suffices, each one ends renewed with the same address.
      const took: number[] = [];
      while (took.length < 5 && !took.some((t) => t <= 1000)) {
        if (took.length) await new Promise((r) => setTimeout(r, 1000));
        took.push(await signalledRenewal(ns, h, proc, 'renew'));
      }
      assert.ok(
        Math.min(...took) <= 1000,
        `${ns} (shard ${i}): renewals took ${took.join(', ')} ms\n${proc.output()}\n` +
          vr.agent
            .output()
            .split('\n')
            .filter((l) => /nft|broadcast|shard/i.test(l))
            .join('\n'),
      );
      await proc.stop();
    }
  });

  it('dhcpcd renewals (SIGUSR1) are ACKed by every shard within a second', async () => {
    for (let i = 0; i < K; i++) {
      const h = hostOfShard(i);
      const ns = await lab.guest(`rc${i}`, h.mac);
      const proc = (await lab.net.dhcpcd(ns, 'eth0', { keepRunning: true })).process!;
      await bound(ns, h);
      const took = await signalledRenewal(ns, h, proc, 'RENEW');
      assert.ok(took <= 1000, `${ns} (shard ${i}): renewal took ${took} ms`);
      await proc.stop();
    }
  });

  it('a renewal for an address the host no longer has is NAKed by its shard; the client then gets the new one', async () => {
    for (let i = 0; i < K; i++) {
      const h = hostOfShard(i);
      const ns = await lab.guest(`rn${i}`, h.mac);
      const proc = (await lab.net.udhcpc(ns, 'eth0', { keepRunning: true })).process!;
      await bound(ns, h);
      const moved = { ...h, ipv4: ipAt(next++) };
      await patch([moved]);
      await eventually(
        async () =>
          assert.ok(!(await leases()).some((l) => l.mac === h.mac && l.ip === h.ipv4), 'old lease gone'),
        { timeoutMs: 5000 },
      );
      const sent = Date.now();
      proc.child.kill('SIGUSR1');
      // One dnsmasq NAKs a unicast renewal it has no lease for (at once: the NAK is broadcast, so udhcpc's
      // lost replies do not apply); a broadcast one it ignores, as another server may hold the lease.
      const nak = await eventually(
        async () => {
          const l = (await leaseHistory(ns)).map(historyLine).find((x) => x.event === 'nak' && x.at >= sent);
          assert.ok(l, `${ns} (shard ${i}): no NAK yet`);
          return l;
        },
        { timeoutMs: 3000, intervalMs: 20, what: `${ns} NAKed` },
      );
      assert.ok(nak.at - sent <= 1000, `${ns} (shard ${i}): NAK after ${nak.at - sent} ms`);
      // udhcpc waits 3 s after a NAK before it asks again.
      await eventually(async () => assert.equal((await readLease(ns))?.ip, moved.ipv4), {
        timeoutMs: 10_000,
      });
      await proc.stop();
    }
  });

  it('dhclient renewing at T1 (unicast) is ACKed by every shard', async () => {
    // dhclient renews on its own timer: T1 superseded to 2 s, which it randomises to 2–3 s on its whole-second
    // clock. Unanswered, it would retry by unicast until T2 (7/8 of the hour's lease).
    const t1Sec = 2;
    const hooks = await hookScripts();
    for (let i = 0; i < K; i++) {
      const h = hostOfShard(i);
      const ns = await lab.guest(`rd${i}`, h.mac);
      const dir = stateDir(ns);
      mkdirSync(dir, { recursive: true });
      const cf = join(dir, 'dhclient-t1.conf');
      writeFileSync(
        cf,
        `timeout 10;\nretry 1;\ninitial-interval 1;\nsupersede dhcp-renewal-time ${t1Sec};\n`,
      );
      const proc = lab.net.spawnIn(ns, [
        'dhclient',
        '-4',
        '-d',
        '-cf',
        cf,
        '-lf',
        join(dir, 'dhclient-t1.leases'),
        '-pf',
        join(dir, 'dhclient-t1.pid'),
        '-sf',
        hooks.dhclient,
        '-e',
        'SN_CLIENT=dhclient',
        '-e',
        `SN_STATE=${leaseStatePath(ns, 'eth0')}`,
        '-e',
        `SN_RESOLV=${resolvConfPath(ns)}`,
        'eth0',
      ]);
      const b = await bound(ns, h);
      const at = await renewal(ns, h, 'RENEW', b.at, 10_000);
      // Due at most t1Sec + 1 s after the ACK (+1 s of its clock's rounding); answered within a second of it.
      assert.ok(at - b.at <= (t1Sec + 3) * 1000, `${ns} (shard ${i}): renewed ${at - b.at} ms after bound`);
      await proc.stop();
    }
  });

  it('DNS answers every query while a burst of 200 new VMs is served', async () => {
    const probeNs = await lab.net.namespace('probe');
    await lab.net.veth({ ns: probeNs, bridge: lab.bridge, addresses: ['10.64.255.254/16'] });
    const probe = await DhcpProbe.start(probeNs, { track: (p) => lab.net.trackPid(p.pid) });
    try {
      await probe.dnsStart('10.64.0.1', `f1.${lab.domain}`, { intervalMs: 10, timeoutMs: 1000 });
      const burst = Array.from({ length: 200 }, (_, i) => host(macAt(0xb2, i), next++, `burst${i}`));
      const served = Promise.all(burst.map((h) => probe.lease(h.mac, { retryMs: 50, timeoutMs: 60_000 })));
      await patch(burst);
      const leases = await served;
      const dns = await probe.dnsStop();
      assert.deepEqual(
        leases.filter((l) => !l.ok),
        [],
      );
      assert.deepEqual(
        leases.map((l) => (l.ok ? l.ip : '')),
        burst.map((h) => h.ipv4),
      );
      assert.ok(dns.sent > 0);
      assert.equal(dns.lost, 0, JSON.stringify(dns));
      await eventually(async () =>
        assert.deepEqual((await dig(probeNs, 'burst199', '10.64.0.1')).answers, [burst[199]!.ipv4]),
      );
    } finally {
      await probe.close();
    }
  });
});
