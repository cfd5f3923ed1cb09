import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderUnicastSteering, subnetBroadcast } from './unicast.js';

describe('unicast DHCP to every shard (unicast.ts)', () => {
  it('steers to the guest subnet broadcast', () => {
    assert.equal(subnetBroadcast('10.64.0.0/16'), '10.64.255.255');
    assert.equal(subnetBroadcast('10.1.1.0/24'), '10.1.1.255');
    assert.equal(subnetBroadcast('192.168.4.7/22'), '192.168.7.255');
  });

  it('replaces only its own table, one rule for every host', () => {
    assert.equal(
      renderUnicastSteering({ guestInterface: 'eth0', broadcast: '10.64.255.255' }),
      [
        'table ip stacknet_dhcp',
        'delete table ip stacknet_dhcp',
        'table ip stacknet_dhcp {',
        '  chain prerouting {',
        '    type filter hook prerouting priority raw; policy accept;',
        '    iifname "eth0" udp dport 67 fib daddr type local counter ip daddr set 10.64.255.255',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    assert.equal(renderUnicastSteering(null), 'table ip stacknet_dhcp\ndelete table ip stacknet_dhcp\n');
  });
});
