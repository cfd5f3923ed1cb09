import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DesiredState } from '../../desired-state.js';
import { baseState, hostFor } from '../../testing/fixtures.js';
import { golden, goldenCases, goldenCtx } from '../../testing/golden.js';
import type { LoadedDnsmasq } from './plan.js';
import { leasesToRelease, loadedFrom as loadedIndex, noteAdded, planDnsmasq } from './plan.js';
import { dnsmasqRenderer, mergeLeases, parseLeases } from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const render = (s: DesiredState) => dnsmasqRenderer.render(s, goldenCtx);

describe('dnsmasq render: golden files', () => {
  for (const [name, make] of Object.entries(goldenCases)) {
    it(name, () => {
      const r = render(make());
      golden(testdata, `${name}.dnsmasq.conf`, r.dnsmasqConf);
      golden(testdata, `${name}.dhcphosts`, r.dhcpHosts);
      golden(testdata, `${name}.leases`, mergeLeases(make(), '', 1_800_000_000));
    });
  }
});

/**
 * Two shards (`--dhcp-shards 2`) of a dual-stack network: hosts 1, 3 and 4 hash to shard 0, 2 (a non-default NIC)
 * and 7 to shard 1. Each shard carries its hosts' IPv6 addresses and the DHCPv6 range; shard 0 alone sends RAs.
 */
describe('dnsmasq render: golden files of DHCP shards', () => {
  it('shards-2', () => {
    const s = baseState();
    const v6 = (h: DesiredState['hosts'][number]) => ({ ...h, ipv6: `fd00:1::${h.ipv4.split('.')[3]}` });
    const state: DesiredState = {
      ...s,
      network: { ...s.network, ipv6Cidr: 'fd00:1::/64', leaseTime: 3600 },
      hosts: [...s.hosts, hostFor(3), hostFor(4), hostFor(7)].map(v6),
    };
    const r = dnsmasqRenderer.render(state, { ...goldenCtx, dhcpShards: 2 });
    assert.equal(r.shards?.length, 2);
    r.shards!.forEach((f, i) => {
      golden(testdata, `shards-2.dhcp-${i}.dnsmasq.conf`, f.dnsmasqConf);
      golden(testdata, `shards-2.dhcp-${i}.dhcphosts`, f.dhcpHosts);
    });
  });
});

function loaded(s: DesiredState): LoadedDnsmasq {
  const r = render(s);
  return loadedIndex(r.dnsmasqConf, r.dhcpHosts.split('\n'));
}

describe('planDnsmasq: the cheapest signal', () => {
  const s1 = baseState();
  it('nothing loaded → restart', () => {
    assert.equal(planDnsmasq(null, s1, render(s1)).kind, 'restart');
  });
  it('same content → none', () => {
    assert.equal(planDnsmasq(loaded(s1), s1, render(s1)).kind, 'none');
  });
  it('new MACs with new addresses → hostsdir add, no reload', () => {
    const s2 = { ...s1, hosts: [...s1.hosts, hostFor(3), hostFor(4)] };
    const p = planDnsmasq(loaded(s1), s2, render(s2));
    assert.equal(p.kind, 'add');
    assert.ok(p.kind === 'add');
    assert.deepEqual(p.hostLines, [
      '02:00:00:00:00:03,10.1.0.13,vm3,infinite',
      '02:00:00:00:00:04,10.1.0.14,vm4,infinite',
    ]);
  });
  it('removal → reload', () => {
    const s2 = { ...s1, hosts: [s1.hosts[1]!] };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2)).kind, 'reload');
  });
  it('an address another MAC had → reload (dnsmasq would offer nothing)', () => {
    const s2 = { ...s1, hosts: [s1.hosts[1]!, { ...hostFor(7), ipv4: s1.hosts[0]!.ipv4 }] };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2)).kind, 'reload');
  });
  it('non-default NICs live in dnsmasq.conf (dnsmasq 2.90 crashes on SIGHUP with tagged hosts-file leases) → restart', () => {
    const s2 = { ...s1, hosts: [s1.hosts[0]!] };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2)).kind, 'restart');
    const s3 = { ...s1, hosts: [...s1.hosts, { ...hostFor(9), defaultNic: false }] };
    assert.equal(planDnsmasq(loaded(s1), s3, render(s3)).kind, 'restart');
  });
  it('a stale entry still loaded from an earlier add counts as known', () => {
    const l = loaded(s1);
    noteAdded(l, ['02:00:00:00:00:63,10.1.0.99,gone,infinite']);
    const s2 = { ...s1, hosts: [...s1.hosts, { ...hostFor(8), ipv4: '10.1.0.99' }] };
    assert.equal(planDnsmasq(l, s2, render(s2)).kind, 'reload');
  });
  it('an address still leased to another MAC → reload (the release did not arrive)', () => {
    const s2 = { ...s1, hosts: [...s1.hosts, { ...hostFor(9), ipv4: '10.1.0.60' }] };
    const leases = [{ expires: 0, mac: '02:00:00:00:00:77', ip: '10.1.0.60', hostname: 'x', clientId: '*' }];
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2), leases).kind, 'reload');
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2), []).kind, 'add');
  });
  it('same MAC, new address or name → reload', () => {
    const s2 = { ...s1, hosts: [{ ...s1.hosts[0]!, ipv4: '10.1.0.50' }, s1.hosts[1]!] };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2)).kind, 'reload');
    const s3 = { ...s1, hosts: [{ ...s1.hosts[0]!, hostname: 'renamed' }, s1.hosts[1]!] };
    assert.equal(planDnsmasq(loaded(s1), s3, render(s3)).kind, 'reload');
  });
  it('network change → restart', () => {
    const s2 = { ...s1, network: { ...s1.network, domain: 'other.internal' } };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2)).kind, 'restart');
  });
  it('metadata/password only → none for dnsmasq', () => {
    const s2 = { ...s1, passwords: {} };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2)).kind, 'none');
  });
});

describe('leases', () => {
  it('pre-seed keeps matching leases, drops stale ones, seeds the rest with expiry 0', () => {
    const s = baseState();
    const existing = [
      '1900000000 02:00:00:00:00:01 10.1.0.11 vm1 01:02:00:00:00:00:01', // still valid
      '0 02:00:00:00:00:09 10.1.0.19 old *', // host gone
      '0 02:00:00:00:00:02 10.1.0.99 vm2 *', // address changed
    ].join('\n');
    const out = parseLeases(mergeLeases(s, existing, 1_800_000_000));
    assert.deepEqual(
      out.map((l) => [l.expires, l.mac, l.ip, l.clientId]),
      [
        [1900000000, '02:00:00:00:00:01', '10.1.0.11', '01:02:00:00:00:00:01'],
        [0, '02:00:00:00:00:02', '10.1.0.12', '*'],
      ],
    );
  });
  it('leasesToRelease: what the state no longer has', () => {
    const s = baseState();
    const leases = parseLeases(
      [
        '0 02:00:00:00:00:01 10.1.0.11 vm1 *',
        '0 02:00:00:00:00:02 10.1.0.40 vm2 *',
        '0 02:00:00:00:00:09 10.1.0.12 x *',
      ].join('\n'),
    );
    assert.deepEqual(
      leasesToRelease(leases, s).map((l) => l.ip),
      ['10.1.0.40', '10.1.0.12'],
    );
  });
});
