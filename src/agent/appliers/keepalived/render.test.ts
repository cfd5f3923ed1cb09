import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { golden, goldenCases, goldenCtx, redundantState } from '../../testing/golden.js';
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
  it('sub-second VRRP adverts switch keepalived to VRRPv3 without authentication', () => {
    const s = redundantState();
    s.router.redundant!.vrrpIntervalSeconds = 0.1;
    const conf = keepalivedRenderer.render(s, goldenCtx)!;
    assert.match(conf, /vrrp_version 3/);
    assert.match(conf, /advert_int 0.1/);
    assert.doesNotMatch(conf, /auth_pass/);
  });
});
