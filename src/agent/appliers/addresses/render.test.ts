import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { baseState } from '../../testing/fixtures.js';
import { golden, goldenCtx, redundantState } from '../../testing/golden.js';
import { publicSide } from '../../testing/public-fixture.js';
import { renderRouter } from '../renderers.js';
import { addressesRenderer } from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const text = (o: unknown) => JSON.stringify(o, null, 2) + '\n';

describe('addresses render', () => {
  it('golden: a standalone router holds its public addresses and routes out via the source-NAT VLAN', () => {
    const out = addressesRenderer.render(baseState({ public: publicSide() }), goldenCtx);
    golden(testdata, 'public.addresses.json', text(out));
    assert.deepEqual(out.public[0]!.addresses, ['203.0.113.10/24', '203.0.113.11/24']);
    assert.deepEqual(out.defaultRoute, { dev: 'eth2', via: '203.0.113.1' });
  });

  it('golden: one of a redundant pair only brings its public interfaces up (keepalived holds the rest)', () => {
    const out = addressesRenderer.render({ ...redundantState(), public: publicSide() }, goldenCtx);
    golden(testdata, 'redundant-public.addresses.json', text(out));
    assert.deepEqual(
      out.public.map((l) => [l.dev, l.addresses.length]),
      [
        ['eth2', 0],
        ['eth3', 0],
      ],
    );
    assert.equal(out.defaultRoute, null);
  });

  it('no public side: nothing public, and the router hash is what it was without one', () => {
    const out = addressesRenderer.render(baseState(), goldenCtx);
    assert.deepEqual(out.public, []);
    assert.equal(out.defaultRoute, null);
    assert.deepEqual(addressesRenderer.digest(out, baseState()), []);
  });

  it('a public address or gateway change changes the router hash', () => {
    const a = baseState({ public: publicSide() });
    const b = baseState({ public: publicSide() });
    b.public!.nics[1]!.addresses.push('198.51.100.141');
    const c = baseState({ public: publicSide() });
    c.public!.nics[0]!.gateway = '203.0.113.254';
    const h = (s: typeof a) => renderRouter(s, goldenCtx).hash;
    assert.notEqual(h(a), h(b));
    assert.notEqual(h(a), h(c));
    assert.notEqual(h(a), h(baseState()));
  });
});
