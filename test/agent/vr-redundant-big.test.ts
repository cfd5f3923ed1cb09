// Issue 15: a redundant pair for a big network. Past 2,048 hosts each agent would serve DHCP from several dnsmasq
// shards (src/agent/appliers/dnsmasq/shards.ts): only the primary runs them, the backup none; when the primary
// goes, the backup starts every shard and its DNS, and guests of any shard get exactly their address from it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually } from '../../src/netns/index.js';
import type { DesiredState, HostSpec } from '../../src/agent/desired-state.js';
import { shardCount, shardOf } from '../../src/agent/appliers/dnsmasq/shards.js';
import { VrLab, type RouterUnderTest } from './vr-lab.js';

const N = 3000;
const K = shardCount(N);
const hex = (x: number) => x.toString(16).padStart(2, '0');
const macAt = (i: number) => `02:c0:00:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)}`;
/** Address i of 10.65.0.0/16, never .0/.255 and never 10.65.0.x (the routers' and the gateway's). */
const ipAt = (i: number) => `10.65.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
const hosts: HostSpec[] = Array.from({ length: N }, (_, i) => ({
  mac: macAt(i),
  ipv4: ipAt(i),
  hostname: `b${i}`,
  defaultNic: true,
  vmId: `vm-b${i}`,
}));

/** One host of each shard: every shard must answer on whichever router serves. */
const onePerShard = () => {
  const seen = new Map<number, HostSpec>();
  for (const h of hosts) if (!seen.has(shardOf(h.mac, K))) seen.set(shardOf(h.mac, K), h);
  return [...seen.values()];
};

describe('router agent: a redundant pair for a big network (DHCP shards on the primary only)', () => {
  const lab = new VrLab({ cidr: '10.65.0.0/16', domain: 'bigpair.internal' });
  let primary: RouterUnderTest;
  let backup: RouterUnderTest;
  const vrid = 1 + Math.floor(Math.random() * 250);

  const pairState = (name: string, guestIp: string, priority: number): DesiredState => {
    const s = lab.state(1, hosts);
    s.router = {
      name,
      guestIp,
      redundant: { priority, vrrpIntervalSeconds: 1, virtualRouterId: vrid, authPass: 'bigpair' },
    };
    return s;
  };

  before(async () => {
    await lab.setup();
    primary = await lab.router('vr1');
    backup = await lab.router('vr2');
    const rs = await Promise.all([
      primary.push(pairState('r-1-VM', lab.ip(2), 100), { timeoutMs: 120_000 }),
      backup.push(pairState('r-2-VM', lab.ip(3), 90), { timeoutMs: 120_000 }),
    ]);
    rs.forEach((r, i) => assert.ok(r.ok, `push ${i}: ${JSON.stringify(r)}\n${(i ? backup : primary).log()}`));
  });

  after(async () => {
    await lab.cleanup();
  });

  it(`the primary runs ${K} DHCP shards and DNS; the backup none`, async () => {
    assert.ok(K > 1);
    await eventually(
      async () => {
        const [p, b] = await Promise.all([primary.status(), backup.status()]);
        assert.equal(p.role, 'primary');
        assert.equal(b.role, 'backup');
        assert.equal(p.dhcpShards, K);
        assert.equal(p.dnsmasq.running, true);
        assert.equal(p.dns?.running, true);
        assert.equal(b.dnsmasq.running, false, 'the backup must not answer DHCP');
      },
      { timeoutMs: 20_000, what: `VRRP election\n${primary.log()}\n${backup.log()}` },
    );
    const h = onePerShard()[0]!;
    const g = await lab.guest('p0', h.mac);
    const r = await lab.net.udhcpc(g, 'eth0', { hostname: h.hostname });
    assert.equal(r.lease?.ip, h.ipv4, r.output);
    assert.deepEqual(r.lease?.routers, [lab.ip(1)], 'the gateway is the virtual address');
  });

  it('the primary stopped: the backup starts every shard, and a guest of each shard gets its address', async () => {
    await primary.agent.stop(5000);
    await eventually(
      async () => {
        const b = await backup.status();
        assert.equal(b.role, 'primary');
        assert.equal(b.dhcpShards, K);
        assert.equal(b.dnsmasq.running, true);
      },
      { timeoutMs: 20_000, what: `the backup takes over\n${backup.log()}` },
    );
    for (const [i, h] of onePerShard().entries()) {
      const g = await lab.guest(`s${i}`, h.mac);
      const r = await eventually(
        async () => {
          const got = await lab.net.udhcpc(g, 'eth0', { hostname: h.hostname });
          assert.ok(got.lease, got.output);
          return got;
        },
        { timeoutMs: 10_000, what: `shard ${shardOf(h.mac, K)} on the backup\n${backup.log()}` },
      );
      assert.equal(r.lease?.ip, h.ipv4, r.output);
      assert.equal(r.lease?.serverId, lab.ip(1));
    }
  });
});
