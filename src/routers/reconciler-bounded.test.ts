/**
 * The watch loop's pass over many routers is bounded (issue 16): it never holds more than `passSlots` desired
 * states at once, yet every router converges, a router whose pass fails is retried, and a server stopped in the
 * middle of the pass leaves nothing that the next one does not finish. SQLite: the store is not what is tested.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestStore } from '../store/testing/test-databases.js';
import type { Executor } from '../store/db.js';
import { SimulatorDriver } from '../drivers/simulator.js';
import type { RouterRuntime, RouterTransport } from '../drivers/types.js';
import { eventually } from '../netns/eventually.js';
import { RouterReconciler } from './reconciler.js';
import { insertNetwork, insertRouter, insertVmWithNic, insertZoneAndNetwork } from './testing/fixtures.js';

const ROUTERS = 40;

/** ROUTERS networks with a router and three VMs each; their router ids. */
async function manyRouters(db: Executor): Promise<number[]> {
  const { zoneId } = await insertZoneAndNetwork(db);
  const ids: number[] = [];
  for (let n = 0; n < ROUTERS; n++) {
    // Isolated networks may overlap: every one is the fixtures' 10.1.1.0/24 (its router's guest IP is .1).
    const networkId = await insertNetwork(db, zoneId, { vnet: 1000 + n });
    ids.push(await insertRouter(db, zoneId, networkId));
    for (let v = 0; v < 3; v++) {
      const k = n * 3 + v;
      await insertVmWithNic(db, zoneId, networkId, {
        name: `vm${k}`,
        ip: `10.1.1.${10 + v}`,
        mac: `02:00:00:00:${(k >> 8).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}`,
      });
    }
  }
  return ids;
}

async function converged(db: Executor): Promise<number> {
  const rows = await db
    .selectFrom('routers')
    .select(['id', 'state', 'desired_generation', 'applied_generation'])
    .execute();
  return rows.filter(
    (r) => r.state === 'Running' && Number(r.applied_generation) === Number(r.desired_generation),
  ).length;
}

/** The simulator, with a router whose instance cannot be made the first `failures` times (a host hiccup). */
class FlakyDriver extends SimulatorDriver {
  attempts = new Map<number, number>();
  onEnsure: ((routerId: number) => void) | undefined;
  constructor(
    dataDir: string,
    private readonly flaky: Map<number, number>,
  ) {
    super({ dataDir });
  }
  override async ensureRouter(r: RouterRuntime): Promise<RouterTransport> {
    const n = (this.attempts.get(r.id) ?? 0) + 1;
    this.attempts.set(r.id, n);
    this.onEnsure?.(r.id);
    if (n <= (this.flaky.get(r.id) ?? 0)) throw new Error(`router ${r.name}: no host today (${n})`);
    return super.ensureRouter(r);
  }
}

test('the watch loop holds at most passSlots desired states, converges every router and retries failures', async () => {
  const t = await createTestStore('sqlite');
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-rec-bounded-'));
  let rec: RouterReconciler | undefined;
  try {
    const db = t.store.db;
    const ids = await manyRouters(db);
    const flaky = new Map([
      [ids[3]!, 2],
      [ids[ROUTERS - 1]!, 1],
    ]);
    const driver = new FlakyDriver(dir, flaky);
    rec = new RouterReconciler({
      store: t.store,
      driver,
      passSlots: 3,
      scanPageSize: 7,
      scanIntervalMs: 50,
      maxBackoffMs: 300,
    });
    rec.start();
    await eventually(async () => assert.equal(await converged(db), ROUTERS, 'routers converged'), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: 'every router converged',
    });
    assert.ok(rec.counters.maxStatesHeld >= 1, 'some pass built a state');
    assert.ok(rec.counters.maxStatesHeld <= 3, `at most 3 states at once, saw ${rec.counters.maxStatesHeld}`);
    // Each router serves its own three VMs; the flaky ones were tried again until they did.
    for (const id of ids) assert.equal(driver.routers.get(id)?.state?.hosts.length, 3, `router ${id}`);
    assert.equal(driver.attempts.get(ids[3]!)! >= 3, true);
    assert.equal(driver.attempts.get(ids[ROUTERS - 1]!)! >= 2, true);
  } finally {
    await rec?.stop();
    await t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a server stopped in the middle of the pass loses nothing: the next one finishes it', async () => {
  const t = await createTestStore('sqlite');
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-rec-bounded-'));
  let a: RouterReconciler | undefined;
  let b: RouterReconciler | undefined;
  try {
    const db = t.store.db;
    const ids = await manyRouters(db);
    const driverA = new FlakyDriver(dir, new Map());
    a = new RouterReconciler({
      store: t.store,
      driver: driverA,
      serverId: 'ms-a',
      passSlots: 2,
      scanPageSize: 5,
    });
    // The server goes away as its sixth router is being made.
    let stopping: Promise<void> | undefined;
    let afterStop = 0;
    driverA.onEnsure = () => {
      if (stopping) afterStop++;
      else if (driverA.attempts.size === 6) stopping = a!.stop();
    };
    a.start();
    await eventually(() => assert.ok(stopping), { timeoutMs: 10_000, what: 'server A stopping' });
    await stopping;
    const done = await converged(db);
    assert.ok(done < ROUTERS, `stopped mid-pass (${done} of ${ROUTERS} converged)`);
    assert.equal(afterStop, 0, 'A made no router instance after stopping');
    // A restarted server: the simulated routers died with the old process; everything is rebuilt from the rows.
    const driverB = new SimulatorDriver({ dataDir: dir });
    b = new RouterReconciler({
      store: t.store,
      driver: driverB,
      serverId: 'ms-b',
      passSlots: 2,
      scanPageSize: 5,
    });
    b.start();
    await eventually(async () => assert.equal(await converged(db), ROUTERS, 'routers converged'), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: 'every router converged after the restart',
    });
    for (const id of ids) assert.equal(driverB.routers.get(id)?.state?.hosts.length, 3, `router ${id}`);
    assert.ok(b.counters.maxStatesHeld <= 2);
  } finally {
    await a?.stop();
    await b?.stop();
    await t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pass waiting for its agent to start holds no slot: other routers build and push meanwhile', async () => {
  const t = await createTestStore('sqlite');
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-bounded-'));
  // One slot, and the first router's agent takes as long as the test says to start (a host bringing it up).
  let started!: () => void;
  const agentUp = new Promise<void>((r) => (started = r));
  class SlowStart extends SimulatorDriver {
    slow = 0;
    override async ensureRouter(r: RouterRuntime): Promise<RouterTransport> {
      if (r.id === this.slow) await agentUp;
      return super.ensureRouter(r);
    }
  }
  const driver = new SlowStart({ dataDir: dir });
  const rec = new RouterReconciler({ store: t.store, driver, passSlots: 1 });
  try {
    const [slow, ...others] = await manyRouters(t.store.db);
    driver.slow = slow!;
    const waiting = rec.reconcile(slow!);
    for (const id of others.slice(0, 5)) assert.equal(await rec.reconcile(id), 'pushed');
    started();
    assert.equal(await waiting, 'pushed');
    assert.equal(rec.counters.maxStatesHeld, 1);
  } finally {
    await rec.stop();
    await t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
