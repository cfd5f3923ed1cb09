import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CloudStackError } from '../errors/catalogue.js';
import {
  checkNoOverlapWithOthers,
  checkShrinkKeepsUsed,
  formatVnetRanges,
  intersectSpans,
  parseDedicatedSpan,
  parseVnetRanges,
  subtractSpans,
  totalVnets,
} from './vnet-ranges.js';

const refused = (fn: () => unknown, text: RegExp) =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof CloudStackError && e.httpCode === 431 && text.test(e.message),
  );

test('parses and formats VLAN ranges', () => {
  const spans = parseVnetRanges('300-310, 100-199,250', 'VLAN');
  assert.deepEqual(spans, [
    { start: 100, end: 199 },
    { start: 250, end: 250 },
    { start: 300, end: 310 },
  ]);
  assert.equal(formatVnetRanges(spans), '100-199,250,300-310');
  assert.equal(totalVnets(spans), 100 + 1 + 11);
});

test('refuses malformed, reversed, out-of-range and self-overlapping ranges', () => {
  refused(() => parseVnetRanges('100-', 'VLAN'), /'100-' is not a range/);
  refused(() => parseVnetRanges('abc', 'VLAN'), /not a range/);
  refused(() => parseVnetRanges('200-100', 'VLAN'), /starts after it ends/);
  refused(() => parseVnetRanges('4000-4095', 'VLAN'), /outside 1-4094/);
  refused(() => parseVnetRanges('100-300,200-250', 'VLAN'), /100-300 and 200-250 overlap/);
  assert.deepEqual(parseVnetRanges('5000-6000', 'VXLAN'), [{ start: 5000, end: 6000 }]);
});

test('refuses ranges overlapping another physical network or stranding a used VLAN', () => {
  const mine = parseVnetRanges('100-199', 'VLAN');
  refused(
    () => checkNoOverlapWithOthers(mine, [{ name: 'pn2', spans: [{ start: 150, end: 160 }] }]),
    /overlaps 150-160 of physical network 'pn2'/,
  );
  checkNoOverlapWithOthers(mine, [{ name: 'pn2', spans: [{ start: 200, end: 300 }] }]);
  refused(
    () => checkShrinkKeepsUsed(mine, [{ vnet: 250, networkName: 'web' }]),
    /VLAN 250 is in use by network 'web'/,
  );
});

test("dedicated spans: subtracted from and intersected with a physical network's ranges", () => {
  const pn = parseVnetRanges('100-199,300-310', 'VLAN');
  const dedicated = [
    { start: 90, end: 100 },
    { start: 150, end: 159 },
    { start: 305, end: 400 },
  ];
  assert.equal(formatVnetRanges(subtractSpans(pn, dedicated)), '101-149,160-199,300-304');
  assert.equal(formatVnetRanges(intersectSpans(dedicated, pn)), '100,150-159,305-310');
  assert.deepEqual(subtractSpans(pn, []), pn);
  assert.deepEqual(subtractSpans(pn, [{ start: 1, end: 4094 }]), []);
});

test('a dedicated range is exactly start-end', () => {
  assert.deepEqual(parseDedicatedSpan('500-502'), { start: 500, end: 502 });
  assert.deepEqual(parseDedicatedSpan('7-7'), { start: 7, end: 7 });
  refused(() => parseDedicatedSpan('500'), /startvlan-endvlan/);
  refused(() => parseDedicatedSpan('5-x'), /startvlan-endvlan/);
  refused(() => parseDedicatedSpan('9-3'), /starts after it ends/);
});
