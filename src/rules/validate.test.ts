import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkInsideGuest,
  checkPfRanges,
  checkProtocolFields,
  detectConflict,
  parseCidrList,
  portSpan,
} from './validate.js';
import { parseCidr } from '../ipam/index.js';

const msg = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return '';
};

test('port spans: 1-65535, start ≤ end, end defaults to start', () => {
  assert.deepEqual(portSpan(22, undefined, ['publicport', 'publicendport']), { start: 22, end: 22 });
  assert.equal(portSpan(undefined, undefined, ['startport', 'endport']), undefined);
  assert.match(
    msg(() => portSpan(0, 10, ['publicport', 'publicendport'])),
    /publicport.*1 to 65535/,
  );
  assert.match(
    msg(() => portSpan(10, 65536, ['publicport', 'publicendport'])),
    /publicendport/,
  );
  assert.match(
    msg(() => portSpan(20, 10, ['startport', 'endport'])),
    /endport.*bigger than end port/,
  );
});

test('PF ranges: same length, or a single private port', () => {
  checkPfRanges({ start: 100, end: 110 }, { start: 200, end: 210 });
  checkPfRanges({ start: 100, end: 110 }, { start: 80, end: 80 });
  assert.match(
    msg(() => checkPfRanges({ start: 100, end: 110 }, { start: 200, end: 205 })),
    /privateendport.*have to be consistent/,
  );
});

test('icmp fields only with icmp, ports only with tcp/udp', () => {
  checkProtocolFields('icmp', undefined, { type: 8, code: 0 });
  assert.match(
    msg(() => checkProtocolFields('tcp', undefined, { type: 8 })),
    /icmptype.*ICMP protocol only/,
  );
  assert.match(
    msg(() => checkProtocolFields('all', { start: 1, end: 2 }, {})),
    /startport/,
  );
  assert.match(
    msg(() => checkProtocolFields('icmp', undefined, { code: 300 })),
    /icmpcode/,
  );
});

test('cidrs: syntax checked, egress sources inside the guest CIDR', () => {
  assert.match(
    msg(() => parseCidrList(['10.0.0.0/33'], 'cidrlist')),
    /cidrlist/,
  );
  const guest = parseCidr('10.1.1.0/24');
  checkInsideGuest(parseCidrList(['10.1.1.0/25'], 'cidrlist'), guest, 'cidrlist');
  checkInsideGuest(parseCidrList(['0.0.0.0/0'], 'cidrlist'), guest, 'cidrlist');
  assert.match(
    msg(() => checkInsideGuest(parseCidrList(['10.1.2.0/24'], 'cidrlist'), guest, 'cidrlist')),
    /cidrlist.*not within the network cidr 10.1.1.0\/24/,
  );
});

test('conflicts: overlapping ports of one protocol and purpose; firewall rules only with a shared cidr', () => {
  const existing = [
    { uuid: 'a', purpose: 'PortForwarding' as const, protocol: 'tcp', start: 20, end: 25 },
    { uuid: 'b', purpose: 'Firewall' as const, protocol: 'tcp', start: 80, end: 90, cidrs: '0.0.0.0/0' },
    { uuid: 'c', purpose: 'Firewall' as const, protocol: 'all', start: null, end: null, cidrs: '10.0.0.0/8' },
  ];
  assert.match(
    msg(() =>
      detectConflict({ purpose: 'PortForwarding', protocol: 'tcp', ports: { start: 25, end: 30 } }, existing),
    ),
    /^The range specified, 25-30, conflicts with rule a which has 20-25$/,
  );
  // Egress rules conflict only when their destinations share a CIDR too (CloudStack's detectRulesConflict).
  const egress = [{ ...existing[1]!, destCidrs: '192.0.2.0/24' }];
  detectConflict(
    {
      purpose: 'Firewall',
      protocol: 'tcp',
      ports: { start: 80, end: 80 },
      cidrs: '0.0.0.0/0',
      destCidrs: '198.51.100.0/24',
    },
    egress,
  );
  assert.match(
    msg(() =>
      detectConflict(
        {
          purpose: 'Firewall',
          protocol: 'tcp',
          ports: { start: 80, end: 80 },
          cidrs: '0.0.0.0/0',
          destCidrs: '192.0.2.0/24',
        },
        egress,
      ),
    ),
    /conflicts with rule b/,
  );
  detectConflict({ purpose: 'PortForwarding', protocol: 'udp', ports: { start: 20, end: 25 } }, existing);
  detectConflict({ purpose: 'PortForwarding', protocol: 'tcp', ports: { start: 80, end: 80 } }, existing);
  detectConflict(
    { purpose: 'Firewall', protocol: 'tcp', ports: { start: 85, end: 85 }, cidrs: '1.2.3.0/24' },
    existing,
  );
  assert.match(
    msg(() =>
      detectConflict(
        { purpose: 'Firewall', protocol: 'tcp', ports: { start: 85, end: 85 }, cidrs: '0.0.0.0/0' },
        existing,
      ),
    ),
    /rule b/,
  );
  // As CloudStack: a rule without ports does not overlap one with ports; two without ports of one protocol do.
  detectConflict(
    { purpose: 'Firewall', protocol: 'udp', ports: { start: 53, end: 53 }, cidrs: '10.0.0.0/8' },
    existing,
  );
  detectConflict({ purpose: 'Firewall', protocol: 'all', ports: undefined, cidrs: '0.0.0.0/0' }, existing);
  assert.match(
    msg(() =>
      detectConflict(
        { purpose: 'Firewall', protocol: 'all', ports: undefined, cidrs: '10.0.0.0/8,192.168.0.0/16' },
        existing,
      ),
    ),
    /protocol = all and no ports \(rule c\)/,
  );
});
