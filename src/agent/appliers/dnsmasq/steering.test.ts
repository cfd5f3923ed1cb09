import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jhash, shardOf, shardPortBase } from './shards.js';
import { renderSteering } from './steering.js';

describe('DHCP steering to shards (steering.ts)', () => {
  it("jhash is the kernel's (include/linux/jhash.h), so shardOf agrees with the nft rule", () => {
    // This implementation's values; checked against the kernel itself: 200 UDP packets (100 random chaddr)
    // through the rule with K = 64 into a namespace listening on the 64 ports, each arrived at shardOf's.
    assert.equal(jhash([0, 0, 0, 0, 0, 0], 0), 0x23700e53);
    assert.equal(jhash([2, 0xb0, 0, 0, 0, 0x65], 0), 0xac4391a0);
    assert.equal(shardOf('02:b0:00:00:00:65', 64), Math.floor((0xac4391a0 * 64) / 2 ** 32));
  });

  it('replaces only its own table: one rule for every host, K and the guest interface its only inputs', () => {
    assert.equal(
      renderSteering({ guestInterface: 'eth0', shards: 4 }),
      [
        'table ip stacknet_dhcp',
        'delete table ip stacknet_dhcp',
        'table ip stacknet_dhcp {',
        '  chain input {',
        '    type filter hook input priority filter + 10; policy accept;',
        `    iifname "eth0" udp dport 67 counter udp dport set jhash @ih,224,48 mod 4 seed 0x0 map { 0 : ${shardPortBase}, 1 : ${shardPortBase + 1}, 2 : ${shardPortBase + 2}, 3 : ${shardPortBase + 3} } udp checksum set 0`,
        '  }',
        '  chain output {',
        '    type filter hook output priority raw; policy accept;',
        `    oifname "eth0" udp sport ${shardPortBase}-${shardPortBase + 3} udp sport set 67`,
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    assert.equal(renderSteering(null), 'table ip stacknet_dhcp\ndelete table ip stacknet_dhcp\n');
    assert.equal(shardOf('02:B0:00:00:00:65', 4), shardOf('02:b0:00:00:00:65', 4));
  });
});
