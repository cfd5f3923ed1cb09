/**
 * An agent whose guest interface does not exist yet refuses the state (422, Degraded) and applies it by itself
 * once the interface appears.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { leaseDirFor } from './lease-dir.js';
import { getStatus, pushFull } from './control-client.js';
import { baseState } from './testing/fixtures.js';
import { spawnTestAgent } from './testing/spawn-agent.js';
import { TestNet, eventually, runIn } from '../netns/index.js';

const secret = 'retry-' + Math.random().toString(36).slice(2);

describe('router-agent retries environment failures', { timeout: 60_000 }, () => {
  const net = new TestNet();
  let vr = '';
  let control = '';

  before(async () => {
    vr = await net.namespace('vr');
    const link = await net.hostLink(vr, 'ctl0');
    control = `${link.nsAddress}:3922`;
    const dataDir = await net.tempDir('vr');
    net.removeOnCleanup(leaseDirFor(resolve(dataDir)));
    const agent = spawnTestAgent(net, vr, { control, dataDir, secret, guestInterface: 'gst0' });
    await eventually(
      async () => {
        if (agent.hasExited()) throw new Error(agent.output());
        assert.equal((await fetch(`http://${control}/healthz`)).status, 200);
      },
      { timeoutMs: 20_000 },
    );
  });

  after(async () => {
    await net.cleanup();
  });

  it('a missing guest interface: 422 and Degraded, then applied once the interface exists', async () => {
    const r = await pushFull(control, secret, baseState());
    assert.ok(!r.ok && r.httpStatus === 422 && r.error === 'GuestInterfaceMissing', JSON.stringify(r));
    const s = await getStatus(control, secret);
    assert.equal(s.generation, null);
    assert.equal(s.conditions.find((c) => c.type === 'Degraded')?.reason, 'GuestInterfaceMissing');
    await runIn(vr, ['ip', 'link', 'add', 'gst0', 'type', 'veth', 'peer', 'name', 'gst0p']);
    await runIn(vr, ['ip', 'link', 'set', 'gst0p', 'up']);
    await eventually(
      async () => {
        const s = await getStatus(control, secret);
        assert.equal(s.generation, 1);
        assert.equal(s.dnsmasq.running, true);
        assert.equal(s.conditions.find((c) => c.type === 'Degraded')?.status, false);
      },
      { timeoutMs: 10_000, what: 'retried apply' },
    );
  });
});
