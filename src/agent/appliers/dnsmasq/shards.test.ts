import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { baseState, hostFor } from '../../testing/fixtures.js';
import { goldenCtx } from '../../testing/golden.js';
import { dnsmasqRenderer } from './render.js';
import { dnsmasqTest } from './tools.js';
import { combinedCheckConf, shardCount, shardOf, shardStates, singleShardMaxHosts } from './shards.js';

const big = (n: number) => {
  const s = baseState();
  return {
    ...s,
    network: { ...s.network, ipv6Cidr: 'fd00:1::/64' },
    hosts: Array.from({ length: n }, (_, i) => ({
      ...hostFor(i + 1),
      ipv6: `fd00:1::${(i + 1).toString(16)}`,
    })),
  };
};

describe('DHCP shards', () => {
  it('one dnsmasq up to the threshold, then a power of two of ~1,024 hosts each', () => {
    assert.equal(shardCount(0), 1);
    assert.equal(shardCount(singleShardMaxHosts), 1);
    assert.equal(shardCount(singleShardMaxHosts + 1), 4);
    assert.equal(shardCount(10_000), 16);
    assert.equal(shardCount(50_000), 64);
  });

  it('--dhcp-shards pins K whatever the number of hosts', () => {
    assert.equal(shardCount(3, 4), 4);
    assert.equal(shardCount(10_000, 1), 1);
    const out = dnsmasqRenderer.render(big(6), { ...goldenCtx, dhcpShards: 2 });
    assert.equal(out.shards?.length, 2);
  });

  it('every host lands in exactly one shard, the same one every time, with its IPv6 address', () => {
    const s = big(3000);
    const k = shardCount(s.hosts.length);
    const parts = shardStates(s, k);
    assert.equal(parts.length, k);
    assert.equal(
      parts.reduce((a, p) => a + p.hosts.length, 0),
      s.hosts.length,
    );
    parts.forEach((p, i) => {
      for (const h of p.hosts) assert.equal(shardOf(h.mac, k), i);
      assert.equal(p.network.ipv6Cidr, 'fd00:1::/64');
      assert.ok(p.hosts.every((h) => h.ipv6 !== undefined));
      assert.ok(p.hosts.length > 500 && p.hosts.length < 1000, `shard ${i}: ${p.hosts.length}`);
    });
    assert.equal(shardOf(s.hosts[0]!.mac.toUpperCase(), k), shardOf(s.hosts[0]!.mac, k));
  });

  it('renders each shard into its own directory; the digest covers every shard', () => {
    const s = big(3000);
    const out = dnsmasqRenderer.render(s, goldenCtx);
    assert.equal(out.shards?.length, 4);
    out.shards!.forEach((f, i) => {
      assert.match(f.dnsmasqConf, new RegExp(`pid-file=/var/lib/vr/dhcp-${i}/dnsmasq.pid`));
      assert.match(f.dnsmasqConf, new RegExp(`dhcp-leasefile=/var/lib/vr/dhcp-${i}/dnsmasq.leases`));
      assert.match(f.dnsmasqConf, /^port=0$/m);
      // DHCPv6 in every shard, for its own hosts; RAs (enable-ra, and `slaac`, which alone turns them on) in
      // shard 0 only.
      assert.equal(/^enable-ra$/m.test(f.dnsmasqConf), i === 0);
      assert.equal(/^ra-param=/m.test(f.dnsmasqConf), i === 0);
      const range6 = f.dnsmasqConf.split('\n').filter((l) => l.startsWith('dhcp-range=set:guest6,'));
      assert.deepEqual(range6, [
        i === 0
          ? 'dhcp-range=set:guest6,fd00:1::,static,slaac,64,infinite'
          : 'dhcp-range=set:guest6,fd00:1::,static,64,infinite',
      ]);
      assert.match(f.dhcpHosts, /,\[fd00:1::[0-9a-f]+\],/);
    });
    assert.equal(dnsmasqRenderer.digest(out, s).length, 8);
    const small = dnsmasqRenderer.render(big(10), goldenCtx);
    assert.equal(small.shards, undefined);
    assert.match(small.dnsmasqConf, /pid-file=\/var\/lib\/vr\/dnsmasq.pid/);
  });

  it("one configuration to test for all shards: the first whole, every shard's non-default NICs", () => {
    const s = big(3000);
    // Non-default NICs (dhcp-host= lines in the configuration file) in every shard.
    s.hosts = s.hosts.map((h, i) => (i % 500 === 7 ? { ...h, defaultNic: false } : h));
    const out = dnsmasqRenderer.render(s, goldenCtx);
    const confs = out.shards!.map((f) => f.dnsmasqConf);
    const combined = combinedCheckConf(confs);
    assert.ok(combined.startsWith(confs[0]!));
    const hostLines = (c: string) => c.split('\n').filter((l) => l.startsWith('dhcp-host='));
    assert.deepEqual(hostLines(combined).sort(), confs.flatMap(hostLines).sort());
    assert.equal(hostLines(combined).length, 6);
    // Only the first one's other lines: one pid file, one RA.
    assert.equal(combined.match(/^pid-file=/gm)?.length, 1);
    assert.equal(combined.match(/^enable-ra$/gm)?.length, 1);
    assert.equal(combinedCheckConf([confs[2]!]), confs[2]);
  });

  it('dnsmasq --test accepts the combined configuration of good shards and refuses a bad shard', async () => {
    const s = big(3000);
    s.hosts = s.hosts.map((h, i) => (i % 500 === 7 ? { ...h, defaultNic: false } : h));
    const confs = dnsmasqRenderer.render(s, goldenCtx).shards!.map((f) => f.dnsmasqConf);
    const dir = mkdtempSync(join(tmpdir(), 'shards-test-'));
    try {
      const test = (text: string) => {
        writeFileSync(join(dir, 'c.conf'), text);
        return dnsmasqTest('dnsmasq', join(dir, 'c.conf'));
      };
      assert.equal(await test(combinedCheckConf(confs)), null);
      // What the combined test leaves out of the other shards, their DHCPv6 range without RAs, dnsmasq takes.
      assert.equal(await test(confs[3]!), null);
      const bad = [...confs];
      bad[3] += 'dhcp-host=02:00:00:00:00:01,[zz::1::2]\n';
      assert.match((await test(combinedCheckConf(bad))) ?? '', /bad IPv6 address/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
