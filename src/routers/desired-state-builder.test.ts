import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDesiredState, publicSpecOf } from './desired-state-builder.js';
import { groupPublicNics } from './public-nics.js';
import type { RouterPublicIp } from './public-nics.js';
import type { BuildInput } from './desired-state-builder.js';
import { validateDesiredState } from '../agent/validate-desired-state.js';

const base = (): BuildInput => ({
  generation: 4,
  router: { name: 'r-1-VM', guestIp: '10.1.1.1', role: 'standalone', publicIp: '192.0.2.10' },
  network: {
    cidr: '10.1.1.0/24',
    gateway: '10.1.1.1',
    networkDomain: 'cs2cloud.internal',
    dns1: null,
    dns2: null,
    ipv6Cidr: null,
    type: 'Isolated',
  },
  zone: { name: 'zone1', dns1: '8.8.8.8', dns2: '' },
  useExternalDns: false,
  leaseSeconds: 0,
  vms: [
    {
      uuid: 'u-2',
      instanceName: 'i-2-2-VM',
      hostname: 'vm2',
      userData: null,
      publicKeys: null,
      password: 'pw2',
      serviceOfferingName: 'Small',
      nics: [
        { mac: '02:00:00:00:00:02', ipv4: '10.1.1.20', ipv6: null, isDefault: true },
        { mac: '02:00:00:00:00:03', ipv4: '10.1.1.21', ipv6: null, isDefault: false },
      ],
    },
    {
      uuid: 'u-1',
      instanceName: 'i-2-1-VM',
      hostname: 'VM1',
      userData: 'aGVsbG8=',
      publicKeys: 'ssh-ed25519 AAA',
      password: null,
      serviceOfferingName: 'Small',
      nics: [{ mac: '02:00:00:00:00:01', ipv4: '10.1.1.10', ipv6: null, isDefault: true }],
    },
  ],
});

test('builds a document the agent accepts, ordered by address', () => {
  const s = buildDesiredState(base());
  const v = validateDesiredState(JSON.parse(JSON.stringify(s)));
  assert.ok(v.ok, JSON.stringify(v));
  assert.deepEqual(v.quarantined, [], 'nothing set aside');
  assert.equal(s.generation, 4);
  assert.deepEqual(
    s.hosts.map((h) => [h.ipv4, h.hostname, h.defaultNic]),
    [
      ['10.1.1.10', 'vm1', true],
      ['10.1.1.20', 'vm2', true],
      ['10.1.1.21', 'vm2-000003', false],
    ],
  );
  assert.equal(s.network.domain, 'cs2cloud.internal');
  assert.deepEqual(s.network.dnsServers, ['8.8.8.8']);
  assert.equal(s.network.leaseTime, 'infinite');
});

test('metadata carries the CloudStack keys; user data as stored; passwords on the default NIC only', () => {
  const s = buildDesiredState(base());
  const m = s.metadata['10.1.1.10']!;
  assert.equal(m.userData, 'aGVsbG8=');
  assert.equal(m.metaData['local-ipv4'], '10.1.1.10');
  assert.equal(m.metaData['instance-id'], 'u-1');
  assert.equal(m.metaData['vm-id'], 'u-1');
  assert.equal(m.metaData['availability-zone'], 'zone1');
  assert.equal(m.metaData['public-ipv4'], '192.0.2.10');
  assert.equal(m.metaData['public-keys'], 'ssh-ed25519 AAA');
  assert.equal(s.metadata['10.1.1.21']!.metaData['local-ipv4'], '10.1.1.21');
  assert.deepEqual(s.passwords, { '10.1.1.20': 'pw2' });
  // cloud-identifier: CloudStack-{<cloud.identifier>}, served only when the installation has one.
  assert.equal(m.metaData['cloud-identifier'], undefined);
  const withId = buildDesiredState({ ...base(), cloudIdentifier: '2b4e6c1a-0000-4000-8000-000000000001' });
  assert.equal(
    withId.metadata['10.1.1.10']!.metaData['cloud-identifier'],
    'CloudStack-{2b4e6c1a-0000-4000-8000-000000000001}',
  );
});

test('network DNS overrides the zone; empty domain becomes cloudnine.internal; external DNS flag passes through', () => {
  const i = base();
  i.network.dns1 = '1.1.1.1';
  i.network.networkDomain = null;
  i.useExternalDns = true;
  i.leaseSeconds = 60;
  const s = buildDesiredState(i);
  assert.deepEqual(s.network.dnsServers, ['1.1.1.1']);
  assert.equal(s.network.domain, 'cloudnine.internal');
  assert.equal(s.network.useExternalDns, true);
  assert.equal(s.network.leaseTime, 120);
});

test('redundant members: own guest address, gateway is the VIP, backup has lower priority', () => {
  const i = base();
  i.router = {
    name: 'r-3-VM',
    guestIp: '10.1.1.3',
    role: 'backup',
    publicIp: null,
    redundant: { virtualRouterId: 7, authPass: 'abcdefgh', vrrpIntervalSeconds: 1 },
  };
  const s = buildDesiredState(i);
  assert.equal(s.router.redundant?.priority, 99);
  assert.equal(s.network.gateway, '10.1.1.1');
  assert.ok(validateDesiredState(JSON.parse(JSON.stringify(s))).ok);
});

test('the same rows in another order give the same document', () => {
  const a = buildDesiredState(base());
  const i = base();
  i.vms.reverse();
  assert.deepEqual(buildDesiredState(i), a);
});

const tiers = [
  { networkId: 7, cidr: '10.9.2.0/24', gateway: '10.9.2.1' },
  { networkId: 5, cidr: '10.9.10.0/24', gateway: '10.9.10.1' },
  { networkId: 3, cidr: '10.9.1.0/24', gateway: '10.9.1.1' },
];

test('a VPC tier router: the transit, whether it is the edge, and its peers by CIDR', () => {
  const edge = buildDesiredState({
    ...base(),
    vpc: { cidr: '10.9.0.0/16', networkId: 3, edgeNetworkId: 3, tiers },
  });
  assert.deepEqual(edge.vpc, {
    cidr: '10.9.0.0/16',
    transitInterface: 'vpc0',
    edge: true,
    edgeGateway: null,
    peers: [
      { cidr: '10.9.2.0/24', gateway: '10.9.2.1' },
      { cidr: '10.9.10.0/24', gateway: '10.9.10.1' },
    ],
  });
  const tier = buildDesiredState({
    ...base(),
    vpc: { cidr: '10.9.0.0/16', networkId: 5, edgeNetworkId: 3, tiers: [...tiers].reverse() },
  });
  assert.equal(tier.vpc?.edge, false);
  assert.equal(tier.vpc?.edgeGateway, '10.9.1.1', "the edge tier's gateway is the default route");
  assert.deepEqual(
    tier.vpc?.peers.map((p) => p.cidr),
    ['10.9.1.0/24', '10.9.2.0/24'],
    'numeric order, not text order, and never itself',
  );
  assert.equal(buildDesiredState(base()).vpc, undefined, 'an isolated network has no VPC section');
});

test('a VPC tier alone in its VPC, or without an edge, is its own edge', () => {
  const alone = buildDesiredState({
    ...base(),
    vpc: { cidr: '10.9.0.0/16', networkId: 3, edgeNetworkId: 3, tiers: [tiers[2]!] },
  });
  assert.deepEqual([alone.vpc?.edge, alone.vpc?.edgeGateway, alone.vpc?.peers], [true, null, []]);
  const none = buildDesiredState({
    ...base(),
    vpc: { cidr: '10.9.0.0/16', networkId: 5, edgeNetworkId: null, tiers },
  });
  assert.deepEqual([none.vpc?.edge, none.vpc?.edgeGateway], [true, null]);
});

const pub = (address: string, o: Partial<Omit<RouterPublicIp, 'address'>> = {}): RouterPublicIp => ({
  id: 1,
  uuid: null,
  address,
  sourceNat: false,
  staticNatGuestIp: null,
  staticNatVmId: null,
  vlan: '10',
  gateway: '192.0.2.1',
  prefix: 24,
  ...o,
});

test('public section: a NIC per VLAN, the source NAT VLAN is eth2, the others in VLAN order', () => {
  const ips = [
    pub('198.51.100.9', { vlan: '30', gateway: '198.51.100.1', staticNatGuestIp: '10.1.1.20' }),
    pub('192.0.2.77', { staticNatGuestIp: '10.1.1.21' }),
    pub('203.0.113.5', { vlan: 'untagged', gateway: '203.0.113.1', prefix: 25 }),
    pub('192.0.2.50', { sourceNat: true }),
    pub('198.51.100.20', { vlan: '30', gateway: '198.51.100.1' }),
  ];
  const spec = publicSpecOf(ips, false)!;
  assert.deepEqual(spec.nics, [
    {
      interface: 'eth2',
      vlan: '10',
      gateway: '192.0.2.1',
      prefix: 24,
      addresses: ['192.0.2.50', '192.0.2.77'],
    },
    { interface: 'eth3', vlan: 'untagged', gateway: '203.0.113.1', prefix: 25, addresses: ['203.0.113.5'] },
    {
      interface: 'eth4',
      vlan: '30',
      gateway: '198.51.100.1',
      prefix: 24,
      addresses: ['198.51.100.9', '198.51.100.20'],
    },
  ]);
  assert.equal(spec.sourceNatIp, '192.0.2.50');
  assert.deepEqual(spec.staticNats, [
    { publicIp: '192.0.2.77', guestIp: '10.1.1.21' },
    { publicIp: '198.51.100.9', guestIp: '10.1.1.20' },
  ]);
  assert.equal(spec.egressDefaultAllow, false);
  // The same IPs in any order: the same section (its hash must not depend on query order).
  assert.deepEqual(publicSpecOf([...ips].reverse(), false), spec);
  const i = base();
  i.public = spec;
  const s = buildDesiredState(i);
  assert.deepEqual(s.public, spec);
  assert.ok(validateDesiredState(JSON.parse(JSON.stringify(s))).ok);
  // The VM's metadata keeps the router's public IP (its static NAT, when it has one).
  assert.equal(s.metadata['10.1.1.20']?.metaData['public-ipv4'], '192.0.2.10');
});

test('public section: none without public IPs; without source NAT the VLANs go in order', () => {
  assert.equal(publicSpecOf([], true), undefined);
  assert.equal(buildDesiredState(base()).public, undefined);
  const spec = publicSpecOf([pub('192.0.2.9', { vlan: '20' }), pub('192.0.2.8', { vlan: '5' })], true)!;
  assert.deepEqual(
    spec.nics.map((n) => [n.interface, n.vlan, n.addresses.join()]),
    [
      ['eth2', '5', '192.0.2.8'],
      ['eth3', '20', '192.0.2.9'],
    ],
  );
  assert.equal(spec.sourceNatIp, null);
  assert.equal(spec.egressDefaultAllow, true);
});

test('groupPublicNics names the same interfaces the builder does', () => {
  const ips = [pub('192.0.2.9', { vlan: '20' }), pub('192.0.2.8', { vlan: '5', sourceNat: true })];
  assert.deepEqual(
    groupPublicNics(ips).map((g) => [g.interface, g.vlan]),
    publicSpecOf(ips, true)!.nics.map((n) => [n.interface, n.vlan]),
  );
  assert.deepEqual(
    groupPublicNics(ips).map((g) => g.interface),
    ['eth2', 'eth3'],
  );
});

test('an internal LB appliance: its address, its tier, its LB rules; no hosts, metadata, DNS or firewall', () => {
  const lb = {
    kind: 'loadBalancer' as const,
    id: 'lb-1',
    publicIp: '10.1.1.50',
    publicPort: 80,
    privatePort: 8080,
    algorithm: 'roundrobin' as const,
    members: [{ vmId: 'u-1', guestIp: '10.1.1.10' }],
    sourceCidrs: ['0.0.0.0/0'],
  };
  const s = buildDesiredState({
    ...base(),
    appliance: 'internalLb',
    router: { name: 'b-7-VM', guestIp: '10.1.1.50', role: 'internallb', publicIp: null },
    rules: [lb],
  });
  assert.deepEqual(s, {
    generation: 4,
    router: { name: 'b-7-VM', guestIp: '10.1.1.50', appliance: 'internalLb' },
    network: {
      cidr: '10.1.1.0/24',
      gateway: '10.1.1.1',
      domain: 'cs2cloud.internal',
      dnsServers: [],
      useExternalDns: false,
    },
    hosts: [],
    metadata: {},
    passwords: {},
    firewall: { enabled: false },
    rules: [lb],
  });
  assert.equal(validateDesiredState(s).ok, true, JSON.stringify(validateDesiredState(s)));
});
