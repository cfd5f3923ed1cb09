import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CloudStackError } from '../errors/catalogue.js';
import type { Family } from './address.js';
import { formatIp, maxValue, parseIp } from './address.js';
import type { Cidr } from './cidr.js';
import {
  broadcastAddress,
  checkGatewayInCidr,
  cidrContains,
  cidrContainsCidr,
  cidrFromGatewayAndNetmask,
  cidrSize,
  cidrsOverlap,
  firstHost,
  formatCidr,
  hostCount,
  lastHost,
  makeCidr,
  netmaskToPrefix,
  networkAddress,
  parseCidr,
  prefixToNetmask,
} from './cidr.js';

function assertInvalid(fn: () => unknown, param: string, value: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CloudStackError, `expected a CloudStackError, got ${String(e)}`);
    assert.equal(e.httpCode, 431);
    assert.ok(e.message.includes(param), e.message);
    assert.ok(e.message.includes(value), e.message);
    return true;
  });
}

const cidrArb = (family: Family): fc.Arbitrary<Cidr> =>
  fc
    .tuple(
      fc.bigInt({ min: 0n, max: maxValue(family) }),
      fc.integer({ min: 0, max: family === 4 ? 32 : 128 }),
    )
    .map(([v, p]) => makeCidr(family, v, p));
const anyCidr = fc.oneof(cidrArb(4), cidrArb(6));

test('parseCidr: strict by default, normalising on request', () => {
  assert.deepEqual(parseCidr('10.1.1.0/24'), { family: 4, network: 0x0a010100n, prefix: 24 });
  assert.deepEqual(parseCidr('2001:DB8::/64'), { family: 6, network: 0x20010db8n << 96n, prefix: 64 });
  assert.throws(
    () => parseCidr('10.1.1.5/24', 'guestvmcidr'),
    (e: unknown) =>
      e instanceof CloudStackError && /guestvmcidr/.test(e.message) && /10\.1\.1\.0\/24/.test(e.message),
  );
  assert.equal(formatCidr(parseCidr('10.1.1.5/24', 'cidr', { strict: false })), '10.1.1.0/24');
  assert.equal(formatCidr(parseCidr('2001:db8::1/64', 'cidr', { strict: false })), '2001:db8::/64');
  assert.equal(formatCidr(parseCidr('0.0.0.0/0')), '0.0.0.0/0');
  assert.equal(formatCidr(parseCidr('::/0')), '::/0');
  for (const bad of [
    '10.1.1.0',
    '10.1.1.0/',
    '10.1.1.0/33',
    '10.1.1.0/024',
    '10.1.1.0/-1',
    '10.1.1.0/24/1',
    '10.1.1/24',
    '2001:db8::/129',
    'fe80::%eth0/64',
    '/24',
    '',
    'x/24',
  ]) {
    assertInvalid(() => parseCidr(bad, 'ip6cidr'), 'ip6cidr', bad);
  }
  assertInvalid(() => parseCidr('10.0.0.0/8', 'ip6cidr', { family: 6 }), 'ip6cidr', '10.0.0.0/8');
});

test('netmask ↔ prefix for every prefix; non-contiguous masks rejected', () => {
  for (let p = 0; p <= 32; p++) {
    const mask = prefixToNetmask(p);
    assert.equal(netmaskToPrefix(mask), p, mask);
  }
  assert.equal(prefixToNetmask(24), '255.255.255.0');
  assert.equal(prefixToNetmask(0), '0.0.0.0');
  assert.equal(prefixToNetmask(32), '255.255.255.255');
  assert.equal(prefixToNetmask(23), '255.255.254.0');
  for (const bad of [
    '255.0.255.0',
    '255.255.255.1',
    '0.255.255.255',
    '255.255.253.0',
    '255.255.255',
    'ffff::',
    '',
  ]) {
    assertInvalid(() => netmaskToPrefix(bad), 'netmask', bad);
  }
  assertInvalid(() => netmaskToPrefix('255.0.255.0', 'ip4netmask'), 'ip4netmask', '255.0.255.0');
});

test('network, broadcast, first and last host on /0, /24, /30, /31, /32 (RFC 3021)', () => {
  const show = (text: string) => {
    const c = parseCidr(text);
    return [networkAddress(c), broadcastAddress(c), firstHost(c), lastHost(c)].map(formatIp).join(' ');
  };
  assert.equal(show('10.1.1.0/24'), '10.1.1.0 10.1.1.255 10.1.1.1 10.1.1.254');
  assert.equal(show('10.1.1.4/30'), '10.1.1.4 10.1.1.7 10.1.1.5 10.1.1.6');
  assert.equal(show('10.1.1.4/31'), '10.1.1.4 10.1.1.5 10.1.1.4 10.1.1.5');
  assert.equal(show('10.1.1.4/32'), '10.1.1.4 10.1.1.4 10.1.1.4 10.1.1.4');
  assert.equal(show('0.0.0.0/0'), '0.0.0.0 255.255.255.255 0.0.0.1 255.255.255.254');
  assert.equal(
    show('2001:db8::/64'),
    '2001:db8:: 2001:db8::ffff:ffff:ffff:ffff 2001:db8::1 2001:db8::ffff:ffff:ffff:ffff',
  );
  assert.equal(show('2001:db8::/127'), '2001:db8:: 2001:db8::1 2001:db8:: 2001:db8::1');
  assert.equal(show('2001:db8::1/128'), '2001:db8::1 2001:db8::1 2001:db8::1 2001:db8::1');
  assert.equal(
    show('::/0'),
    ':: ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ::1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  );
  assert.equal(hostCount(parseCidr('10.1.1.0/24')), 254n);
  assert.equal(hostCount(parseCidr('10.1.1.0/31')), 2n);
  assert.equal(hostCount(parseCidr('10.1.1.0/32')), 1n);
  assert.equal(cidrSize(parseCidr('10.0.0.0/8')), 1n << 24n);
  assert.equal(cidrSize(parseCidr('2001:db8::/64')), 1n << 64n);
  assert.equal(cidrSize(parseCidr('::/0')), 1n << 128n);
});

test('first/last host lie inside the CIDR, in order, for every prefix of both families', () => {
  fc.assert(
    fc.property(anyCidr, (c) => {
      const f = firstHost(c).value;
      const l = lastHost(c).value;
      assert.ok(c.network <= f && f <= l && l <= broadcastAddress(c).value);
      assert.ok(cidrContains(c, firstHost(c)) && cidrContains(c, lastHost(c)));
      assert.equal(broadcastAddress(c).value - c.network + 1n, cidrSize(c));
      assert.deepEqual(parseCidr(formatCidr(c)), c);
    }),
    { numRuns: 500 },
  );
});

test('containment and overlap agree with the address-range model', () => {
  const lo = (c: Cidr) => c.network;
  const hi = (c: Cidr) => broadcastAddress(c).value;
  const small = (family: Family) =>
    fc
      .tuple(
        fc.bigInt({ min: 0n, max: 255n }),
        fc.integer({ min: family === 4 ? 24 : 120, max: family === 4 ? 32 : 128 }),
      )
      .map(([v, p]) => makeCidr(family, v, p));
  const pair = fc
    .constantFrom<Family>(4, 6)
    .chain((f) => fc.tuple(small(f), small(f), fc.bigInt({ min: 0n, max: 255n })));
  fc.assert(
    fc.property(pair, ([a, b, v]) => {
      assert.equal(cidrContains(a, v), lo(a) <= v && v <= hi(a));
      assert.equal(cidrContainsCidr(a, b), lo(a) <= lo(b) && hi(b) <= hi(a));
      assert.equal(cidrsOverlap(a, b), lo(a) <= hi(b) && lo(b) <= hi(a));
    }),
    { numRuns: 1000 },
  );
  assert.equal(cidrContains(parseCidr('10.0.0.0/8'), parseIp('::a00:1')), false, 'family matters');
  assert.equal(cidrsOverlap(parseCidr('10.0.0.0/8'), parseCidr('::/0')), false);
});

test('cidrFromGatewayAndNetmask (createNetwork gateway/netmask)', () => {
  assert.equal(formatCidr(cidrFromGatewayAndNetmask('10.1.1.1', '255.255.255.0')), '10.1.1.0/24');
  assert.equal(formatCidr(cidrFromGatewayAndNetmask('192.168.7.254', '255.255.248.0')), '192.168.0.0/21');
  assertInvalid(() => cidrFromGatewayAndNetmask('10.1.1.256', '255.255.255.0'), 'gateway', '10.1.1.256');
  assertInvalid(() => cidrFromGatewayAndNetmask('10.1.1.1', '255.0.255.0'), 'netmask', '255.0.255.0');
  assertInvalid(() => cidrFromGatewayAndNetmask('::1', '255.255.255.0'), 'gateway', '::1');
  assertInvalid(
    () => checkGatewayInCidr(parseIp('10.2.0.1'), parseCidr('10.1.0.0/16')),
    'gateway',
    '10.2.0.1',
  );
  checkGatewayInCidr(parseIp('2001:db8::1'), parseCidr('2001:db8::/64'));
});
