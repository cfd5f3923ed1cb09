import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { baseState, hostFor } from '../../testing/fixtures.js';
import { goldenCtx } from '../../testing/golden.js';
import { dnsmasqRenderer } from './render.js';
import { shardCount, shardOf, shardStates, singleShardMaxHosts } from './shards.js';

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

  it('every host lands in exactly one shard, the same one every time; IPv6 and RAs stay with shard 0', () => {
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
      if (i > 0) {
        assert.equal(p.network.ipv6Cidr, undefined);
        assert.ok(p.hosts.every((h) => h.ipv6 === undefined));
      }
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
      assert.equal(/^enable-ra$/m.test(f.dnsmasqConf), i === 0);
    });
    assert.equal(dnsmasqRenderer.digest(out, s).length, 8);
    const small = dnsmasqRenderer.render(big(10), goldenCtx);
    assert.equal(small.shards, undefined);
    assert.match(small.dnsmasqConf, /pid-file=\/var\/lib\/vr\/dnsmasq.pid/);
  });
});
