/**
 * `stacknet host-agent` on three hosts emulated as namespaces (host-lab.ts): light VMs on hosts A and B in one
 * guest network, its router (the real router agent, reached through host C's relay) on host C. Over VXLAN: each
 * VM leases exactly its address; a VM spoofing another address is dropped on its host; an agent killed and
 * restarted leaves its VMs' namespaces and DHCP clients alone and heals a deleted FDB entry, a deleted bridge
 * heals under a running agent; a network that cannot be made is quarantined. The router's public NIC (eth2)
 * on host C's public label: the router agent comes up with it, and a VM on A reaches an outside namespace on the
 * public underlay as the router's source-NAT address, again after C's public bridge is deleted (healed). Over
 * VLAN, on 802.1Q sub-interfaces where the kernel has them, else (this CI's kernel) on the agent's eBPF tagger
 * (src/hostagent/vlan-tagger.ts), the test saying which: the same across hosts on VLAN 300, its frames tagged 300
 * on the underlay (tcpdump) and never untagged, the router's public NIC on tagged public VLAN 50 (source NAT to an
 * outside namespace on that VLAN, tagged 50 on the public underlay), VLAN 301 holding the same subnet kept apart,
 * a deleted tagger filter healed, VLAN 301 removed from one host. `host-agent cleanup` leaves nothing (no veth,
 * tc filter or clsact of the tagger either).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { getStatus, pushFull } from '../../src/agent/control-client.js';
import type { DesiredState } from '../../src/agent/desired-state.js';
import type { HostNetworkSpec, HostRouterSpec, HostVmSpec } from '../../src/hosts/protocol.js';
import { guestBridgeName, publicBridgeName, vmPortName } from '../../src/hosts/protocol.js';
import {
  chainCounters,
  deleteLink,
  eventually,
  exec,
  execIn,
  leaseHistory,
  listLinks,
  listNamespaces,
  pidAlive,
  readLease,
  run,
  tcpGreeterArgv,
  tcpProbe,
} from '../../src/netns/index.js';
import { portInPlace, portRemoveText, portRuleText, portState } from '../../src/drivers/netns-ports.js';
import { kernelHas8021q, TAGGER_PREF_BASE } from '../../src/hostagent/vlan-tagger.js';
import { HostLab, PUBLIC_LABEL, type LabHost } from './host-lab.js';

const lab = new HostLab();
let A: LabHost, B: LabHost, C: LabHost;
/** The outside world on the public underlay: holds the public gateway, serves TCP 8080 saying who called. */
let outside = '';
const PUBLIC = { vlan: 'untagged', gateway: '198.51.100.1', prefix: 24, snat: '198.51.100.10' };
/** A tagged public VLAN (the VLAN test's router), its gateway on an outside namespace of its own (`lab.outsideTagged`). */
const TAGGED = { vlan: '50', gateway: '203.0.113.1', prefix: 24, snat: '203.0.113.10' };
type PublicVlan = typeof PUBLIC;

before(async () => {
  await lab.setup();
  A = await lab.host('A', 1);
  B = await lab.host('B', 2);
  C = await lab.host('C', 3);
  outside = await lab.outside(`${PUBLIC.gateway}/${PUBLIC.prefix}`);
  lab.net.spawnIn(outside, tcpGreeterArgv(8080, 'out'));
});

after(async () => {
  if (process.env.HOSTLAB_LOG) writeFileSync(process.env.HOSTLAB_LOG, agentLogs());
  await lab.cleanup();
});

/** The agents' output so far (for failure messages). */
function agentLogs(): string {
  return [A, B, C].map((h) => `--- agent ${h.name}\n${h.agent?.output().slice(-4000) ?? ''}`).join('\n');
}

const CIDR = '10.70.0';
const vni = 5000 + Math.floor(Math.random() * 1000);

function network(id: number, isolation: 'VLAN' | 'VXLAN', vnet: number, self: LabHost): HostNetworkSpec {
  return {
    id,
    isolation,
    vnet,
    trafficLabel: 'eth1',
    bridge: guestBridgeName(isolation, vnet),
    peers: isolation === 'VXLAN' ? [A, B, C].filter((h) => h !== self).map((h) => h.address) : [],
    mtu: isolation === 'VXLAN' ? 1450 : 1500,
  };
}

function mac(n: number): string {
  return `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
}

function vm(id: number, nicId: number, networkId: number): HostVmSpec {
  return {
    id,
    uuid: `00000000-0000-4000-8000-${String(id).padStart(12, '0')}`,
    instanceName: `i-2-${id}-VM`,
    hostname: `vm${id}`,
    state: 'Running',
    backend: 'netns',
    cpus: 1,
    memoryMiB: 64,
    template: { id: 1, name: 'light', url: 'file:///dev/null', format: 'kernel-initrd', checksum: null },
    nics: [
      {
        id: nicId,
        mac: mac(id),
        ipv4s: [`${CIDR}.${id}`],
        ipv6: null,
        networkId,
        deviceId: 0,
        isDefault: true,
      },
    ],
  };
}

/** `pub`: its eth2 on that public VLAN of the hosts' public label. */
function router(id: number, networkId: number, pub?: PublicVlan): HostRouterSpec {
  return {
    ...(pub
      ? { publicNics: [{ interface: 'eth2', vlan: pub.vlan, gateway: pub.gateway, prefix: pub.prefix }] }
      : {}),
    id,
    name: `r-${id}-VM`,
    networkId,
    guestIp: `${CIDR}.1`,
    guestMac: mac(200 + id),
    controlIp: `169.254.0.${10 + id}`,
    controlPort: 3922,
    secret: randomBytes(16).toString('hex'),
    redundant: false,
    vpcId: null,
  };
}

/** The router's DesiredState: the network's VMs as its DHCP hosts. */
function routerState(r: HostRouterSpec, generation: number, vms: HostVmSpec[]): DesiredState {
  return {
    generation,
    router: { name: r.name, guestIp: r.guestIp },
    network: {
      cidr: `${CIDR}.0/24`,
      gateway: `${CIDR}.1`,
      domain: 'hosts.internal',
      dnsServers: ['192.0.2.53'],
      useExternalDns: false,
      leaseTime: 3600,
    },
    hosts: vms.map((v) => ({
      mac: v.nics[0]!.mac,
      ipv4: v.nics[0]!.ipv4s[0]!,
      hostname: v.hostname,
      defaultNic: true,
      vmId: v.uuid,
    })),
    metadata: {},
    passwords: {},
    firewall: { enabled: true },
    ...(r.publicNics
      ? {
          public: {
            nics: r.publicNics.map((n) => ({ ...n, addresses: [snatOf(n.vlan)] })),
            sourceNatIp: snatOf(r.publicNics[0]!.vlan),
            staticNats: [],
            egressDefaultAllow: true,
          },
        }
      : {}),
  };
}

const snatOf = (vlan: string) => (vlan === PUBLIC.vlan ? PUBLIC : TAGGED).snat;

/** What the outside server of `pub` says a VM's connection came from ('' when it did not get through). */
async function seenOutside(from: string, pub: PublicVlan = PUBLIC): Promise<string> {
  return (await tcpProbe(from, pub.gateway, 8080)).reply;
}

const vmNs = (h: LabHost, v: HostVmSpec) => `${h.prefix}${v.instanceName}`;

async function leased(h: LabHost, v: HostVmSpec): Promise<void> {
  await eventually(
    async () => {
      const l = await readLease(vmNs(h, v), 'eth0');
      assert.equal(
        l?.ip,
        v.nics[0]!.ipv4s[0],
        `lease of ${v.instanceName} on ${h.name}: ${JSON.stringify(l)}`,
      );
    },
    { timeoutMs: 20_000, what: `${v.instanceName} leases its address` },
  );
}

async function pings(from: string, to: string, source?: string): Promise<boolean> {
  const r = await execIn(from, ['ping', '-c', '1', '-W', '1', ...(source ? ['-I', source] : []), to]);
  return r.code === 0;
}

/** Brings up the network's router on C and pushes its DHCP hosts through C's relay. */
async function routerUp(r: HostRouterSpec, vms: HostVmSpec[], generation: number): Promise<void> {
  await eventually(
    async () => {
      const s = lab.status(C);
      assert.ok(
        s?.routers.some((x) => x.name === r.name && x.running),
        `${JSON.stringify(s)}\n${agentLogs()}`,
      );
    },
    // A router agent is a node process: on a machine loaded ×9 (measured here) it takes 10-15 s to answer.
    { timeoutMs: 60_000, what: `router ${r.name} running on host C` },
  );
  const res = await pushFull(
    `http://${C.mgmt}/v1/routers/${r.name}`,
    r.secret,
    routerState(r, generation, vms),
  );
  assert.ok(res.ok, JSON.stringify(res));
}

test('VXLAN: VMs on A and B lease from the router on C; spoofing dropped; restart and drift; quarantine', async () => {
  const r1 = router(1, 1, PUBLIC);
  const vmA = vm(11, 101, 1);
  const vmB = vm(12, 102, 1);
  lab.setDesired(A, { networks: [network(1, 'VXLAN', vni, A)], routers: [], vms: [vmA] });
  lab.setDesired(B, { networks: [network(1, 'VXLAN', vni, B)], routers: [], vms: [vmB] });
  lab.setDesired(C, { networks: [network(1, 'VXLAN', vni, C)], routers: [r1], vms: [] });
  for (const h of [A, B, C]) lab.startAgent(h);

  await routerUp(r1, [vmA, vmB], 1);
  await leased(A, vmA);
  await leased(B, vmB);
  assert.ok(await pings(vmNs(A, vmA), `${CIDR}.12`), 'A reaches B across hosts over VXLAN');

  // The router's public NIC: eth2 on C's public bridge over its public label, the agent in force with it (no
  // PublicInterfaceMissing), and a VM on A reaches the outside as the source-NAT address.
  const rs = await getStatus(`http://${C.mgmt}/v1/routers/${r1.name}`, r1.secret, { leases: false });
  assert.equal(rs.generation, 1, JSON.stringify(rs));
  assert.ok(!rs.conditions.some((c) => c.type === 'Degraded' && c.status), JSON.stringify(rs.conditions));
  assert.equal(
    (await exec(['ip', '-n', C.ns, '-o', 'link', 'show', 'master', publicBridgeName('untagged')])).stdout
      .match(/^\d+: ([^:@]+)/gm)
      ?.map((l) => l.replace(/^\d+: /, ''))
      .sort()
      .join(' '),
    `hp1e2 ${PUBLIC_LABEL}`,
    'the public bridge holds the label and the router port',
  );
  assert.equal(
    await seenOutside(vmNs(A, vmA)),
    `out ${PUBLIC.snat}`,
    'the outside sees the source-NAT address',
  );
  for (const h of [A, B, C]) assert.equal(lab.registrations.get(`host-${h.name}`), 1);
  await eventually(
    async () => {
      const s = lab.status(A);
      assert.deepEqual(s?.vms, [{ instanceName: vmA.instanceName, state: 'Running' }]);
      assert.deepEqual(s?.errors, []);
      assert.ok(s?.appliedGeneration !== null);
    },
    { what: 'host A reports its VM running' },
  );

  // The relay is closed to anyone without the host's or the router's secret.
  const denied = await fetch(`http://${C.mgmt}/v1/routers/${r1.name}/v1/status`, {
    headers: { authorization: 'Bearer wrong' },
  });
  assert.equal(denied.status, 401);
  const hostSecret = lab.registered(C)!.secret;
  const viaHost = await fetch(`http://${C.mgmt}/v1/routers/${r1.name}/v1/status?leases=0`, {
    headers: { 'x-host-authorization': `Bearer ${hostSecret}`, authorization: `Bearer ${r1.secret}` },
  });
  assert.equal(viaHost.status, 200, 'relayed with the host secret');
  const st = await fetch(`http://${C.mgmt}/v1/status`, {
    headers: { authorization: `Bearer ${hostSecret}` },
  });
  assert.equal(st.status, 200);
  const con = await fetch(`http://${A.mgmt}/v1/vms/${vmA.instanceName}/console`, {
    headers: { authorization: `Bearer ${lab.registered(A)!.secret}` },
  });
  assert.match(await con.text(), new RegExp(`ip=${CIDR}.11`));

  // A VM sending from an address that is not its own is dropped on its host, and counted: its port's MAC and
  // addresses are elements of the guard chain's sets, as the netns driver has them (drivers/netns-ports.ts).
  const portA = vmPortName(vmA.nics[0]!.id);
  const portsOfA = async () =>
    (await exec(['ip', 'netns', 'exec', A.ns, 'nft', 'list', 'table', 'bridge', 'stacknet'])).stdout;
  assert.ok(portInPlace(await portsOfA(), vmA.nics[0]!, portA), await portsOfA());
  const before = (await chainCounters(A.ns, 'stacknet', 'guard')).get('source ip') ?? 0;
  await run(['ip', '-n', vmNs(A, vmA), 'addr', 'add', `${CIDR}.99/32`, 'dev', 'eth0']);
  assert.equal(await pings(vmNs(A, vmA), `${CIDR}.12`, `${CIDR}.99`), false, 'spoofed ping answered');
  const dropped = (await chainCounters(A.ns, 'stacknet', 'guard')).get('source ip') ?? 0;
  assert.ok(dropped > before, `source ip drops ${before} -> ${dropped}`);
  await run(['ip', '-n', vmNs(A, vmA), 'addr', 'del', `${CIDR}.99/32`, 'dev', 'eth0']);

  // Agent A killed; meanwhile its FDB entry towards C is lost. Restarted: the VM untouched, the entry back.
  const udhcpcPid = Number(readFileSync(lab.dataFile(A, 'vms', vmA.instanceName, 'udhcpc.pid'), 'utf8'));
  const history = await leaseHistory(vmNs(A, vmA), 'eth0');
  A.agent!.child.kill('SIGKILL');
  await A.agent!.exited;
  // Meanwhile its port is as an older agent left it, a chain of its own: the restarted agent moves it to the sets.
  await run(['ip', 'netns', 'exec', A.ns, 'nft', '-f', '-'], {
    input: portRemoveText(await portsOfA(), portA) + portRuleText(vmA.nics[0]!, portA),
  });
  assert.equal(portState(await portsOfA(), portA).target, `p_${portA}`);
  await run([
    'ip',
    'netns',
    'exec',
    A.ns,
    'bridge',
    'fdb',
    'del',
    '00:00:00:00:00:00',
    'dev',
    `vx${vni}`,
    'dst',
    C.address,
  ]);
  lab.startAgent(A);
  const fdb = () =>
    exec(['ip', 'netns', 'exec', A.ns, 'bridge', 'fdb', 'show', 'dev', `vx${vni}`]).then((x) => x.stdout);
  await eventually(
    async () => assert.match(await fdb(), new RegExp(`dst ${C.address.replace(/\./g, '\\.')} `)),
    {
      timeoutMs: 15_000,
      what: 'restarted agent A heals the FDB entry to C',
    },
  );
  assert.ok(await pidAlive(udhcpcPid), 'the VM DHCP client survives the agent restart');
  assert.equal(
    Number(readFileSync(lab.dataFile(A, 'vms', vmA.instanceName, 'udhcpc.pid'), 'utf8')),
    udhcpcPid,
  );
  assert.deepEqual(await leaseHistory(vmNs(A, vmA), 'eth0'), history, 'no new lease after the restart');
  await eventually(async () => assert.ok(portInPlace(await portsOfA(), vmA.nics[0]!, portA)), {
    timeoutMs: 15_000,
    what: "restarted agent A replaces the older agent's chain of the VM's port by the sets",
  });
  assert.doesNotMatch(await portsOfA(), new RegExp(`chain p_${portA} `));
  assert.equal(lab.registrations.get('host-A'), 1, 'a restarted agent does not register again');

  // Host C's public bridge deleted under its running agent: made again, the label and router port back on it.
  await run(['ip', '-n', C.ns, 'link', 'del', publicBridgeName('untagged')]);
  await eventually(async () => assert.equal(await seenOutside(vmNs(A, vmA)), `out ${PUBLIC.snat}`), {
    timeoutMs: 15_000,
    what: 'C heals its public bridge and the VM on A gets out again',
  });

  // Host B's bridge deleted under its running agent: made again, its ports back on it.
  await run(['ip', '-n', B.ns, 'link', 'del', guestBridgeName('VXLAN', vni)]);
  await eventually(async () => assert.ok(await pings(vmNs(A, vmA), `${CIDR}.12`)), {
    timeoutMs: 15_000,
    what: 'B heals its bridge and A reaches B again',
  });

  // A network that cannot be made (no such traffic label) is quarantined; the rest of host A stays converged.
  lab.setDesired(A, {
    networks: [network(1, 'VXLAN', vni, A), { ...network(2, 'VXLAN', vni + 1, A), trafficLabel: 'nosuch0' }],
    routers: [],
    vms: [vmA],
  });
  await eventually(
    async () => {
      const s = lab.status(A);
      assert.ok(
        s?.errors.some((e) => e.what.startsWith('network 2 ')),
        JSON.stringify(s?.errors),
      );
      assert.equal(s?.vms[0]?.state, 'Running');
    },
    { timeoutMs: 15_000, what: 'network 2 quarantined on A' },
  );
  assert.ok(await pings(vmNs(A, vmA), `${CIDR}.12`));
});

/** Host h's filters on a label's ingress (default its guest label), as `tc` prints them ('' when none). */
const labelFilters = async (h: LabHost, label = 'eth1') =>
  (await run(['tc', '-n', h.ns, 'filter', 'show', 'dev', label, 'ingress'])).stdout;
const labelQdiscs = async (h: LabHost, label = 'eth1') =>
  (await run(['tc', '-n', h.ns, 'qdisc', 'show', 'dev', label])).stdout;

test('VLAN: the same over VLAN 300, tagged on the underlay; public VLAN 50; VLAN 301 apart; the VXLAN network, its VMs and router removed', async (t) => {
  // 802.1Q sub-interfaces where the kernel has them, else the agent's eBPF tagger (vlan-tagger.ts).
  const dot1q = await kernelHas8021q();
  t.diagnostic(
    dot1q ? 'VLAN devices: 802.1Q sub-interfaces' : 'VLAN devices: the eBPF tagger (no 802.1Q here)',
  );
  // Its public NIC on the tagged public VLAN 50: the outside there reached as its source-NAT address.
  const r3 = router(3, 3, TAGGED);
  lab.net.spawnIn(
    await lab.outsideTagged(`${TAGGED.gateway}/${TAGGED.prefix}`, TAGGED.vlan),
    tcpGreeterArgv(8080, 'out'),
  );
  const vmA = vm(21, 121, 3);
  const vmB = vm(22, 122, 3);
  // Network 4, VLAN 301, on A and B: the same subnet as VLAN 300's, no router (the probes below hold addresses).
  lab.setDesired(A, {
    networks: [network(3, 'VLAN', 300, A), network(4, 'VLAN', 301, A)],
    routers: [],
    vms: [vmA],
  });
  lab.setDesired(B, {
    networks: [network(3, 'VLAN', 300, B), network(4, 'VLAN', 301, B)],
    routers: [],
    vms: [vmB],
  });
  lab.setDesired(C, { networks: [network(3, 'VLAN', 300, C)], routers: [r3], vms: [] });
  await routerUp(r3, [vmA, vmB], 1);
  await leased(A, vmA);
  await leased(B, vmB);
  for (const h of [A, B, C])
    assert.equal(
      (await exec(['ip', '-n', h.ns, '-d', '-o', 'link', 'show', 'eth1.300'])).stdout.match(
        / (vlan|veth) /,
      )?.[1],
      dot1q ? 'vlan' : 'veth',
      `host ${h.name}: eth1.300`,
    );

  // On the underlay, the guests' frames are 802.1Q-tagged with VLAN 300, and none goes untagged. The filter
  // takes both: an untagged one (plain `icmp`: a tag the kernel keeps beside the frame is not seen by it) and a
  // tagged one whose tag is in the frame (`vlan and icmp`).
  const guestIcmp = `(icmp and net ${CIDR}.0/24) or (vlan and icmp and net ${CIDR}.0/24)`;
  // Two pings: the first one's request and reply are surely captured by the time the second is answered.
  const frames = await lab.tcpdump(guestIcmp, async () => {
    for (let i = 0; i < 2; i++)
      assert.ok(await pings(vmNs(A, vmA), `${CIDR}.22`), `A reaches B over VLAN 300\n${agentLogs()}`);
  });
  assert.ok(frames.filter((l) => /ICMP echo (request|reply)/.test(l)).length >= 2, frames.join('\n'));
  for (const l of frames) assert.match(l, /ethertype 802\.1Q \(0x8100\).* vlan 300, p 0, ethertype IPv4/, l);

  // The router's eth2 on C's brpub50, over pub0.50: the VM on A gets out as the source-NAT address, and on the
  // public underlay its connection is tagged VLAN 50, never untagged.
  const outsideNet = `host ${TAGGED.gateway} and tcp port 8080`;
  const publicFrames = await lab.tcpdump(
    `(${outsideNet}) or (vlan and ${outsideNet})`,
    () =>
      eventually(async () => assert.equal(await seenOutside(vmNs(A, vmA), TAGGED), `out ${TAGGED.snat}`), {
        timeoutMs: 15_000,
        what: `the VM on A reaches the outside on public VLAN ${TAGGED.vlan}\n${agentLogs()}`,
      }),
    lab.publicBridge,
  );
  assert.ok(
    publicFrames.some((l) => new RegExp(`${TAGGED.snat}\\.\\d+ > ${TAGGED.gateway}\\.8080`).test(l)),
    publicFrames.join('\n'),
  );
  for (const l of publicFrames)
    assert.match(
      l,
      new RegExp(`ethertype 802\\.1Q \\(0x8100\\).* vlan ${TAGGED.vlan}, p 0, ethertype IPv4`),
      l,
    );

  // VLAN 301 holds the same subnet, even B's VM's address: a probe there on A reaches the one on B (tagged 301),
  // and nothing of VLAN 300 (the router on C, the VM on A), and VLAN 300's VM still reaches its own .22.
  // Their outer ends are deleted at the end, even on a failure (else host A's bridge port outlives its bridge).
  const probes: { outer: string; h: LabHost }[] = [];
  const probe = async (h: LabHost, n: number) => {
    const ns = await lab.net.namespace(`p${h.name}${n}`);
    const v = await lab.net.veth({
      ns,
      bridge: guestBridgeName('VLAN', 301),
      outerNs: h.ns,
      addresses: [`${CIDR}.${n}/24`],
    });
    probes.push({ outer: v.outerName, h });
    return { ns, outer: v.outerName, h };
  };
  try {
    await eventually(async () => assert.ok((await listLinks(A.ns)).includes(guestBridgeName('VLAN', 301))), {
      what: 'VLAN 301 bridges',
    });
    await eventually(async () => assert.ok((await listLinks(B.ns)).includes(guestBridgeName('VLAN', 301))), {
      what: 'VLAN 301 bridges',
    });
    const pA = await probe(A, 31);
    const pB = await probe(B, 22);
    const macOf = async (ns: string) =>
      (await run(['ip', '-n', ns, '-j', 'link', 'show', 'eth0'])).stdout.match(
        /"address":"([0-9a-f:]+)"/,
      )![1];
    const neighbour = async (ns: string, ip: string) =>
      (await run(['ip', '-n', ns, 'neigh', 'show', ip])).stdout.match(/lladdr ([0-9a-f:]+)/)?.[1];
    const t301 = await lab.tcpdump(guestIcmp, async () => {
      await eventually(async () => assert.ok(await pings(pA.ns, `${CIDR}.22`)), {
        what: 'VLAN 301 across hosts',
      });
      assert.ok(await pings(pA.ns, `${CIDR}.22`));
    });
    assert.ok(t301.length >= 2 && t301.every((l) => / vlan 301, /.test(l)), t301.join('\n'));
    assert.equal(await neighbour(pA.ns, `${CIDR}.22`), await macOf(pB.ns), 'VLAN 301 .22 is the probe on B');
    assert.ok(await pings(vmNs(A, vmA), `${CIDR}.22`));
    assert.equal(await neighbour(vmNs(A, vmA), `${CIDR}.22`), mac(22), 'VLAN 300 .22 is the VM on B');
    assert.equal(await pings(pA.ns, `${CIDR}.1`), false, 'VLAN 301 reaches the router on VLAN 300');
    assert.equal(await pings(pB.ns, `${CIDR}.21`), false, 'VLAN 301 reaches the VM on A on VLAN 300');
  } finally {
    for (const p of probes) await deleteLink(p.outer, { ns: p.h.ns });
  }

  if (!dot1q) {
    // A tagger filter deleted under B's running agent comes back, and so does the traffic.
    const pref = String(TAGGER_PREF_BASE + 300);
    await run(['tc', '-n', B.ns, 'filter', 'del', 'dev', 'eth1', 'ingress', 'pref', pref]);
    assert.doesNotMatch(await labelFilters(B), new RegExp(`pref ${pref} `));
    await eventually(
      async () => {
        assert.match(await labelFilters(B), new RegExp(`pref ${pref} .*vlan_untag`));
        assert.ok(await pings(vmNs(A, vmA), `${CIDR}.22`));
      },
      { timeoutMs: 15_000, what: "B's agent puts its VLAN 300 filter back" },
    );
  }

  // VLAN 301 removed from B: its device goes (and with the tagger its peer and its filter on eth1, whose qdisc
  // stays for VLAN 300's).
  lab.setDesired(B, { networks: [network(3, 'VLAN', 300, B)], routers: [], vms: [vmB] });
  await eventually(
    async () => {
      const l = await listLinks(B.ns);
      assert.ok(
        !l.includes('eth1.301') && !l.includes('eth1t301') && !l.includes(guestBridgeName('VLAN', 301)),
        l.join(' '),
      );
      assert.doesNotMatch(await labelFilters(B), new RegExp(`pref ${TAGGER_PREF_BASE + 301} `));
    },
    { timeoutMs: 15_000, what: 'VLAN 301 removed from B' },
  );
  if (!dot1q) {
    assert.match(await labelFilters(B), new RegExp(`pref ${TAGGER_PREF_BASE + 300} .*vlan_untag`));
    assert.match(await labelQdiscs(B), /qdisc clsact /);
  }
  assert.ok(await pings(vmNs(A, vmA), `${CIDR}.22`), 'VLAN 300 still up on B');

  await eventually(
    async () => {
      for (const h of [A, B, C]) {
        const names = (await listNamespaces()).filter((n) => n.startsWith(h.prefix));
        const stale = names.filter((n) => /i-2-1[12]-VM|r-1-VM/.test(n));
        assert.deepEqual(stale, [], `host ${h.name}`);
        assert.ok(!(await listLinks(h.ns)).includes(guestBridgeName('VXLAN', vni)), `host ${h.name}: bridge`);
        assert.ok(!(await listLinks(h.ns)).includes(`vx${vni}`), `host ${h.name}: vxlan device`);
        assert.ok(
          !(await listLinks(h.ns)).includes(publicBridgeName('untagged')),
          `host ${h.name}: public bridge`,
        );
        assert.ok(!(await listLinks(h.ns)).some((l) => /^hp1e\d+$/.test(l)), `host ${h.name}: public port`);
      }
    },
    { timeoutMs: 20_000, what: 'the VXLAN network removed from every host' },
  );
});

test('host-agent cleanup leaves nothing', async () => {
  for (const h of [A, B, C]) await h.agent?.stop(3000);
  for (const h of [A, B, C]) {
    await lab.cleanupAgent(h);
    assert.deepEqual(
      (await listNamespaces()).filter((n) => n.startsWith(h.prefix)),
      [],
      `host ${h.name}: namespaces left`,
    );
    assert.deepEqual(
      (await listLinks(h.ns)).sort(),
      ['eth1', 'lo', 'mgmt0', PUBLIC_LABEL],
      `host ${h.name}: links left`,
    );
    assert.doesNotMatch(
      (await exec(['ip', '-n', h.ns, '-o', 'link', 'show', PUBLIC_LABEL])).stdout,
      / master /,
      `host ${h.name}: the public label released`,
    );
    const nft = await exec(['ip', 'netns', 'exec', h.ns, 'nft', 'list', 'ruleset']);
    assert.doesNotMatch(nft.stdout, /stacknet/, `host ${h.name}: nftables left`);
    // VLAN 300 was still there: the tagger's filter gone with its veth, and the clsact qdisc it added.
    for (const label of ['eth1', PUBLIC_LABEL]) {
      assert.equal(await labelFilters(h, label), '', `host ${h.name}: filters left on ${label}`);
      assert.doesNotMatch(await labelQdiscs(h, label), /clsact/, `host ${h.name}: clsact left on ${label}`);
    }
  }
});
