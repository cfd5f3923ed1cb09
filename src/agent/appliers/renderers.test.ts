import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { render } from '../render/render.js';
import { baseState } from '../testing/fixtures.js';
import { goldenCases, goldenCtx } from '../testing/golden.js';
import { createAppliers } from './index.js';
import { renderRouter, routerRenderers } from './renderers.js';

describe('the router render', () => {
  it('hash ignores the generation and host order, follows content', () => {
    const a = baseState();
    const b = { ...baseState(), generation: 9, hosts: [...baseState().hosts].reverse() };
    assert.equal(renderRouter(a, goldenCtx).hash, renderRouter(b, goldenCtx).hash);
    const c = baseState({ passwords: { '10.1.0.11': 'other' } });
    assert.notEqual(renderRouter(a, goldenCtx).hash, renderRouter(c, goldenCtx).hash);
    const d = baseState({ firewall: { enabled: !a.firewall.enabled } });
    assert.notEqual(
      renderRouter(a, goldenCtx).hash,
      renderRouter(d, goldenCtx).hash,
      'the firewall intent counts',
    );
  });

  it('the simulator’s record has the agent’s renders and hash', () => {
    const { dataDir, leaseDir, ...rest } = goldenCtx;
    const paths = {
      conf: `${dataDir}/dnsmasq.conf`,
      pidFile: `${dataDir}/dnsmasq.pid`,
      leaseFile: `${leaseDir}/dnsmasq.leases`,
      logFile: `${dataDir}/dnsmasq.log`,
      dhcpHostsFile: `${dataDir}/dhcphosts.txt`,
      dhcpHostsDir: `${dataDir}/dhcphosts.d`,
    };
    for (const make of Object.values(goldenCases)) {
      const r = render(make(), { paths, ...rest });
      const agent = renderRouter(make(), goldenCtx);
      assert.equal(r.hash, agent.hash);
      assert.deepEqual(
        [
          r.addresses,
          r.transit,
          { dnsmasqConf: r.dnsmasqConf, dhcpHosts: r.dhcpHosts },
          { conf: r.dnsConf, names: r.names },
          r.nftables,
          r.netfilter,
          r.haproxyConf,
          r.keepalivedConf,
        ],
        agent.outs,
      );
    }
  });

  it('one applier per renderer, in the same order', () => {
    const appliers = createAppliers({
      ...goldenCtx,
      dnsmasqBinary: 'dnsmasq',
      keepalivedBinary: 'keepalived',
      firewall: false,
      log: () => undefined,
      serving: () => true,
      observeRole: () => undefined,
      degrade: () => undefined,
    });
    assert.deepEqual(
      appliers.map((a) => a.renderer),
      [...routerRenderers],
    );
  });
});
