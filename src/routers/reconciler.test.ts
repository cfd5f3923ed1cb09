import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { transaction } from '../store/db.js';
import { SimulatorDriver } from '../drivers/simulator.js';
import { RouterReconciler } from './reconciler.js';
import { bumpNetworkRouters, routerById } from './repository.js';
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
