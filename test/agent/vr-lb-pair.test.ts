// Issue 18 on a redundant pair: haproxy follows the primary, as dnsmasq does (the backup has no address on the
// guest network to check members from); when the primary goes, the backup starts it and serves the LB.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, execIn } from '../../src/netns/index.js';
import type { DesiredState } from '../../src/agent/desired-state.js';
import { lbRule, tcpFirewall } from '../../src/agent/testing/nat-fixtures.js';
import { VrLab, type PublicNetwork, type RouterUnderTest } from './vr-lab.js';

const PUBLIC_IP = '203.0.113.30';
const MAC = '02:af:00:00:00:01';

describe('router agent: public load balancer on a redundant pair', () => {
  const lab = new VrLab({ cidr: '10.66.0.0/24' });
  let primary: RouterUnderTest;
  let backup: RouterUnderTest;
  let pub: PublicNetwork;
  const vrid = 1 + Math.floor(Math.random() * 250);

  const pairState = (name: string, guestIp: string, priority: number): DesiredState =>
    lab.state(1, [lab.host(11, MAC, 'g1')], {
      router: {
        name,
        guestIp,
        redundant: { priority, vrrpIntervalSeconds: 1, virtualRouterId: vrid, authPass: 'lbpair' },
      },
      public: lab.publicSide(pub, [PUBLIC_IP]),
      rules: [
        tcpFirewall('fw-8000', PUBLIC_IP, 8000, ['0.0.0.0/0']),
        lbRule('lb-1', PUBLIC_IP, 8000, 8080, [lab.ip(11)]),
      ],
    });

  const ask = async () => {
    const r = await execIn(pub.ns, ['curl', '-s', '-m', '1', `http://${PUBLIC_IP}:8000/`], {
      timeoutMs: 3000,
    });
    return r.stdout.trim();
  };

  before(async () => {
    await lab.setup();
    pub = await lab.publicNetwork();
    primary = await lab.router('vr1');
    backup = await lab.router('vr2');
    for (const r of [primary, backup]) await lab.plugPublic(r, pub);
    await lab.webGuest('g1', MAC, 11);
    await lab.pushPair(primary, backup, pairState);
  });

  after(async () => {
    await lab.cleanup();
  });

  it('the primary runs haproxy, reports the member UP and serves; the backup runs none', async () => {
    await eventually(
      async () => {
        const [p, b] = await Promise.all([primary.status(), backup.status()]);
        assert.equal(p.role, 'primary');
        assert.equal(b.role, 'backup');
        assert.deepEqual(p.lb, { 'lb-1': { [lab.ip(11)]: 'UP' } });
        assert.equal(b.lb, undefined, 'the backup reports no LB health');
      },
      { timeoutMs: 15_000, what: `pair elected, LB members UP\n${primary.log()}\n${backup.log()}` },
    );
    const listening = await execIn(backup.ns, ['ss', '-Hltn', 'sport', '=', ':8000']);
    assert.equal(listening.stdout.trim(), '', 'no haproxy on the backup');
    await eventually(async () => assert.equal(await ask(), 'g1'), {
      timeoutMs: 10_000,
      what: 'LB via primary',
    });
  });

  it('the primary gone, the backup starts haproxy and serves the LB', async () => {
    await primary.agent.stop(5000);
    await eventually(async () => assert.equal(await ask(), 'g1'), {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: `LB via the backup\n${backup.log()}`,
    });
    assert.equal((await backup.status()).role, 'primary');
    await eventually(
      async () => assert.deepEqual((await backup.status()).lb, { 'lb-1': { [lab.ip(11)]: 'UP' } }),
      { timeoutMs: 10_000, what: 'the new primary reports the member' },
    );
  });
});
