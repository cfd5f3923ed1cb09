import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { golden, goldenCtx } from '../../testing/golden.js';
import {
  forward,
  lbRule,
  lbState,
  publicState,
  tcpFirewall,
  vpcEdgeState,
} from '../../testing/nat-fixtures.js';
import { baseState } from '../../testing/fixtures.js';
import { elementChanges, parseRuleset } from './netfilter-applier.js';
import { layered, renderNetfilter, ruleElements } from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

const natGoldenCases = {
  isolated: publicState,
  'egress-allow': () => {
    const s = publicState();
    return { ...s, public: { ...s.public!, egressDefaultAllow: true } };
  },
  'vpc-edge': vpcEdgeState,
  // haproxy's ports: let in on the input path where a firewall rule marks them (lb-1: fw-lb on port 80).
  lb: lbState,
  // In a VPC the load balancer rule opens its port itself, from its own sources.
  'vpc-edge-lb': () => {
    const s = vpcEdgeState();
    const lb = lbRule('lb-1', '203.0.113.10', 80, 8080, ['10.1.0.11'], { sourceCidrs: ['192.0.2.0/24'] });
    return { ...s, rules: [...s.rules!, lb].sort((a, b) => (a.id < b.id ? -1 : 1)) };
  },
};

describe('netfilter render', () => {
  for (const [name, make] of Object.entries(natGoldenCases))
    it(`golden: ${name}`, () => golden(testdata, `${name}.nft`, renderNetfilter(make(), goldenCtx)));

  it('a load balancer rule has no elements for the short path (haproxy must see it)', () => {
    const lb = lbRule('lb-9', '203.0.113.10', 81, 81, ['10.1.0.11']);
    assert.equal(ruleElements(publicState(), lb), null);
  });

  it('renders nothing without a public side or VPC', () => {
    assert.equal(renderNetfilter(baseState(), goldenCtx), '');
  });

  it('spreads overlapping elements over layers, one layer when none overlap', () => {
    const d = (lo: number, hi: number) => ({ text: `${lo}-${hi}`, lo, hi });
    const ip = { text: '1.2.3.4', lo: 1, hi: 1 };
    const other = { text: '1.2.3.5', lo: 2, hi: 2 };
    assert.deepEqual(
      layered(
        [
          [ip, d(80, 90)],
          [ip, d(85, 100)],
          [other, d(85, 100)],
          [ip, d(91, 95)],
          [ip, d(80, 90)],
        ],
        0,
      ),
      [['1.2.3.4 . 80-90', '1.2.3.5 . 85-100', '1.2.3.4 . 91-95'], ['1.2.3.4 . 85-100']],
    );
  });
});

describe('netfilter applier: element changes', () => {
  it('a change of rules only keeps the skeleton and becomes element deletes and adds', () => {
    const s = publicState();
    const before = parseRuleset(renderNetfilter(s, goldenCtx));
    const rules = s.rules!.filter((r) => r.id !== 'pf-2');
    rules.push(forward('pf-3', 'tcp', [443, 443], [8443, 8443]));
    const after = parseRuleset(renderNetfilter({ ...s, rules }, goldenCtx));
    assert.equal(after.skeleton, before.skeleton);
    assert.equal(
      elementChanges(before.sets, after.sets),
      [
        'delete element ip stacknet_nat pf_dnat { 203.0.113.12 . udp . 1000, 203.0.113.12 . udp . 1001, 203.0.113.12 . udp . 1002 }',
        'add element ip stacknet_nat pf_dnat { 203.0.113.12 . tcp . 443 : 10.1.0.12 . 8443 }',
        '',
      ].join('\n'),
    );
  });

  it('a new rule’s short-path elements are the ones the full render holds', () => {
    const s = publicState();
    const fw = tcpFirewall('fw-9', '203.0.113.12', 443, ['192.0.2.0/24']);
    const full = parseRuleset(renderNetfilter({ ...s, rules: [...s.rules!, fw] }, goldenCtx)).sets;
    for (const e of ruleElements(s, fw)!) assert.ok(full.get(`${e.table} ${e.set}`)?.has(e.text), e.text);
  });
});
