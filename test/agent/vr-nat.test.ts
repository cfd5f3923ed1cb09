// Issue 13, the router's public side with real packets: a guest network, a public network whose "internet"
// namespace holds the public gateway (203.0.113.1) and an outside host (192.0.2.50), and the real agent. The
// public addresses on eth2 are put there by the addresses applier (merged from s13-pubaddr); NAT and filtering by
// the netfilter applier. TCP with socat (each server answers with the peer address it saw), drops read from the
// counters of the public table's rules.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { addAddress, addRoute, eventually, execIn } from '../../src/netns/index.js';
import type { DesiredState, PublicSpec, RuleSpec } from '../../src/agent/desired-state.js';
import { VrLab, condition, type PublicNetwork, type RouterUnderTest } from './vr-lab.js';

const MAC1 = '02:ac:00:00:00:01';
const MAC2 = '02:ac:00:00:00:02';
const SNAT = '203.0.113.10';
const STATIC = '203.0.113.11';
const PF = '203.0.113.12';
const OUTSIDE = '192.0.2.50';

const forward = (id: string, pub: [number, number], priv: [number, number], guestIp: string): RuleSpec => ({
  kind: 'portForward',
  id,
  protocol: 'tcp',
  publicIp: PF,
  publicPorts: { start: pub[0], end: pub[1] },
  guestIp,
  privatePorts: { start: priv[0], end: priv[1] },
  sourceCidrs: ['0.0.0.0/0'],
});
const firewall = (
  id: string,
  publicIp: string,
  ports: [number, number] | null,
  sources: string[],
): RuleSpec => ({
  kind: 'firewall',
  id,
  protocol: ports ? 'tcp' : 'icmp',
  publicIp,
  ...(ports ? { ports: { start: ports[0], end: ports[1] } } : {}),
  sourceCidrs: sources,
});

describe('router agent: NAT, firewall and egress on the public side', () => {
  const lab = new VrLab({ cidr: '10.62.0.0/24' });
  let vr: RouterUnderTest;
  let pub: PublicNetwork;
  let g1 = '';
  let g2 = '';
  let generation = 0;
  let state: DesiredState;
  /** The rules in force, by id (what the deltas did). */
  const rules = new Map<string, RuleSpec>();

  /** A TCP server in `ns` on `port` answering `<port> <peer address>`. */
  const serve = (ns: string, port: number) =>
    lab.net.spawnIn(ns, [
      'socat',
      `TCP-LISTEN:${port},fork,reuseaddr`,
      `SYSTEM:echo ${port} $SOCAT_PEERADDR`,
    ]);
  /** What the server at host:port answered ('' = nothing: refused, dropped, timed out). */
  const ask = async (ns: string, host: string, port: number, bind?: string): Promise<string> => {
    const to = `TCP:${host}:${port},connect-timeout=1${bind ? `,bind=${bind}` : ''}`;
    const r = await execIn(ns, ['socat', '-T2', '-', to], { timeoutMs: 5000 });
    return r.code === 0 ? r.stdout.trim() : '';
  };
  /** Packets counted by the public table's rule whose comment is `reason`. */
  const dropped = async (reason: string): Promise<number> => {
    const r = await execIn(vr.ns, ['nft', 'list', 'table', 'inet', 'stacknet_public']);
    const m = new RegExp(`counter packets (\\d+) bytes \\d+ drop comment "${reason}"`).exec(r.stdout);
    assert.ok(m, `no counter for ${reason} in\n${r.stdout}`);
    return Number(m[1]);
  };

  const publicSide = (egressDefaultAllow = false): PublicSpec => ({
    nics: [
      {
        interface: 'eth2',
        vlan: 'untagged',
        gateway: pub.gateway,
        prefix: pub.prefix,
        addresses: [SNAT, STATIC, PF],
      },
    ],
    sourceNatIp: SNAT,
    staticNats: [{ publicIp: STATIC, guestIp: lab.ip(11) }],
    egressDefaultAllow,
  });

  const push = async (list: RuleSpec[]) => {
    rules.clear();
    for (const r of list) rules.set(r.id, r);
    const sorted = [...list].sort((a, b) => (a.id < b.id ? -1 : 1));
    state = lab.state(++generation, state.hosts, { public: state.public!, rules: sorted });
    const r = await vr.push(state);
    assert.ok(r.ok, `push failed: ${JSON.stringify(r)}\n${vr.log()}`);
  };
  const patch = async (upsert: RuleSpec[], remove: string[] = []) => {
    const r = await vr.patch({
      baseGeneration: generation,
      generation: ++generation,
      rules: { upsert, remove },
    });
    assert.ok(r.ok, `delta failed: ${JSON.stringify(r)}\n${vr.log()}`);
    for (const id of remove) rules.delete(id);
    for (const x of upsert) rules.set(x.id, x);
  };

  before(async () => {
    await lab.setup();
    pub = await lab.publicNetwork({ extra: [OUTSIDE] });
    vr = await lab.router('vr');
    await lab.plugPublic(vr, pub);
    g1 = await lab.guest('g1', MAC1);
    g2 = await lab.guest('g2', MAC2);
    // Static guest addresses: these tests are about forwarding, not DHCP.
    for (const [ns, n] of [
      [g1, 11],
      [g2, 12],
    ] as const) {
      await addAddress(ns, 'eth0', `${lab.ip(n)}/24`);
      await addRoute(ns, { to: 'default', via: lab.ip(1) });
    }
    for (const port of [7000, 7001]) serve(pub.ns, port);
    serve(g1, 7001);
    for (const port of [8080, 9100, 9101]) serve(g2, port);
    state = lab.state(generation, [lab.host(11, MAC1, 'g1'), lab.host(12, MAC2, 'g2')]);
    state.public = publicSide();
    await push([]);
    await eventually(
      async () => assert.ok((await execIn(vr.ns, ['busybox', 'ping', '-c1', '-W1', pub.gateway])).code === 0),
      {
        timeoutMs: 5000,
        what: 'the router reaches its public gateway',
      },
    );
  });

  after(async () => {
    await lab.cleanup();
  });

  it('egress is denied by default (counted); one egress rule opens it, and the guest leaves with the source-NAT address', async () => {
    const before = await dropped('egress-default-deny');
    assert.equal(await ask(g2, pub.gateway, 7000), '', 'egress denied without a rule');
    assert.ok((await dropped('egress-default-deny')) > before, 'the drop is counted');
    await patch([
      {
        kind: 'egress',
        id: 'eg-1',
        protocol: 'tcp',
        ports: { start: 7000, end: 7000 },
        sourceCidrs: [],
        destCidrs: [],
      },
    ]);
    assert.equal(await ask(g2, pub.gateway, 7000), `7000 ${SNAT}`);
    assert.equal(await ask(g2, pub.gateway, 7001), '', 'only the port the rule names');
  });

  it('a static-NAT VM leaves with its own public address', async () => {
    assert.equal(await ask(g1, pub.gateway, 7000), `7000 ${STATIC}`);
  });

  it('static NAT inbound passes only what a firewall rule opens, from its sources', async () => {
    const before = await dropped('no-firewall-rule');
    assert.equal(await ask(pub.ns, STATIC, 7001), '', 'nothing open yet');
    assert.ok((await dropped('no-firewall-rule')) > before);
    await patch([firewall('fw-static', STATIC, [7001, 7001], ['203.0.113.0/24'])]);
    assert.equal(await ask(pub.ns, STATIC, 7001), `7001 ${pub.gateway}`, 'the VM sees the real client');
    assert.equal(await ask(pub.ns, STATIC, 7001, OUTSIDE), '', 'a source outside the rule’s CIDRs');
  });

  it('port forwards: one port and a range reach the guest where a firewall rule opens them; without one, dropped', async () => {
    await patch([
      forward('pf-80', [80, 80], [8080, 8080], lab.ip(12)),
      forward('pf-81', [81, 81], [8080, 8080], lab.ip(12)),
      forward('pf-range', [9000, 9001], [9100, 9101], lab.ip(12)),
      firewall('fw-80', PF, [80, 80], ['0.0.0.0/0']),
      firewall('fw-range', PF, [9000, 9001], ['0.0.0.0/0']),
    ]);
    assert.equal(await ask(pub.ns, PF, 80), `8080 ${pub.gateway}`);
    assert.equal(await ask(pub.ns, PF, 9000, OUTSIDE), `9100 ${OUTSIDE}`);
    assert.equal(await ask(pub.ns, PF, 9001), `9101 ${pub.gateway}`, 'a range maps port by port');
    const before = await dropped('no-firewall-rule');
    assert.equal(await ask(pub.ns, PF, 81), '', 'a forward without a firewall rule');
    assert.ok((await dropped('no-firewall-rule')) > before, 'its drop is counted');
  });

  it('a rule removed by a delta stops at once', async () => {
    await patch([], ['fw-80']);
    assert.equal(await ask(pub.ns, PF, 80), '');
    assert.equal(await ask(pub.ns, PF, 9001), `9101 ${pub.gateway}`, 'the others stay');
  });

  it('the router answers pings on a public address only where an icmp firewall rule allows them', async () => {
    const ping = async () => (await execIn(pub.ns, ['busybox', 'ping', '-c1', '-W1', SNAT])).code === 0;
    assert.equal(await ping(), false);
    await patch([firewall('fw-icmp', SNAT, null, ['0.0.0.0/0'])]);
    assert.equal(await ping(), true);
  });

  it('a full push rebuilding everything keeps what it states', async () => {
    state.public = publicSide(true);
    await push([...rules.values()].filter((r) => r.id !== 'eg-1'));
    assert.equal(await ask(g2, pub.gateway, 7001), `7001 ${SNAT}`, 'egress allowed by default now');
    assert.equal(await ask(pub.ns, PF, 9000), `9100 ${pub.gateway}`);
  });

  it('a transaction nft refuses leaves the last good ruleset serving, Degraded; the next push replaces it all', async () => {
    // The kernel no longer holds what the agent loaded (someone deleted an element by hand): the delta's
    // element transaction is refused.
    const del = await execIn(vr.ns, [
      'nft',
      'delete element inet stacknet_public ingress_l4 { 203.0.113.11 . tcp . 7001 . 203.0.113.0/24 }',
    ]);
    assert.equal(del.code, 0, del.stderr);
    const r = await vr.patch({
      baseGeneration: generation,
      generation: generation + 1,
      rules: { remove: ['fw-static'] },
    });
    assert.equal(r.ok, false, 'the refused transaction is reported');
    const st = await vr.status();
    assert.equal(st.generation, generation, 'the refused generation is not in force');
    const degraded = condition(st, 'Degraded');
    assert.equal(degraded.status, true);
    assert.match(degraded.reason, /^Nat(Rejected|Failed)$/);
    assert.equal(await ask(pub.ns, PF, 9000), `9100 ${pub.gateway}`, 'the last good ruleset still serves');
    generation += 1;
    await push([...rules.values()].filter((r) => r.id !== 'fw-static'));
    assert.equal(condition(await vr.status(), 'Degraded').status, false);
    assert.equal(await ask(pub.ns, STATIC, 7001), '');
    assert.equal(await ask(pub.ns, PF, 9001), `9101 ${pub.gateway}`);
  });
});
