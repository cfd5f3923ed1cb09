import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { render } from '../render/render.js';
import { baseState } from '../testing/fixtures.js';
import { goldenCases, goldenCtx } from '../testing/golden.js';
import { createAppliers } from './index.js';
import { renderRouter, renderersFor, routerRenderers } from './renderers.js';
import { renderAddresses } from './addresses/render.js';
import { renderHaproxy } from './haproxy/render.js';
import { applianceServices } from '../desired-state.js';
import type { DesiredState } from '../desired-state.js';

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

  it('an internal LB appliance: addresses and haproxy only, a default route via the tier gateway', () => {
    const state: DesiredState = {
      ...baseState({ hosts: [], metadata: {}, passwords: {}, firewall: { enabled: false } }),
      router: { name: 'b-7-VM', guestIp: '10.1.0.50', appliance: 'internalLb' },
      rules: [
        {
          kind: 'loadBalancer',
          id: 'lb-1',
          publicIp: '10.1.0.50',
          publicPort: 80,
          privatePort: 8080,
          algorithm: 'roundrobin',
          members: [{ vmId: 'u-1', guestIp: '10.1.0.11' }],
          sourceCidrs: ['0.0.0.0/0'],
        },
      ],
    };
    assert.deepEqual(
      renderersFor(state).map((r) => r.name),
      [...applianceServices.internalLb],
    );
    const appliers = createAppliers(
      {
        ...goldenCtx,
        dnsmasqBinary: 'dnsmasq',
        keepalivedBinary: 'keepalived',
        firewall: false,
        log: () => undefined,
        serving: () => true,
        observeRole: () => undefined,
        degrade: () => undefined,
      },
      applianceServices.internalLb,
    );
    assert.deepEqual(
      appliers.map((a) => a.renderer.name),
      ['addresses', 'haproxy'],
    );
    const a = renderAddresses(state, 'eth0');
    assert.deepEqual(a.own, { dev: 'eth0', address: '10.1.0.50', prefix: 16 });
    assert.deepEqual(a.defaultRoute, { dev: 'eth0', via: state.network.gateway });
    // Without the guest services (ports 0), the rule listens on its own port even where it is 80.
    const cfg = renderHaproxy(state, { ...goldenCtx, metadataPort: 0, passwordPort: 0 }) ?? '';
    assert.match(cfg, /bind 10\.1\.0\.50:80\b/);
    // The hash covers the appliance's address: a new source address is a new render.
    const moved = { ...state, router: { ...state.router, guestIp: '10.1.0.51' } };
    assert.notEqual(renderRouter(state, goldenCtx).hash, renderRouter(moved, goldenCtx).hash);
  });
});
