import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DesiredState } from '../../desired-state.js';
import { renderTransit, routesRenderer } from './render.js';

const state = (extra: Partial<DesiredState> = {}): DesiredState => ({
  generation: 1,
  router: { name: 'r-1-VM', guestIp: '10.9.2.1' },
  network: {
    cidr: '10.9.2.0/24',
    gateway: '10.9.2.1',
    domain: 'vpc.internal',
    dnsServers: [],
    useExternalDns: false,
  },
  hosts: [],
  metadata: {},
  passwords: {},
  firewall: { enabled: true },
  ...extra,
});

const vpc = {
  cidr: '10.9.0.0/16',
  transitInterface: 'vpc0',
  edge: false,
  edgeGateway: '10.9.1.1',
  peers: [
    { cidr: '10.9.1.0/24', gateway: '10.9.1.1' },
    { cidr: '10.9.3.0/24', gateway: '10.9.3.1' },
  ],
};

test('a tier router: gateway /32 on the transit, peers on-link, default via the edge', () => {
  assert.deepEqual(renderTransit(state({ vpc })), {
    dev: 'vpc0',
    address: '10.9.2.1',
    whileServing: false,
    routes: [
      { to: '10.9.1.0/24', via: '10.9.1.1' },
      { to: '10.9.3.0/24', via: '10.9.3.1' },
      { to: 'default', via: '10.9.1.1' },
    ],
  });
});

test('the edge has no transit default; a redundant tier holds the /32 only with the VIP; no VPC, no plan', () => {
  const edge = renderTransit(state({ vpc: { ...vpc, edge: true, edgeGateway: null } }));
  assert.deepEqual(
    edge?.routes.map((r) => r.to),
    ['10.9.1.0/24', '10.9.3.0/24'],
  );
  const pair = renderTransit(
    state({
      vpc,
      router: {
        name: 'r-1-VM',
        guestIp: '10.9.2.5',
        redundant: { priority: 100, vrrpIntervalSeconds: 1, virtualRouterId: 3, authPass: 'x' },
      },
    }),
  );
  assert.deepEqual([pair?.address, pair?.whileServing], ['10.9.2.1', true], 'the gateway (VIP), not its own');
  assert.equal(renderTransit(state()), null);
});

test('the digest changes with the routes, not with the generation', () => {
  const ctx = {} as never;
  const d = (s: DesiredState) => routesRenderer.digest(routesRenderer.render(s, ctx), s);
  assert.deepEqual(d(state({ vpc })), d(state({ vpc, generation: 9 })));
  assert.notDeepEqual(d(state({ vpc })), d(state({ vpc: { ...vpc, peers: vpc.peers.slice(1) } })));
});
