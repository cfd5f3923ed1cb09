import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatorDriver } from './simulator.js';
import { baseState, hostFor } from '../agent/testing/fixtures.js';
import { diffStates } from '../agent/desired-state.js';
import type { RouterRuntime } from './types.js';

const runtime = (id: number): RouterRuntime => ({ id, name: `r-${id}-VM`, publicNics: [] }) as never;

test('simulated routers keep a bounded set of states in memory and read the rest back from disk', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-sim-'));
  // Room for one router's two hosts: the other router's state is evicted at every push.
  const driver = new SimulatorDriver({ dataDir: dir, stateCacheHosts: 2 });
  try {
    const a = await driver.ensureRouter(runtime(1));
    const b = await driver.ensureRouter(runtime(2));
    const first = baseState();
    assert.equal((await a.pushFull(first)).ok, true);
    assert.equal((await b.pushFull(baseState({ router: { name: 'r-2-VM', guestIp: '10.1.0.1' } }))).ok, true);

    // a's state was evicted by b's: a delta still applies on it, read back from its file.
    const next = baseState({ generation: 2, hosts: [...first.hosts, hostFor(3)] });
    const pushed = await a.pushDelta(diffStates(first, next));
    assert.equal(pushed.ok, true, JSON.stringify(pushed));
    const simA = driver.routers.get(1)!;
    assert.deepEqual(
      simA.state!.hosts.map((h) => h.hostname),
      ['vm1', 'vm2', 'vm3'],
    );
    assert.equal(simA.state!.generation, 2);
    // The same content pushed whole: the same hash as the delta gave.
    const whole = await a.pushFull(next);
    assert.equal(whole.ok && whole.status.hash, pushed.ok && pushed.status.hash);

    // A new generation of the same content, evicted, then read back: the generation is the new one.
    const same = { ...next, generation: 3 };
    assert.equal((await a.pushFull(same)).ok, true);
    assert.equal(
      (await b.pushFull(baseState({ generation: 2, router: { name: 'r-2-VM', guestIp: '10.1.0.1' } }))).ok,
      true,
    );
    assert.equal(simA.state!.generation, 3);
    assert.equal((await a.getStatus()).generation, 3);
    // An older generation is refused without reading the state.
    const stale = await a.pushFull({ ...next, generation: 1 });
    assert.equal(!stale.ok && stale.error, 'StaleGeneration');

    // Destroyed: nothing left in memory or on disk.
    await driver.destroyRouter(runtime(1));
    assert.equal(simA.state, null);
    assert.equal(driver.routers.has(1), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
