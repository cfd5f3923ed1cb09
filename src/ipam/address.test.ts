import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CloudStackError } from '../errors/catalogue.js';
import type { IpAddress } from './address.js';
import {
  addressFromKey,
  addressKey,
  formatIp,
  isIpv4,
  isIpv6,
  maxValue,
  parseIp,
  parseIpOf,
} from './address.js';

const v4 = fc.bigInt({ min: 0n, max: maxValue(4) }).map((value): IpAddress => ({ family: 4, value }));
const v6 = fc
  .oneof(
    fc.bigInt({ min: 0n, max: maxValue(6) }),
    // addresses with zero runs, where compression rules matter
    fc
      .array(fc.constantFrom(0, 0, 0, 1, 0xffff, 0xdb8), { minLength: 8, maxLength: 8 })
      .map((ws) => ws.reduce((v, w) => (v << 16n) | BigInt(w), 0n)),
  )
  .map((value): IpAddress => ({ family: 6, value }));
const anyIp = fc.oneof(v4, v6);

function assertInvalid(fn: () => unknown, param: string, value: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CloudStackError, `expected a CloudStackError, got ${String(e)}`);
    assert.equal(e.httpCode, 431);
    assert.equal(e.csErrorCode, 4350);
    assert.ok(e.message.includes(param), e.message);
    assert.ok(e.message.includes(value), e.message);
    return true;
  });
}

test('RFC 5952 canonical text', () => {
  const vectors: [string, string][] = [
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8::0001', '2001:db8::1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['::', '::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed (4.2.2)
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'], // longest run wins
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:1:0:0', '2001:db8::1:1:0:0'], // first run on ties (4.2.3)
    ['2001:DB8:AA::BB', '2001:db8:aa::bb'], // lowercase (4.3)
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'], // IPv4-mapped (5)
    ['::FFFF:0102:0304', '::ffff:1.2.3.4'],
    ['::1.2.3.4', '::102:304'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['fe80::1:2', 'fe80::1:2'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1:0:0:0:0:0:0:1', '1::1'],
    ['0:1:0:1:0:1:0:1', '0:1:0:1:0:1:0:1'],
  ];
  for (const [input, canonical] of vectors) {
    assert.equal(formatIp(parseIp(input)), canonical, input);
  }
});

test('IPv4 dotted quads', () => {
  assert.deepEqual(parseIp('10.1.2.3'), { family: 4, value: 0x0a010203n });
  assert.deepEqual(parseIp('0.0.0.0'), { family: 4, value: 0n });
  assert.deepEqual(parseIp('255.255.255.255'), { family: 4, value: 0xffffffffn });
  assert.equal(formatIp({ family: 4, value: 0xc0a80001n }), '192.168.0.1');
});

test('malformed addresses are InvalidParameterValue naming the parameter and the value', () => {
  const bad = [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    '1.2.3.010',
    '0x1.2.3.4',
    '1.2.3.256',
    '1.2.3.-1',
    '1.2.3.4 ',
    ' 1.2.3.4',
    '1..3.4',
    '10',
    'abc',
    '1::2::3',
    ':::',
    ':1',
    '1:',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '::1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7::8',
    '12345::',
    'g::1',
    'fe80::1%eth0',
    'fe80::1%1',
    '1.2.3.4::',
    '::1.2.3.4:1',
    '::1.2.3',
    '::01.2.3.4',
    '2001:db8::/64',
    '[::1]',
  ];
  for (const text of bad) {
    assertInvalid(() => parseIp(text, 'startip'), 'startip', text);
    assert.equal(isIpv4(text) || isIpv6(text), false, text);
  }
  assertInvalid(() => parseIpOf(6, '10.0.0.1', 'ip6gateway'), 'ip6gateway', '10.0.0.1');
  assertInvalid(() => parseIpOf(4, '::1', 'gateway'), 'gateway', '::1');
});

test('isIpv4 / isIpv6', () => {
  assert.ok(isIpv4('192.0.2.1'));
  assert.ok(!isIpv4('::1'));
  assert.ok(isIpv6('::1'));
  assert.ok(isIpv6('::ffff:192.0.2.1'));
  assert.ok(!isIpv6('192.0.2.1'));
});

/** RFC 5952 4.2: '::' stands for the longest zero run (≥ 2), the first one on ties; no other run is as long. */
function assertRfc5952Compression(text: string): void {
  const runs = (groups: string[]): number[] => {
    const out: number[] = [];
    let n = 0;
    for (const g of [...groups, 'x']) {
      if (g === '0') n++;
      else if (n > 0) {
        out.push(n);
        n = 0;
      }
    }
    return out;
  };
  const split = (s: string): string[] => (s === '' ? [] : s.split(':'));
  if (!text.includes('::')) {
    assert.ok(
      runs(split(text)).every((n) => n < 2),
      `uncompressed zero run in ${text}`,
    );
    return;
  }
  const [head = '', tail = ''] = text.split('::');
  const shown = split(head).length + split(tail).length;
  const compressed = 8 - shown;
  assert.ok(compressed >= 2, `'::' stands for a single group in ${text}`);
  assert.ok(
    runs(split(head)).every((n) => n < compressed),
    `a longer or equal run precedes '::' in ${text}`,
  );
  assert.ok(
    runs(split(tail)).every((n) => n <= compressed),
    `a longer run follows '::' in ${text}`,
  );
}

test('parse ∘ format is the identity and format is idempotent (IPv4 and IPv6)', () => {
  fc.assert(
    fc.property(anyIp, (a) => {
      const text = formatIp(a);
      assert.deepEqual(parseIp(text), a);
      assert.equal(formatIp(parseIp(text)), text);
      if (a.family === 6) {
        assert.equal(text, text.toLowerCase());
        assert.ok(!/(^|:)0[0-9a-f]/.test(text), `leading zero in ${text}`);
        assertRfc5952Compression(text);
      }
    }),
    { numRuns: 2000 },
  );
});

test('any textual variant of an IPv6 address parses to the same value', () => {
  fc.assert(
    fc.property(v6, fc.boolean(), fc.boolean(), (a, upper, padded) => {
      const words: string[] = [];
      for (let i = 7; i >= 0; i--) {
        let w = ((a.value >> BigInt(i * 16)) & 0xffffn).toString(16);
        if (padded) w = w.padStart(4, '0');
        words.push(upper ? w.toUpperCase() : w);
      }
      assert.equal(parseIp(words.join(':')).value, a.value);
    }),
    { numRuns: 500 },
  );
});

test('address keys are fixed-width, invert, and sort like the values', () => {
  fc.assert(
    fc.property(anyIp, anyIp, (a, b) => {
      const ka = addressKey(a);
      assert.match(ka, /^[0-9a-f]{32}$/);
      assert.deepEqual(addressFromKey(a.family, ka), a);
      const kb = addressKey(b);
      assert.equal(ka < kb, a.value < b.value);
    }),
    { numRuns: 1000 },
  );
  assert.equal(addressKey(parseIp('10.0.0.1')), '0000000000000000000000000a000001');
  assert.throws(() => addressFromKey(4, '0000000000000000000000010a000001'), RangeError);
  assert.throws(() => addressFromKey(4, 'A000'), RangeError);
});
