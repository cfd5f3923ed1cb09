// Issue 13, the VPC transit at the agent level: two tier routers (real agents) joined by a transit bridge, each
// with `vpc0` on it as the netns driver plugs it (forwarding on, vpc0 on a bridge of its own). A guest of tier A
// reaches a TCP server in a guest of tier B and back, without NAT between tiers; the routes leave when a peer
// leaves the state; a missing vpc0 is retried until it appears.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  addAddress,
  addRoute,
  eventually,
  execIn,
  runIn,
  tcpGreeterArgv,
  tcpProbe,
} from '../../src/netns/index.js';
import type { AclRuleSpec, DesiredState, VpcSpec } from '../../src/agent/desired-state.js';
import { VrLab, type RouterUnderTest } from './vr-lab.js';

const MAC_A = '02:ab:09:01:00:0a';
const MAC_B = '02:ab:09:02:00:0a';
const VPC_CIDR = '10.97.0.0/16';
/**
 * Each tier lets the VPC in and out (the netfilter applier drops what no ACL item of a tier allows): this test is
 * about the routes; what a list lets through is the black-box test's (test/e2e/vpc-netns.test.ts).
 */
const withinVpc: AclRuleSpec[] = (['ingress', 'egress'] as const).map((traffic, i) => ({
  kind: 'acl',
  id: `acl-${traffic}`,
  number: i + 1,
  action: 'allow',
  traffic,
  protocol: 'all',
  cidrs: [VPC_CIDR],
}));

async function transitRoutes(r: RouterUnderTest): Promise<string[]> {
  // Only the agent's own routes (its protocol number), which `ip` then leaves out of each line.
  const out = await execIn(r.ns, ['ip', '-4', '-o', 'route', 'show', 'proto', '196']);
  return out.stdout
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter(Boolean)
    .sort();
}

describe('VPC tier routers on a transit', () => {
  const labA = new VrLab({ cidr: '10.97.1.0/24' });
  const labB = new VrLab({ cidr: '10.97.2.0/24' });
  let ra: RouterUnderTest;
  let rb: RouterUnderTest;
  let transit = '';
  const g = { a: '', b: '' };

  const vpc = (self: 'a' | 'b', peers: VpcSpec['peers']): VpcSpec => ({
    cidr: VPC_CIDR,
    transitInterface: 'vpc0',
    // Tier A is the edge (the lowest tier id in the builder); B routes outside through A's gateway.
    edge: self === 'a',
    edgeGateway: self === 'a' ? null : labA.ip(1),
    peers,
  });
  const peerA = { cidr: labA.cidr, gateway: labA.ip(1) };
  const peerB = { cidr: labB.cidr, gateway: labB.ip(1) };
  const stateA = (gen: number, peers = [peerB]): DesiredState =>
    labA.state(gen, [labA.host(10, MAC_A, 'ga')], { vpc: vpc('a', peers), rules: withinVpc });
  const stateB = (gen: number, peers = [peerA]): DesiredState =>
    labB.state(gen, [labB.host(10, MAC_B, 'gb')], { vpc: vpc('b', peers), rules: withinVpc });

  /** What the netns driver does for a tier router (drivers/netns-vpc.ts): vpc0 on the VPC bridge, forwarding. */
  async function plugTransit(r: RouterUnderTest): Promise<void> {
    await labA.net.veth({ ns: r.ns, ifname: 'vpc0', bridge: transit });
    await runIn(r.ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  }

  before(async () => {
    await labA.setup();
    await labB.setup();
    transit = await labA.net.bridge('vpc');
    ra = await labA.router('vra');
    rb = await labB.router('vrb');
    await plugTransit(ra);
    g.a = await labA.guest('ga', MAC_A);
    g.b = await labB.guest('gb', MAC_B);
    for (const [ns, lab] of [
      [g.a, labA],
      [g.b, labB],
    ] as const) {
      await addAddress(ns, 'eth0', `${lab.ip(10)}/24`);
      await addRoute(ns, { to: 'default', via: lab.ip(1) });
    }
    labA.net.spawnIn(g.a, tcpGreeterArgv(8080, 'tier-a'));
    labB.net.spawnIn(g.b, tcpGreeterArgv(8080, 'tier-b'));
    const r = await ra.push(stateA(1));
    assert.ok(r.ok, `push A: ${JSON.stringify(r)}\n${ra.log()}`);
  });

  after(async () => {
    await labB.cleanup();
    await labA.cleanup();
  });

  it('a tier router without vpc0 fails the apply as retryable, and converges once vpc0 is plugged', async () => {
    const r = await rb.push(stateB(1));
    assert.equal(r.ok, false, `vpc0 is not there yet: ${JSON.stringify(r)}`);
    assert.match(JSON.stringify(r), /TransitInterfaceMissing/);
    await plugTransit(rb);
    await eventually(
      async () => {
        const s = await rb.status();
        assert.equal(s.generation, 1, JSON.stringify(s.conditions));
        assert.ok(!s.conditions.some((c) => c.type === 'Degraded' && c.status), JSON.stringify(s.conditions));
      },
      { timeoutMs: 15_000, what: 'tier B applies generation 1 after vpc0 appears' },
    );
  });

  it('each router holds its gateway on vpc0 and routes to the peer on-link; B defaults via the edge', async () => {
    const addr = await execIn(rb.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'vpc0']);
    assert.match(addr.stdout, new RegExp(`inet ${labB.ip(1).replace(/\./g, '\\.')}/32`));
    assert.deepEqual(await transitRoutes(rb), [
      `${labA.cidr} via ${labA.ip(1)} dev vpc0 onlink`,
      `default via ${labA.ip(1)} dev vpc0 onlink`,
    ]);
    assert.deepEqual(await transitRoutes(ra), [`${labB.cidr} via ${labB.ip(1)} dev vpc0 onlink`]);
  });

  it('a guest of tier A reaches a TCP server in tier B and back, with its own address (no NAT between tiers)', async () => {
    await eventually(
      async () => {
        const ab = await tcpProbe(g.a, labB.ip(10), 8080);
        assert.equal(ab.reply, `tier-b ${labA.ip(10)}`, ab.stderr);
      },
      { timeoutMs: 10_000, what: 'A → B over the transit' },
    );
    const ba = await tcpProbe(g.b, labA.ip(10), 8080);
    assert.equal(ba.reply, `tier-a ${labB.ip(10)}`, ba.stderr);
  });

  it('a peer leaving the state takes its routes along; it comes back with them', async () => {
    // Tier A's router went: B is alone, so its own edge (builder), with no peer and no transit default.
    const gone = await rb.push({ ...stateB(2, []), vpc: { ...vpc('b', []), edge: true, edgeGateway: null } });
    assert.ok(gone.ok, JSON.stringify(gone));
    assert.deepEqual(await transitRoutes(rb), []);
    const cut = await tcpProbe(g.a, labB.ip(10), 8080, 1);
    assert.equal(cut.ok, false, `B must no longer route back to A: ${cut.reply}`);
    // An address or route an operator added by hand is not the agent's, and stays.
    await runIn(rb.ns, ['ip', 'route', 'add', '192.0.2.0/24', 'dev', 'vpc0']);
    const back = await rb.push(stateB(3));
    assert.ok(back.ok, JSON.stringify(back));
    assert.equal((await transitRoutes(rb)).length, 2);
    const kept = await execIn(rb.ns, ['ip', '-4', '-o', 'route', 'show', '192.0.2.0/24']);
    assert.match(kept.stdout, /192\.0\.2\.0\/24 dev vpc0/);
    const again = await tcpProbe(g.a, labB.ip(10), 8080);
    assert.equal(again.reply, `tier-b ${labA.ip(10)}`, again.stderr);
  });

  it('a router that stops being a VPC tier drops its transit routes and address', async () => {
    const plain = labB.state(4, [labB.host(10, MAC_B, 'gb')]);
    const r = await rb.push(plain);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(await transitRoutes(rb), []);
    const addr = await execIn(rb.ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'vpc0']);
    assert.equal(addr.stdout.trim(), '');
  });
});
