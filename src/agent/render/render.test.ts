import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DesiredState } from '../desired-state.js';
import { baseState, hostFor } from '../testing/fixtures.js';
import { mergeLeases, parseLeases } from './dnsmasq.js';
import type { LoadedDnsmasq, RenderContext } from './render.js';
import { leasesToRelease, loadedFrom as loadedIndex, noteAdded, planDnsmasq, render } from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const update = process.env.UPDATE_GOLDEN === '1';

function golden(name: string, actual: string): void {
  const file = join(testdata, `${name}.golden`);
  if (update) {
    mkdirSync(testdata, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(file, 'utf8');
  } catch {
    assert.fail(`${file} is missing; run UPDATE_GOLDEN=1 npm test -- src/agent`);
  }
  assert.equal(actual, expected, `${name} differs from ${file} (UPDATE_GOLDEN=1 rewrites it)`);
}

const ctx: RenderContext = {
  paths: {
    conf: '/var/lib/vr/dnsmasq.conf',
    pidFile: '/var/lib/vr/dnsmasq.pid',
    leaseFile: '/var/lib/vr/dnsmasq.leases',
    logFile: '/var/lib/vr/dnsmasq.log',
    dhcpHostsFile: '/var/lib/vr/dhcphosts.txt',
    dhcpHostsDir: '/var/lib/vr/dhcphosts.d',
    namesFile: '/var/lib/vr/names.txt',
    namesDir: '/var/lib/vr/names.d',
  },
  guestInterface: 'eth0',
  controlInterface: 'eth1',
  controlPort: 3922,
  metadataPort: 80,
  passwordPort: 8080,
};

const redundant = (): DesiredState =>
  baseState({
    router: {
      name: 'r-5-VM',
      guestIp: '10.1.0.2',
      redundant: { priority: 100, vrrpIntervalSeconds: 1, virtualRouterId: 5, authPass: 'pa55word' },
    },
  });

const externalDns = (): DesiredState => {
  const s = baseState();
  return {
    ...s,
    network: { ...s.network, useExternalDns: true, leaseTime: 3600, ipv6Cidr: 'fd00:1::/64' },
    hosts: [{ ...hostFor(1), ipv6: 'fd00:1::11' }],
  };
};

describe('render: golden files', () => {
  const cases: Record<string, () => DesiredState> = {
    basic: () => baseState(),
    redundant,
    'external-dns': externalDns,
  };
  for (const [name, make] of Object.entries(cases)) {
    it(name, () => {
      const r = render(make(), ctx);
      golden(`${name}.dnsmasq.conf`, r.dnsmasqConf);
      golden(`${name}.dhcphosts`, r.dhcpHosts);
      golden(`${name}.names`, r.names);
      golden(`${name}.nft`, r.nftables);
      if (r.keepalivedConf) golden(`${name}.keepalived.conf`, r.keepalivedConf);
      golden(`${name}.leases`, mergeLeases(make(), '', 1_800_000_000));
    });
  }
  it('sub-second VRRP adverts switch keepalived to VRRPv3 without authentication', () => {
    const s = redundant();
    s.router.redundant!.vrrpIntervalSeconds = 0.1;
    const conf = render(s, ctx).keepalivedConf!;
    assert.match(conf, /vrrp_version 3/);
    assert.match(conf, /advert_int 0.1/);
    assert.doesNotMatch(conf, /auth_pass/);
  });
});

describe('render: hash', () => {
  it('ignores the generation and host order, follows content', () => {
    const a = baseState();
    const b = { ...baseState(), generation: 9, hosts: [...baseState().hosts].reverse() };
    assert.equal(render(a, ctx).hash, render(b, ctx).hash);
    const c = baseState({ passwords: { '10.1.0.11': 'other' } });
    assert.notEqual(render(a, ctx).hash, render(c, ctx).hash);
  });
});

function loaded(s: DesiredState): LoadedDnsmasq {
  const r = render(s, ctx);
  return loadedIndex(r.dnsmasqConf, r.dhcpHosts.split('\n'), r.names.split('\n'));
}

describe('planDnsmasq: the cheapest signal', () => {
  const s1 = baseState();
  it('nothing loaded → restart', () => {
    assert.equal(planDnsmasq(null, s1, render(s1, ctx)).kind, 'restart');
  });
  it('same content → none', () => {
    assert.equal(planDnsmasq(loaded(s1), s1, render(s1, ctx)).kind, 'none');
  });
  it('new MACs with new addresses → hostsdir add, no reload', () => {
    const s2 = { ...s1, hosts: [...s1.hosts, hostFor(3), hostFor(4)] };
    const p = planDnsmasq(loaded(s1), s2, render(s2, ctx));
    assert.equal(p.kind, 'add');
    assert.ok(p.kind === 'add');
    assert.deepEqual(p.hostLines, [
      '02:00:00:00:00:03,10.1.0.13,vm3,infinite',
      '02:00:00:00:00:04,10.1.0.14,vm4,infinite',
    ]);
    assert.deepEqual(p.nameLines, ['10.1.0.13\tvm3 vm3.cs4.internal', '10.1.0.14\tvm4 vm4.cs4.internal']);
  });
  it('removal → reload', () => {
    const s2 = { ...s1, hosts: [s1.hosts[1]!] };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2, ctx)).kind, 'reload');
  });
  it('an address another MAC had → reload (dnsmasq would offer nothing)', () => {
    const s2 = { ...s1, hosts: [s1.hosts[1]!, { ...hostFor(7), ipv4: s1.hosts[0]!.ipv4 }] };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2, ctx)).kind, 'reload');
  });
  it('non-default NICs live in dnsmasq.conf (dnsmasq 2.90 crashes on SIGHUP with tagged hosts-file leases) → restart', () => {
    const s2 = { ...s1, hosts: [s1.hosts[0]!] };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2, ctx)).kind, 'restart');
    const s3 = { ...s1, hosts: [...s1.hosts, { ...hostFor(9), defaultNic: false }] };
    assert.equal(planDnsmasq(loaded(s1), s3, render(s3, ctx)).kind, 'restart');
  });
  it('a stale entry still loaded from an earlier add counts as known', () => {
    const l = loaded(s1);
    noteAdded(l, ['02:00:00:00:00:63,10.1.0.99,gone,infinite'], []);
    const s2 = { ...s1, hosts: [...s1.hosts, { ...hostFor(8), ipv4: '10.1.0.99' }] };
    assert.equal(planDnsmasq(l, s2, render(s2, ctx)).kind, 'reload');
  });
  it('an address still leased to another MAC → reload (the release did not arrive)', () => {
    const s2 = { ...s1, hosts: [...s1.hosts, { ...hostFor(9), ipv4: '10.1.0.60' }] };
    const leases = [{ expires: 0, mac: '02:00:00:00:00:77', ip: '10.1.0.60', hostname: 'x', clientId: '*' }];
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2, ctx), leases).kind, 'reload');
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2, ctx), []).kind, 'add');
  });
  it('same MAC, new address or name → reload', () => {
    const s2 = { ...s1, hosts: [{ ...s1.hosts[0]!, ipv4: '10.1.0.50' }, s1.hosts[1]!] };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2, ctx)).kind, 'reload');
    const s3 = { ...s1, hosts: [{ ...s1.hosts[0]!, hostname: 'renamed' }, s1.hosts[1]!] };
    assert.equal(planDnsmasq(loaded(s1), s3, render(s3, ctx)).kind, 'reload');
  });
  it('network change → restart', () => {
    const s2 = { ...s1, network: { ...s1.network, domain: 'other.internal' } };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2, ctx)).kind, 'restart');
  });
  it('metadata/password only → none for dnsmasq', () => {
    const s2 = { ...s1, passwords: {} };
    assert.equal(planDnsmasq(loaded(s1), s2, render(s2, ctx)).kind, 'none');
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
