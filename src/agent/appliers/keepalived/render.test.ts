import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { golden, goldenCases, goldenCtx, redundantState } from '../../testing/golden.js';
import { publicSide } from '../../testing/public-fixture.js';
import { keepalivedRenderer } from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

describe('keepalived render', () => {
  it('golden file of a redundant router; nothing for a single one', () => {
    for (const [name, make] of Object.entries(goldenCases)) {
      const conf = keepalivedRenderer.render(make(), goldenCtx);
      if (name === 'redundant') golden(testdata, `${name}.keepalived.conf`, conf!);
      else assert.equal(conf, null, name);
    }
  });
  it('golden: the public addresses and the default route are held by the primary only (they move with VRRP)', () => {
    const conf = keepalivedRenderer.render({ ...redundantState(), public: publicSide() }, goldenCtx)!;
    golden(testdata, 'redundant-public.keepalived.conf', conf);
    assert.match(conf, /virtual_ipaddress_excluded \{\n {4}203\.0\.113\.10\/24 dev eth2\n/);
    assert.match(conf, /198\.51\.100\.140\/25 dev eth3/);
    assert.match(conf, /virtual_routes \{\n {4}0\.0\.0\.0\/0 via 203\.0\.113\.1 dev eth2\n/);
    // without a public side the file is what it was
    assert.doesNotMatch(keepalivedRenderer.render(redundantState(), goldenCtx)!, /virtual_routes/);
  });
  it('sub-second VRRP adverts switch keepalived to VRRPv3 without authentication', () => {
    const s = redundantState();
    s.router.redundant!.vrrpIntervalSeconds = 0.1;
    const conf = keepalivedRenderer.render(s, goldenCtx)!;
    assert.match(conf, /vrrp_version 3/);
    assert.match(conf, /advert_int 0.1/);
    assert.doesNotMatch(conf, /auth_pass/);
  });
});
