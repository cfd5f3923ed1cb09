import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { golden, goldenCtx } from '../../testing/golden.js';
import { publicState, vpcEdgeState } from '../../testing/nat-fixtures.js';
import { baseState } from '../../testing/fixtures.js';
import { layered, renderNetfilter } from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

export const natGoldenCases = {
  isolated: publicState,
  'egress-allow': () => {
    const s = publicState();
    return { ...s, public: { ...s.public!, egressDefaultAllow: true } };
  },
  'vpc-edge': vpcEdgeState,
};

describe('netfilter render', () => {
  for (const [name, make] of Object.entries(natGoldenCases))
    it(`golden: ${name}`, () => golden(testdata, `${name}.nft`, renderNetfilter(make(), goldenCtx)));

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
