import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../../system.js';
import { golden, goldenCtx } from '../../testing/golden.js';
import { lbState, publicState } from '../../testing/nat-fixtures.js';
import { parseShowStat } from './haproxy-applier.js';
import { haproxyRenderer, renderHaproxy } from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

describe('haproxy render', () => {
  it('golden: TCP, LbCookie with an HTTP check, source stickiness with sources, AppCookie', () => {
    golden(testdata, 'lb.haproxy.cfg', renderHaproxy(lbState(), goldenCtx)!);
  });

  it('is accepted by haproxy -c as rendered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'haproxy-render-'));
    try {
      const file = join(dir, 'haproxy.cfg');
      writeFileSync(file, renderHaproxy(lbState(), { ...goldenCtx, dataDir: dir })!);
      const r = await run('haproxy', ['-c', '-q', '-f', file]);
      assert.equal(r.code, 0, r.stderr || r.stdout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renders nothing, and adds nothing to the hash, without a load balancer rule', () => {
    assert.equal(renderHaproxy(publicState(), goldenCtx), null);
    assert.deepEqual(haproxyRenderer.digest(null, publicState()), []);
  });

  it('reads member health from show stat', () => {
    const csv = [
      '# pxname,svname,qcur,status,weight',
      'fe_lb-1,FRONTEND,,OPEN,',
      'lb_lb-1,10.1.0.11,0,UP,1',
      'lb_lb-1,10.1.0.12,0,DOWN 1/2,1',
      'lb_lb-1,10.1.0.13,0,no check,1',
      'lb_lb-1,BACKEND,0,UP,2',
      '',
    ].join('\n');
    assert.deepEqual(parseShowStat(csv), {
      'lb-1': { '10.1.0.11': 'UP', '10.1.0.12': 'DOWN', '10.1.0.13': 'UP' },
    });
  });
});
