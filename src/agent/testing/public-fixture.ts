/** A router's public side for the agent's tests: two public VLANs, the source-NAT address on the first. */
import type { PublicSpec } from '../desired-state.js';

export function publicSide(): PublicSpec {
  return {
    nics: [
      {
        interface: 'eth2',
        vlan: 'untagged',
        gateway: '203.0.113.1',
        prefix: 24,
        addresses: ['203.0.113.10', '203.0.113.11'],
      },
      {
        interface: 'eth3',
        vlan: '101',
        gateway: '198.51.100.129',
        prefix: 25,
        addresses: ['198.51.100.140'],
      },
    ],
    sourceNatIp: '203.0.113.10',
    staticNats: [{ publicIp: '203.0.113.11', guestIp: '10.1.0.11' }],
    egressDefaultAllow: false,
  };
}
