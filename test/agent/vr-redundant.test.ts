// Issue 5, "What it must show": the redundant pair. Two agents with keepalived on one guest bridge; the gateway is
// the VRRP address; only the primary answers DHCP. Stop the primary's agent (which stops its keepalived): a guest
// renews and resolves through the backup within 5 s. Issue 13: the public address and the default route are the
// primary's only and move to the backup with the VIP; the upstream's neighbour entry follows keepalived's
// gratuitous ARP.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  dig,
  eventually,
  execIn,
  getMac,
  pidAlive,
  readLease,
  runIn,
  type SpawnedProcess,
} from '../../src/netns/index.js';
import type { DesiredState } from '../../src/agent/desired-state.js';
import { VrLab, type RouterUnderTest } from './vr-lab.js';

const MAC1 = '02:ac:00:00:00:01';
const MAC2 = '02:ac:00:00:00:02';
const publicIp = '203.0.113.20';
const upstream = '203.0.113.1';

async function publicHeld(ns: string): Promise<{ address: boolean; route: boolean }> {
  const a = await runIn(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth2']);
  const r = await runIn(ns, ['ip', '-4', 'route', 'show', 'default']);
  return {
    address: a.stdout.includes(`inet ${publicIp}/24`),
    route: /default via 203\.0\.113\.1 dev eth2/.test(r.stdout),
  };
}

describe('router agent: redundant pair with keepalived', () => {
  const lab = new VrLab({ cidr: '10.62.0.0/24' });
  let primary: RouterUnderTest;
  let backup: RouterUnderTest;
  const g: Record<string, string> = {};
  const vrid = 1 + Math.floor(Math.random() * 250);
  let udhcpc: SpawnedProcess | undefined;
  let wan = '';

  function pairState(name: string, guestIp: string, priority: number): DesiredState {
    const s = lab.state(1, [lab.host(11, MAC1, 'vm1'), lab.host(12, MAC2, 'vm2')]);
    s.router = {
      name,
      guestIp,
      redundant: { priority, vrrpIntervalSeconds: 1, virtualRouterId: vrid, authPass: 'pairpass' },
    };
    s.public = {
      nics: [{ interface: 'eth2', vlan: 'untagged', gateway: upstream, prefix: 24, addresses: [publicIp] }],
      sourceNatIp: publicIp,
      staticNats: [],
      egressDefaultAllow: false,
    };
    return s;
  }

  before(async () => {
    await lab.setup();
    primary = await lab.router('vr1');
    backup = await lab.router('vr2');
    // The public side as the netns driver plugs it: eth2 of each router on one public bridge, an upstream on it.
    const pub = await lab.net.bridge('pub');
    for (const r of [primary, backup]) await lab.net.veth({ ns: r.ns, ifname: 'eth2', bridge: pub });
    wan = await lab.net.namespace('wan');
    await lab.net.veth({ ns: wan, ifname: 'eth0', bridge: pub, addresses: [`${upstream}/24`] });
    g.vm1 = await lab.guest('vm1', MAC1);
    g.vm2 = await lab.guest('vm2', MAC2);
    await lab.pushPair(primary, backup, pairState);
  });

  after(async () => {
    await lab.cleanup();
  });

  it('elects the higher priority as primary; the backup runs no dnsmasq', async () => {
    await eventually(
      async () => {
        const [p, b] = await Promise.all([primary.status(), backup.status()]);
        assert.equal(p.role, 'primary');
        assert.equal(b.role, 'backup');
        assert.equal(p.dnsmasq.running, true);
        assert.equal(b.dnsmasq.running, false, 'the backup must not answer DHCP');
        assert.ok(p.keepalived?.running && b.keepalived?.running);
      },
      { timeoutMs: 15_000, what: `VRRP election\n${primary.log()}\n${backup.log()}` },
    );
    const r = await lab.net.dhclient(g.vm1!, 'eth0', { hostname: 'vm1' });
    assert.ok(r.lease, r.output);
    assert.equal(r.lease.ip, lab.ip(11));
    assert.deepEqual(r.lease.routers, [lab.ip(1)], 'the gateway is the virtual address');
    // the server identifier is the virtual address too, so a unicast renew reaches whoever holds it
    assert.equal(r.lease.serverId, lab.ip(1));
    assert.deepEqual(r.lease.dns, [lab.ip(1)]);
    // vm2 keeps a udhcpc running, as a guest does, to renew later
    const u = await lab.net.udhcpc(g.vm2!, 'eth0', { hostname: 'vm2', keepRunning: true });
    assert.equal(u.lease?.ip, lab.ip(12), u.output);
    udhcpc = u.process;
    const d = await dig(g.vm1!, 'vm2', lab.ip(1));
    assert.deepEqual(d.answers, [lab.ip(12)]);
  });

  it('the public address and the default route are on the primary only', async () => {
    await eventually(
      async () => {
        assert.deepEqual(await publicHeld(primary.ns), { address: true, route: true });
        assert.deepEqual(await publicHeld(backup.ns), { address: false, route: false });
      },
      { timeoutMs: 10_000, what: `public side on the primary\n${primary.log()}` },
    );
    // the upstream resolves the address to the primary's eth2, and keeps it in its neighbour table (stale: only a
    // gratuitous ARP, the backup's after a failover, replaces such an entry)
    const mac = await getMac(primary.ns, 'eth2');
    const probe = await execIn(wan, ['arping', '-c', '1', '-w', '2', '-I', 'eth0', publicIp]);
    assert.match(probe.stdout, new RegExp(`\\[${mac}\\]`, 'i'), probe.stdout);
    await runIn(wan, ['ip', 'neigh', 'replace', publicIp, 'lladdr', mac, 'dev', 'eth0', 'nud', 'stale']);
  });

  it("stopping the primary's agent and keepalived: a guest renews and resolves through the backup within 5 s", async (t) => {
    const p = await primary.status();
    const keepalivedPid = p.keepalived?.pid;
    assert.ok(keepalivedPid, JSON.stringify(p.keepalived));
    const t0 = Date.now();
    const backupMac = await getMac(backup.ns, 'eth2');
    // Watched from the moment of the stop: when the backup holds the public side and the upstream follows.
    const publicMoved = eventually(
      async () => {
        assert.deepEqual(await publicHeld(backup.ns), { address: true, route: true });
        const n = (await runIn(wan, ['ip', 'neigh', 'show', publicIp])).stdout;
        assert.match(n, new RegExp(`lladdr ${backupMac}`), n);
        return Date.now() - t0;
      },
      { timeoutMs: 10_000, intervalMs: 10, what: `public side on the backup\n${backup.log()}` },
    );
    publicMoved.catch(() => undefined);
    await primary.agent.stop(5000);
    // vm2 renews (SIGUSR1: unicast REQUEST to the server identifier, the virtual address)
    assert.ok(udhcpc && !udhcpc.hasExited(), 'vm2 has no running udhcpc');
    process.kill(udhcpc.pid, 'SIGUSR1');
    assert.equal(await pidAlive(keepalivedPid), false, "the primary's keepalived is still running");
    // the guest asks again for its address (INIT-REBOOT from its lease file, a broadcast REQUEST) ...
    const renewed = await eventually(
      async () => {
        const r = await lab.net.dhclient(g.vm1!, 'eth0', { keepLeaseFile: true, timeoutSec: 2 });
        assert.ok(r.lease, `no lease yet: ${r.output.slice(-500)}`);
        return r.lease;
      },
      {
        timeoutMs: 5000 - (Date.now() - t0),
        intervalMs: 10,
        what: `renew through the backup\n${backup.log()}`,
      },
    );
    assert.equal(renewed.ip, lab.ip(11));
    assert.deepEqual(renewed.routers, [lab.ip(1)]);
    assert.equal(renewed.serverId, lab.ip(1));
    // ... and resolves through the same (virtual) address, now held by the backup
    const resolved = await eventually(
      async () => {
        const d = await dig(g.vm1!, 'vm2');
        assert.deepEqual(d.answers, [lab.ip(12)], d.raw);
        return d;
      },
      { timeoutMs: Math.max(100, 5000 - (Date.now() - t0)), intervalMs: 10, what: 'DNS through the backup' },
    );
    const renewedVm2 = await eventually(
      async () => {
        const l = await readLease(g.vm2!);
        assert.ok(l && l.event === 'renew' && l.at >= t0, `vm2: ${JSON.stringify(l)}`);
        return l;
      },
      { timeoutMs: Math.max(100, 5000 - (Date.now() - t0)), intervalMs: 10, what: 'vm2 udhcpc renew' },
    );
    assert.equal(renewedVm2.ip, lab.ip(12));
    const elapsed = Date.now() - t0;
    assert.ok(resolved);
    assert.ok(elapsed <= 5000, `took ${elapsed} ms`);
    t.diagnostic(`renewed (${renewed.event}) and resolved through the backup ${elapsed} ms after the stop`);
    const publicMs = await publicMoved;
    t.diagnostic(
      `public address and default route on the backup, upstream ARP updated: ${publicMs} ms after the stop`,
    );
    assert.deepEqual(await publicHeld(primary.ns), { address: false, route: false });
    const b = await backup.status();
    assert.equal(b.role, 'primary');
    assert.equal(b.dnsmasq.running, true);
    assert.equal((await readLease(g.vm1!))?.ip, lab.ip(11));
  });
});
