/** Desired states with a public side and rules (NAT, firewall, egress, VPC ACL), for the agent's tests. */
import type { DesiredState, RuleSpec } from '../desired-state.js';
import { baseState } from './fixtures.js';

const any = ['0.0.0.0/0'];

/** A port forward on 203.0.113.12 to vm2 (10.1.0.12). */
export function forward(
  id: string,
  protocol: 'tcp' | 'udp',
  [start, end]: [number, number],
  [pStart, pEnd]: [number, number],
): RuleSpec {
  return {
    kind: 'portForward',
    id,
    protocol,
    publicIp: '203.0.113.12',
    publicPorts: { start, end },
    guestIp: '10.1.0.12',
    privatePorts: { start: pStart, end: pEnd },
    sourceCidrs: any,
  };
}

/** An isolated network's router: source NAT .10, static NAT .11 → vm1, forwards on .12 to vm2. */
export function publicState(overrides: Partial<DesiredState> = {}): DesiredState {
  const rules: RuleSpec[] = [
    forward('pf-1', 'tcp', [80, 80], [8080, 8080]),
    forward('pf-2', 'udp', [1000, 1002], [2000, 2002]),
    {
      kind: 'firewall',
      id: 'fw-1',
      protocol: 'tcp',
      publicIp: '203.0.113.12',
      ports: { start: 80, end: 80 },
      sourceCidrs: any,
    },
    {
      kind: 'firewall',
      id: 'fw-2',
      protocol: 'icmp',
      publicIp: '203.0.113.11',
      sourceCidrs: ['192.0.2.0/24'],
    },
    {
      kind: 'firewall',
      id: 'fw-3',
      protocol: 'all',
      publicIp: '203.0.113.11',
      sourceCidrs: ['198.51.100.0/24'],
    },
    {
      kind: 'egress',
      id: 'eg-1',
      protocol: 'tcp',
      ports: { start: 443, end: 443 },
      sourceCidrs: [],
      destCidrs: [],
    },
  ];
  return baseState({
    public: {
      nics: [
        {
          interface: 'eth2',
          vlan: 'untagged',
          gateway: '203.0.113.1',
          prefix: 24,
          addresses: ['203.0.113.10', '203.0.113.11', '203.0.113.12'],
        },
      ],
      sourceNatIp: '203.0.113.10',
      staticNats: [{ publicIp: '203.0.113.11', guestIp: '10.1.0.11' }],
      egressDefaultAllow: false,
    },
    rules,
    ...overrides,
  });
}

/** The edge tier of a VPC 10.1.0.0/16 (this tier 10.1.0.0/24... as the base network), with ACL items. */
export function vpcEdgeState(): DesiredState {
  const s = publicState();
  const acl: RuleSpec[] = [
    {
      kind: 'acl',
      id: 'acl-1',
      number: 1,
      action: 'allow',
      traffic: 'ingress',
      protocol: 'tcp',
      ports: { start: 8080, end: 8080 },
      cidrs: any,
    },
    { kind: 'acl', id: 'acl-2', number: 2, action: 'deny', traffic: 'egress', protocol: '47', cidrs: any },
    { kind: 'acl', id: 'acl-3', number: 3, action: 'allow', traffic: 'egress', protocol: 'all', cidrs: any },
  ];
  return {
    ...s,
    network: { ...s.network, cidr: '10.1.0.0/24' },
    public: { ...s.public!, egressDefaultAllow: true },
    rules: [...s.rules!.filter((r) => r.kind === 'portForward'), ...acl].sort((a, b) =>
      a.id < b.id ? -1 : 1,
    ),
    vpc: {
      cidr: '10.1.0.0/16',
      transitInterface: 'vpc0',
      edge: true,
      edgeGateway: null,
      peers: [{ cidr: '10.1.1.0/24', gateway: '10.1.1.1' }],
    },
  };
}

/** A firewall rule letting `sources` in to TCP `port` of `publicIp`. */
export function tcpFirewall(id: string, publicIp: string, port: number, sources: string[]): RuleSpec {
  return {
    kind: 'firewall',
    id,
    protocol: 'tcp',
    publicIp,
    ports: { start: port, end: port },
    sourceCidrs: sources,
  };
}

/** A load balancer rule on `publicIp:publicPort` over `members` (guest IPs) on `privatePort`. */
export function lbRule(
  id: string,
  publicIp: string,
  publicPort: number,
  privatePort: number,
  members: string[],
  extra: Partial<Extract<RuleSpec, { kind: 'loadBalancer' }>> = {},
): RuleSpec {
  return {
    kind: 'loadBalancer',
    id,
    publicIp,
    publicPort,
    privatePort,
    algorithm: 'roundrobin',
    members: members.map((guestIp, i) => ({ vmId: `vm-${i + 1}`, guestIp })),
    sourceCidrs: any,
    ...extra,
  };
}

/**
 * publicState plus load balancer rules on the source NAT address: plain TCP (lb-1, with a firewall rule),
 * LbCookie with an HTTP check (lb-2), source stickiness and a source list (lb-3), AppCookie (lb-4).
 */
export function lbState(): DesiredState {
  const s = publicState();
  const members = ['10.1.0.11', '10.1.0.12', '10.1.0.13'];
  const lb: RuleSpec[] = [
    lbRule('lb-1', '203.0.113.10', 80, 8080, members),
    lbRule('lb-2', '203.0.113.10', 443, 8443, members, {
      algorithm: 'leastconn',
      stickiness: { method: 'LbCookie', params: { 'cookie-name': 'SRV', nocache: 'true', indirect: 'true' } },
      healthCheck: {
        pingPath: '/health',
        intervalSeconds: 5,
        timeoutSeconds: 2,
        healthyThreshold: 2,
        unhealthyThreshold: 3,
      },
    }),
    lbRule('lb-3', '203.0.113.10', 22, 22, members.slice(0, 2), {
      algorithm: 'source',
      sourceCidrs: ['192.0.2.0/24', '198.51.100.0/24'],
      stickiness: { method: 'SourceBased', params: { tablesize: '100k', expire: '10m' } },
      healthCheck: { intervalSeconds: 2, timeoutSeconds: 1, healthyThreshold: 1, unhealthyThreshold: 2 },
    }),
    lbRule('lb-4', '203.0.113.12', 8000, 8000, members.slice(1), {
      stickiness: {
        method: 'AppCookie',
        params: { 'cookie-name': 'JSESSIONID', length: '32', holdtime: '1h', 'request-learn': 'true' },
      },
    }),
  ];
  const fw = tcpFirewall('fw-lb', '203.0.113.10', 80, any);
  return { ...s, rules: [...s.rules!, ...lb, fw].sort((a, b) => (a.id < b.id ? -1 : 1)) };
}
