import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CloudStackError } from '../errors/catalogue.js';
import { formatIp } from './address.js';
import { parseCidr } from './cidr.js';
import {
  duidLL,
  eui64InterfaceId,
  formatMac,
  MAX_MAC_SEQUENCE,
  MAX_MAC_ZONE,
  macFromSequence,
  macZoneAndSequence,
  parseMac,
  slaacAddress,
} from './mac.js';

test('parseMac / formatMac', () => {
  assert.equal(parseMac('52:54:00:12:34:56'), 0x525400123456n);
  assert.equal(parseMac('52-54-00-AB-CD-EF'), 0x525400abcdefn);
  assert.equal(formatMac(0x525400abcdefn), '52:54:00:ab:cd:ef');
  assert.equal(formatMac(0n), '00:00:00:00:00:00');
  for (const bad of [
    '52:54:00:12:34',
    '52:54:00:12:34:5g',
    '5254.0012.3456',
    '52:54-00:12:34:56',
    '',
    '525400123456',
  ]) {
    assert.throws(
      () => parseMac(bad, 'macaddress'),
      (e: unknown) => e instanceof CloudStackError && e.httpCode === 431 && e.message.includes('macaddress'),
      bad,
    );
  }
  assert.throws(() => parseMac('01:00:5e:00:00:01'), /multicast/);
  assert.throws(() => parseMac('ff:ff:ff:ff:ff:ff'), /multicast or broadcast/);
  assert.equal(parseMac('01:00:5e:00:00:01', 'mac', { unicast: false }), 0x01005e000001n);
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }), (v) => {
      assert.equal(parseMac(formatMac(v), 'mac', { unicast: false }), v);
    }),
    { numRuns: 300 },
  );
});

test('generated MACs: documented layout, locally administered unicast, unique per (zone, sequence)', () => {
  assert.equal(macFromSequence(1, 1), '0e:01:00:00:00:01');
  assert.equal(macFromSequence(0x123, 0xdeadbeef), '1e:23:de:ad:be:ef');
  assert.equal(macFromSequence(MAX_MAC_ZONE, MAX_MAC_SEQUENCE), 'fe:ff:ff:ff:ff:ff');
  const key = fc.tuple(
    fc.integer({ min: 0, max: MAX_MAC_ZONE }),
    fc.integer({ min: 0, max: MAX_MAC_SEQUENCE }),
  );
  fc.assert(
    fc.property(key, key, ([z1, s1], [z2, s2]) => {
      const a = macFromSequence(z1, s1);
      const b = macFromSequence(z2, s2);
      assert.equal(a === b, z1 === z2 && s1 === s2);
      const v = parseMac(a); // unicast, or parseMac would throw
      assert.equal((v >> 41n) & 1n, 1n, 'locally administered');
      assert.deepEqual(macZoneAndSequence(a), { zoneId: z1, seq: s1 });
      assert.notEqual(a.slice(0, 5), '02:00', "never CloudStack's own prefix");
      assert.notEqual(a.slice(0, 8), '52:54:00', "never QEMU's");
    }),
    { numRuns: 2000 },
  );
  assert.equal(macZoneAndSequence('52:54:00:12:34:56'), undefined);
});

test('MAC sequence exhaustion is InsufficientAddressCapacity', () => {
  assert.throws(
    () => macFromSequence(3, MAX_MAC_SEQUENCE + 1),
    (e: unknown) => e instanceof CloudStackError && e.httpCode === 533 && /mac addresses/i.test(e.message),
  );
  assert.throws(
    () => macFromSequence(MAX_MAC_ZONE + 1, 0),
    (e: unknown) => e instanceof CloudStackError && e.httpCode === 533,
  );
  assert.throws(() => macFromSequence(1, -1), RangeError);
  assert.throws(() => macFromSequence(1, 1.5), RangeError);
});

test('EUI-64 and SLAAC vectors', () => {
  assert.equal(eui64InterfaceId('52:54:00:12:34:56'), 0x505400fffe123456n);
  assert.equal(eui64InterfaceId('00:1b:21:3c:4d:5e'), 0x021b21fffe3c4d5en); // RFC 4291 appendix A style
  assert.equal(eui64InterfaceId(0x02000a010203n), 0x0000_0afffe_010203n);
  const p = parseCidr('2001:db8::/64');
  assert.equal(formatIp(slaacAddress(p, '52:54:00:12:34:56')), '2001:db8::5054:ff:fe12:3456');
  assert.equal(
    formatIp(slaacAddress(parseCidr('fd00:1:2:3::/64'), '0e:01:00:00:00:01')),
    'fd00:1:2:3:c01:ff:fe00:1',
  );
  assert.throws(
    () => slaacAddress(parseCidr('2001:db8::/56'), '52:54:00:12:34:56', 'ip6cidr'),
    (e: unknown) => e instanceof CloudStackError && e.httpCode === 431 && /ip6cidr/.test(e.message),
  );
  assert.throws(() => slaacAddress(parseCidr('10.0.0.0/24'), '52:54:00:12:34:56'), /IPv6 \/64/);
  // distinct MACs give distinct addresses inside the /64
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }),
      fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }),
      (a, b) => {
        const x = slaacAddress(p, a).value;
        assert.equal(x >> 64n, p.network >> 64n);
        assert.equal(x === slaacAddress(p, b).value, a === b);
      },
    ),
    { numRuns: 300 },
  );
});

test('DUID-LL (NetUtils.getDuidLL)', () => {
  assert.equal(duidLL('52:54:00:AB:CD:EF'), '00:03:00:01:52:54:00:ab:cd:ef');
  assert.equal(duidLL(0x0e0100000001n), '00:03:00:01:0e:01:00:00:00:01');
});
