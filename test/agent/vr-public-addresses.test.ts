// Issue 13: a standalone router's public addresses. The agent puts them on eth2.. (which the driver plugs, maybe
// after the push), routes default via the source-NAT VLAN's gateway, announces each address it adds with a
// gratuitous ARP (the upstream's stale neighbour entry follows), and takes away only the addresses it put there.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, execIn, getMac, runIn, sysctlIn } from '../../src/netns/index.js';
import type { DesiredState, PublicSpec } from '../../src/agent/desired-state.js';
import { VrLab, type RouterUnderTest } from './vr-lab.js';

const upstream = '203.0.113.1';
const publicSpec = (addresses: string[]): PublicSpec => ({
  nics: [{ interface: 'eth2', vlan: 'untagged', gateway: upstream, prefix: 24, addresses }],
  sourceNatIp: addresses[0] ?? null,
  staticNats: [],
  egressDefaultAllow: false,
});

async function addrs(ns: string, dev: string): Promise<string[]> {
  const r = await runIn(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', dev]);
  return [...r.stdout.matchAll(/inet (\S+)/g)].map((m) => m[1]!);
}

async function defaultRoute(ns: string): Promise<string> {
  return (await runIn(ns, ['ip', '-4', 'route', 'show', 'default'])).stdout.trim();
}

async function neighbour(ns: string, ip: string): Promise<string> {
  return (await runIn(ns, ['ip', 'neigh', 'show', ip])).stdout.trim();
}

describe('router agent: public addresses of a standalone router', () => {
  const lab = new VrLab({ cidr: '10.65.0.0/24' });
  let vr: RouterUnderTest;
  let wan = '';
  let pub = '';
  let gen = 1;
  const state = (p: PublicSpec | undefined): DesiredState => lab.state(gen++, [], p ? { public: p } : {});

  before(async () => {
    await lab.setup();
    vr = await lab.router('vr');
    pub = await lab.net.bridge('pub');
    wan = await lab.net.namespace('wan');
    await lab.net.veth({ ns: wan, ifname: 'eth0', bridge: pub, addresses: [`${upstream}/24`] });
    await sysctlIn(vr.ns, 'net.ipv4.ip_forward', '1');
  });

  after(async () => {
    await lab.cleanup();
  });

  it('a public interface not plugged yet: 422 PublicInterfaceMissing, applied by itself once it is', async () => {
    // The upstream has a stale entry for the address (it lived elsewhere before): the gratuitous ARP must fix it.
    await runIn(wan, [
      'ip',
      'neigh',
      'replace',
      '203.0.113.10',
      'lladdr',
      '02:00:00:00:00:99',
      'dev',
      'eth0',
      'nud',
      'stale',
    ]);
    const r = await vr.push(state(publicSpec(['203.0.113.10', '203.0.113.11'])));
    assert.ok(!r.ok && r.httpStatus === 422 && r.error === 'PublicInterfaceMissing', JSON.stringify(r));
    // plugged down, as a driver may leave it: the agent brings it up
    await lab.net.veth({ ns: vr.ns, ifname: 'eth2', bridge: pub });
    await runIn(vr.ns, ['ip', 'link', 'set', 'dev', 'eth2', 'down']);
    await eventually(
      async () => {
        const s = await vr.status();
        assert.equal(s.generation, 1);
        assert.equal(s.conditions.find((c) => c.type === 'Degraded')?.status, false);
      },
      { timeoutMs: 10_000, what: `retried apply\n${vr.log()}` },
    );
    assert.deepEqual(await addrs(vr.ns, 'eth2'), ['203.0.113.10/24', '203.0.113.11/24']);
    assert.match(await defaultRoute(vr.ns), /^default via 203\.0\.113\.1 dev eth2/);
    assert.match((await runIn(vr.ns, ['ip', 'link', 'show', 'dev', 'eth2'])).stdout, /[<,]UP[,>]/);
    const mac = await getMac(vr.ns, 'eth2');
    await eventually(
      async () => assert.match(await neighbour(wan, '203.0.113.10'), new RegExp(`lladdr ${mac}`)),
      { timeoutMs: 3000, what: 'the upstream follows the gratuitous ARP' },
    );
    // and the upstream resolves the other address to eth2 (ARP is answered there)
    const probe = await execIn(wan, ['arping', '-c', '1', '-w', '2', '-I', 'eth0', '203.0.113.11']);
    assert.match(probe.stdout, new RegExp(`reply from 203\\.0\\.113\\.11 \\[${mac}\\]`, 'i'), probe.stdout);
  });

  // 203.0.113.10 is the subnet's primary address on eth2: without promote_secondaries the kernel would take every
  // other address of the subnet (the operator's too) away with it.
  it('a changed public side: addresses that left are removed, an operator’s address is left alone', async () => {
    await runIn(vr.ns, ['ip', 'addr', 'add', '203.0.113.99/24', 'dev', 'eth2']);
    const r = await vr.patch({
      baseGeneration: gen - 1,
      generation: gen++,
      public: publicSpec(['203.0.113.11', '203.0.113.12']),
    });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual((await addrs(vr.ns, 'eth2')).sort(), [
      '203.0.113.11/24',
      '203.0.113.12/24',
      '203.0.113.99/24',
    ]);
    // the same state again (forced by a new generation with no change): nothing moves
    const again = await vr.push(state(publicSpec(['203.0.113.11', '203.0.113.12'])));
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal((await addrs(vr.ns, 'eth2')).length, 3);
  });

  it('an agent restarted from its saved state still removes what its predecessor added', async () => {
    await vr.agent.stop(5000);
    await vr.restart();
    const r = await vr.push(state(undefined));
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(await addrs(vr.ns, 'eth2'), ['203.0.113.99/24']);
    assert.equal(await defaultRoute(vr.ns), '');
  });
});
