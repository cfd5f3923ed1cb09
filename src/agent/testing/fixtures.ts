/** Desired-state fixtures shared by the agent's tests (and usable by test/agent/). */
import type { DesiredState, HostSpec } from '../desired-state.js';

export function macFor(i: number): string {
  const b = [0x02, 0x00, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Host i of a /16 (or smaller) network starting at `base` (the third and fourth octets are derived from i). */
export function hostFor(i: number, prefix = '10.1'): HostSpec {
  const n = i + 10;
  return {
    mac: macFor(i),
    ipv4: `${prefix}.${n >> 8}.${n & 255}`,
    hostname: `vm${i}`,
    defaultNic: true,
    vmId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  };
}

export function baseState(overrides: Partial<DesiredState> = {}): DesiredState {
  return {
    generation: 1,
    router: { name: 'r-4-VM', guestIp: '10.1.0.1' },
    network: {
      cidr: '10.1.0.0/16',
      gateway: '10.1.0.1',
      domain: 'cs4.internal',
      dnsServers: ['192.0.2.53', '192.0.2.54'],
      useExternalDns: false,
    },
    hosts: [hostFor(1), { ...hostFor(2), defaultNic: false }],
    metadata: {
      '10.1.0.11': {
        userData: Buffer.from('#cloud-config\nhostname: vm1\n').toString('base64'),
        metaData: {
          'local-ipv4': '10.1.0.11',
          'local-hostname': 'vm1',
          'instance-id': hostFor(1).vmId,
          'vm-id': hostFor(1).vmId,
          'service-offering': 'Small Instance',
          'availability-zone': 'zone1',
          'public-ipv4': '203.0.113.7',
          'public-hostname': '203.0.113.7',
          'public-keys': 'ssh-ed25519 AAAA test',
          'cloud-identifier': 'CloudStack-{4b1f}',
          'hypervisor-host-name': 'kvm1',
        },
      },
      '10.1.0.12': { metaData: { 'local-ipv4': '10.1.0.12', 'instance-id': hostFor(2).vmId } },
    },
    passwords: { '10.1.0.11': 'Secr3t!' },
    firewall: { enabled: true },
    ...overrides,
  };
}
