import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { transaction } from '../store/db.js';
import { SimulatorDriver } from '../drivers/simulator.js';
import { RouterReconciler } from './reconciler.js';
import { bumpNetworkRouters, cloudIdentifier, routerById } from './repository.js';
import { insertRouter, insertVmWithNic, insertZoneAndNetwork } from './testing/fixtures.js';

for (const kind of testDbKinds()) {
  test(`reconciler converges, sends deltas, rebuilds after reboot, heals drift, honours leases (${kind})`, async () => {
    const t = await createTestStore(kind);
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-rec-'));
    const driver = new SimulatorDriver({ dataDir: dir });
    const a = new RouterReconciler({ store: t.store, driver, serverId: 'ms-a', leaseMs: 400 });
    const b = new RouterReconciler({ store: t.store, driver, serverId: 'ms-b', leaseMs: 400 });
    try {
      const db = t.store.db;
      const { zoneId, networkId } = await insertZoneAndNetwork(db);
      const rid = await insertRouter(db, zoneId, networkId);
      await insertVmWithNic(db, zoneId, networkId, {
        name: 'vm1',
        ip: '10.1.1.10',
        mac: '02:00:00:00:00:01',
      });

      assert.equal(await a.reconcile(rid), 'pushed');
      let row = (await routerById(db, rid))!;
      assert.equal(row.state, 'Running');
      assert.equal(Number(row.applied_generation), Number(row.desired_generation));
      const sim = driver.routers.get(rid)!;
      assert.deepEqual(
        sim.state!.hosts.map((h) => h.hostname),
        ['vm1'],
      );
      assert.equal(await a.reconcile(rid), 'converged');

      // A change bumps the generation in its own transaction; the next pass sends a delta.
      await transaction(t.store, async (tx) => {
        await insertVmWithNic(tx, zoneId, networkId, {
          name: 'vm2',
          ip: '10.1.1.11',
          mac: '02:00:00:00:00:02',
        });
        await bumpNetworkRouters(tx, networkId);
      });
      // Concurrent calls share one pass (at most one reconcile per router in flight).
      const [o1, o2] = await Promise.all([a.reconcile(rid), a.reconcile(rid)]);
      assert.equal(o1, o2);
      assert.equal(a.counters.deltaPushes, 1);
      assert.deepEqual(
        driver.routers.get(rid)!.state!.hosts.map((h) => h.hostname),
        ['vm1', 'vm2'],
      );

      // Reboot: the instance comes back empty and is rebuilt from the database.
      await driver.rebootRouter({ id: rid, name: row.name } as never);
      assert.equal(await a.reconcile(rid), 'pushed');
      assert.equal(driver.routers.get(rid)!.state!.hosts.length, 2);

      // Drift: the agent serves something else under the recorded generation.
      driver.routers.get(rid)!.hash = 'tampered';
      assert.equal(await a.reconcile(rid), 'pushed');
      assert.equal(a.counters.driftHealed, 1);
      row = (await routerById(db, rid))!;
      assert.equal(Number(row.applied_generation), Number(row.desired_generation));
      assert.notEqual(row.applied_hash, 'tampered');

      // Leases: while ms-a holds the router, ms-b leaves it alone; once the lease lapses, ms-b takes over.
      assert.equal(await b.reconcile(rid), 'not-owner');
      await new Promise((r) => setTimeout(r, 450));
      assert.equal(await b.reconcile(rid), 'converged');
      assert.equal((await routerById(db, rid))!.lease_owner, 'ms-b');
    } finally {
      await a.stop();
      await b.stop();
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`a row the router cannot serve (bad MAC) is quarantined and reported; later changes still converge (${kind})`, async () => {
    const t = await createTestStore(kind);
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-rec-'));
    const driver = new SimulatorDriver({ dataDir: dir });
    const rec = new RouterReconciler({ store: t.store, driver, serverId: 'ms-q' });
    try {
      const db = t.store.db;
      const { zoneId, networkId } = await insertZoneAndNetwork(db);
      const rid = await insertRouter(db, zoneId, networkId);
      await insertVmWithNic(db, zoneId, networkId, {
        name: 'vm1',
        ip: '10.1.1.10',
        mac: '02:00:00:00:00:01',
      });
      // Rows that never went through the API's checks (an older server, a hand edit): no MAC, a broadcast MAC.
      await insertVmWithNic(db, zoneId, networkId, { name: 'bad1', ip: '10.1.1.11', mac: 'not-a-mac' });
      await insertVmWithNic(db, zoneId, networkId, {
        name: 'bad2',
        ip: '10.1.1.12',
        mac: 'ff:ff:ff:ff:ff:ff',
      });
      assert.equal(await rec.reconcile(rid), 'pushed');
      let row = (await routerById(db, rid))!;
      assert.equal(Number(row.applied_generation), Number(row.desired_generation), 'not refused as a whole');
      assert.equal(row.last_error, null);
      const health = JSON.parse(row.health!) as {
        quarantined: { key: string; field: string }[];
        conditions: { type: string; status: boolean; reason: string; message: string }[];
      };
      assert.deepEqual(
        health.quarantined.map((q) => [q.key, q.field]),
        [
          ['not-a-mac', 'mac'],
          ['ff:ff:ff:ff:ff:ff', 'mac'],
        ],
      );
      const degraded = health.conditions.find((c) => c.type === 'Degraded')!;
      assert.equal(degraded.reason, 'EntriesQuarantined');
      assert.match(degraded.message, /not-a-mac/);
      assert.deepEqual(
        driver.routers.get(rid)!.state!.hosts.map((h) => h.hostname),
        ['vm1'],
      );

      // The next VM change in the network converges at once (a delta) instead of waiting on a refused state.
      await transaction(t.store, async (tx) => {
        await insertVmWithNic(tx, zoneId, networkId, {
          name: 'vm3',
          ip: '10.1.1.13',
          mac: '02:00:00:00:00:03',
        });
        await bumpNetworkRouters(tx, networkId);
      });
      assert.equal(await rec.reconcile(rid), 'pushed');
      row = (await routerById(db, rid))!;
      assert.equal(Number(row.applied_generation), Number(row.desired_generation));
      assert.deepEqual(
        driver.routers.get(rid)!.state!.hosts.map((h) => h.hostname),
        ['vm1', 'vm3'],
      );
      assert.equal((JSON.parse(row.health!) as { quarantined: unknown[] }).quarantined.length, 2);

      // Fixing the rows clears the report.
      await transaction(t.store, async (tx) => {
        await tx
          .updateTable('nics')
          .set({ mac: '02:00:00:00:00:02' })
          .where('mac', '=', 'not-a-mac')
          .execute();
        await tx.deleteFrom('nics').where('mac', '=', 'ff:ff:ff:ff:ff:ff').execute();
        await bumpNetworkRouters(tx, networkId);
      });
      assert.equal(await rec.reconcile(rid), 'pushed');
      row = (await routerById(db, rid))!;
      assert.deepEqual((JSON.parse(row.health!) as { quarantined: unknown[] }).quarantined, []);
      assert.deepEqual(
        driver.routers
          .get(rid)!
          .state!.hosts.map((h) => h.hostname)
          .sort(),
        ['bad1', 'vm1', 'vm3'],
      );
    } finally {
      await rec.stop();
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`guests get cloud-identifier CloudStack-{<cloud.identifier>}, one id per installation (${kind})`, async () => {
    const t = await createTestStore(kind);
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-rec-'));
    const driver = new SimulatorDriver({ dataDir: dir });
    const rec = new RouterReconciler({ store: t.store, driver, serverId: 'ms-c' });
    try {
      const db = t.store.db;
      const { zoneId, networkId } = await insertZoneAndNetwork(db);
      const rid = await insertRouter(db, zoneId, networkId);
      await insertVmWithNic(db, zoneId, networkId, {
        name: 'vm1',
        ip: '10.1.1.10',
        mac: '02:00:00:00:00:01',
      });
      // Two servers making it at once keep one.
      const ids = await Promise.all([cloudIdentifier(db), cloudIdentifier(db), cloudIdentifier(db)]);
      assert.equal(new Set(ids).size, 1);
      assert.match(ids[0]!, /^[0-9a-f-]{36}$/);
      assert.equal(await rec.reconcile(rid), 'pushed');
      const md = driver.routers.get(rid)!.state!.metadata['10.1.1.10']!.metaData;
      assert.equal(md['cloud-identifier'], `CloudStack-{${ids[0]}}`);
    } finally {
      await rec.stop();
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`the watch loop converges without being asked and stops/destroys instances (${kind})`, async () => {
    const t = await createTestStore(kind);
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-rec-'));
    const driver = new SimulatorDriver({ dataDir: dir });
    const rec = new RouterReconciler({ store: t.store, driver, scanIntervalMs: 50, resyncMs: 100 });
    try {
      const db = t.store.db;
      const { zoneId, networkId } = await insertZoneAndNetwork(db);
      const rid = await insertRouter(db, zoneId, networkId);
      rec.start();
      const until = async (pred: () => Promise<boolean>) => {
        const deadline = Date.now() + 5000;
        while (!(await pred())) {
          if (Date.now() > deadline) throw new Error('not converged in 5 s');
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await until(async () => (await routerById(db, rid))!.state === 'Running');
      // Reboot behind the server's back: the resync notices (no generation) and re-pushes.
      driver.routers.get(rid)!.state = null;
      driver.routers.get(rid)!.hash = null;
      await until(async () => driver.routers.get(rid)?.state !== null);
      await db.updateTable('routers').set({ state: 'Stopping' }).where('id', '=', rid).execute();
      await until(async () => (await routerById(db, rid))!.state === 'Stopped');
      assert.equal(driver.routers.get(rid)!.running, false);
      await db
        .updateTable('routers')
        .set({ state: 'Destroyed', removed: Date.now() })
        .where('id', '=', rid)
        .execute();
      await until(async () => (await routerById(db, rid))!.state === 'Expunged');
      assert.equal(driver.routers.has(rid), false);
    } finally {
      await rec.stop();
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** A simulator whose next ensureRouter or stopRouter waits until the test lets it go on. */
class GatedSimulator extends SimulatorDriver {
  gate: Promise<void> | null = null;
  entered: (() => void) | null = null;
  override async ensureRouter(r: Parameters<SimulatorDriver['ensureRouter']>[0]) {
    await this.wait();
    return super.ensureRouter(r);
  }
  override async stopRouter(r: Parameters<SimulatorDriver['stopRouter']>[0]) {
    await this.wait();
    return super.stopRouter(r);
  }
  private async wait(): Promise<void> {
    this.entered?.();
    const g = this.gate;
    this.gate = null;
    if (g) await g;
  }
  /** Holds the next call; resolves once a pass is inside it, with the function that lets it go on. */
  hold(): Promise<() => void> {
    let release!: () => void;
    this.gate = new Promise((r) => (release = r));
    return new Promise((r) => {
      this.entered = () => {
        this.entered = null;
        r(release);
      };
    });
  }
}

for (const kind of testDbKinds()) {
  test(`a stop or start committed while a pass runs is not overwritten by that pass's stale state (${kind})`, async () => {
    const t = await createTestStore(kind);
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-rec-'));
    const driver = new GatedSimulator({ dataDir: dir });
    const rec = new RouterReconciler({ store: t.store, driver, serverId: 'ms-a' });
    try {
      const db = t.store.db;
      const { zoneId, networkId } = await insertZoneAndNetwork(db);
      const rid = await insertRouter(db, zoneId, networkId);
      const setState = (state: 'Starting' | 'Stopping') =>
        db.updateTable('routers').set({ state }).where('id', '=', rid).execute();

      // A start pass read Starting; stopRouter commits Stopping before the pass records Running.
      await setState('Starting');
      let entered = driver.hold();
      let pass = rec.reconcile(rid);
      (await entered)();
      await setState('Stopping');
      // (the pass is dirty-free: it was not asked again, so it ends after recording what it saw)
      assert.equal(await pass, 'pushed');
      assert.equal((await routerById(db, rid))!.state, 'Stopping', 'the stop is not overwritten by Running');
      assert.equal(await rec.reconcile(rid), 'stopped');
      assert.equal((await routerById(db, rid))!.state, 'Stopped');

      // A stop pass read Stopping; startRouter commits Starting before the pass records Stopped.
      await setState('Stopping');
      entered = driver.hold();
      pass = rec.reconcile(rid);
      (await entered)();
      await transaction(t.store, async (tx) => {
        await tx.updateTable('routers').set({ state: 'Starting' }).where('id', '=', rid).execute();
        await bumpNetworkRouters(tx, networkId);
      });
      assert.equal(await pass, 'stopped');
      assert.equal((await routerById(db, rid))!.state, 'Starting', 'the start is not overwritten by Stopped');
      assert.equal(await rec.reconcile(rid), 'pushed');
      assert.equal((await routerById(db, rid))!.state, 'Running');
    } finally {
      await rec.stop();
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
