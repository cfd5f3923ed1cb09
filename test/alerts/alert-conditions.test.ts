/**
 * The alert conditions beside capacity of public addresses and failing health checks (src/alerts/README.md):
 * guest-network capacity (a zone's guest VLANs over `zone.vlan.capacity.notificationthreshold`, type 18), a job
 * that failed on a re-run (abandoned after maxAttempts, type 14), a router whose agent stopped reporting and a
 * router reporting itself Degraded (type 9). Each is raised once however many passes see it, and cleared when
 * it stops holding. In-process server, simulator driver, on the three databases.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestServer, injectClient, zoneWithTwoNetworks } from '../../src/server/testing/test-server.js';
import type { BuiltServer } from '../../src/server/build-server.js';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { openStore, transaction } from '../../src/store/db.js';
import type { Executor, Store } from '../../src/store/db.js';
import { checkAlerts, clearAlert, raiseAlert } from '../../src/alerts/service.js';
import { defaultRootAdmin } from '../../src/accounts/repository.js';
import { JOB_FAILED, JOB_PENDING } from '../../src/api/jobs/repository.js';
import { eventually } from '../api/harness.js';

const keys = { apiKey: 'alerts-key', secretKey: 'alerts-secret' };

async function pass(db: Executor, now = Date.now()): Promise<number> {
  const admin = await defaultRootAdmin(db);
  assert.ok(admin);
  return checkAlerts(db, admin.caller, now);
}

const alertsOf = (db: Executor, type: number) =>
  db.selectFrom('alerts').selectAll().where('type', '=', type).orderBy('id').execute();

for (const kind of testDbKinds()) {
  describe(`alert conditions (${kind})`, () => {
    let dir: string;
    let tdb: TestDatabase;
    let s: BuiltServer;
    const client = injectClient(() => s, keys);
    let zone: { zone: string; net: string; so: string; tpl: string };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'stacknet-alerts-'));
      tdb = await createTestDatabase(kind);
      s = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys });
      zone = await zoneWithTwoNetworks(client);
      const vm = await client.job('deployVirtualMachine', {
        zoneid: zone.zone,
        serviceofferingid: zone.so,
        templateid: zone.tpl,
        networkids: zone.net,
        name: 'alerts-vm',
      });
      assert.ok(vm.ok, JSON.stringify(vm.error));
    });

    after(async () => {
      await s.close();
      await tdb.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test("guest-network capacity: a zone's guest VLANs over their threshold, once, cleared below it", async () => {
      const db = s.store.db;
      // One VLAN of 11 (100-110) taken by the VM's network: 9% in use.
      await client.okCall('updateConfiguration', {
        name: 'zone.vlan.capacity.notificationthreshold',
        value: '0.05',
      });
      await pass(db);
      await pass(db);
      const [a, more] = await alertsOf(db, 18);
      assert.ok(a, 'a VLAN alert');
      assert.equal(more, undefined, 'raised once');
      assert.equal(a.name, 'ALERT.NETWORK.VLAN');
      assert.match(a.description, /guest network VLANs\/VNIs left in zone z: 1 of 11 in use \(9\.09%\)/);
      const listed = await client.okCall('listAlerts', { type: '18' });
      assert.equal(listed.count, 1);
      await client.okCall('updateConfiguration', {
        name: 'zone.vlan.capacity.notificationthreshold',
        value: '0.5',
      });
      await pass(db);
      const [cleared] = await alertsOf(db, 18);
      assert.equal(cleared!.open_key, null);
      assert.ok(cleared!.cleared);
    });

    test('a job abandoned after maxAttempts raises ALERT.MANAGEMENT once', async () => {
      const db = s.store.db;
      const { jobid } = await client.okCall('createPhysicalNetwork', { zoneid: zone.zone, name: 'pn-alert' });
      await eventually(
        async () =>
          (await client.okCall('queryAsyncJobResult', { jobid })).jobstatus !== 0 ? true : undefined,
        20_000,
        'the job done',
      );
      // As three servers dying while running it leave it: pending, attempted 3 times, lease lapsed. The runner
      // fails it (failAbandonedJobs).
      await db
        .updateTable('async_jobs')
        .set({
          status: JOB_PENDING,
          attempts: 3,
          lease_owner: 'gone',
          lease_until: Date.now() - 1000,
          completed: null,
        })
        .where('uuid', '=', jobid)
        .execute();
      await eventually(
        async () => {
          const j = await db
            .selectFrom('async_jobs')
            .select('status')
            .where('uuid', '=', jobid)
            .executeTakeFirst();
          return Number(j?.status) === JOB_FAILED ? true : undefined;
        },
        20_000,
        'the runner failing the abandoned job',
      );
      await pass(db);
      await pass(db);
      const alerts = await alertsOf(db, 14);
      assert.equal(alerts.length, 1);
      assert.equal(alerts[0]!.name, 'ALERT.MANAGEMENT');
      assert.match(
        alerts[0]!.description,
        new RegExp(`Job ${jobid} \\(createPhysicalNetwork\\) failed after 3 attempts: .*abandoned`),
      );
      // A day later it is no longer news: cleared (still listed until archived or deleted).
      await pass(db, Date.now() + 25 * 3600_000);
      assert.equal((await alertsOf(db, 14))[0]!.open_key, null);
    });

    test('a condition raised again while open is one alert, and the transaction it ran in commits', async () => {
      const c = {
        key: 'test:raise-twice',
        type: 14,
        name: 'ALERT.MANAGEMENT',
        description: 'twice',
        zoneId: null,
      };
      const raised = await transaction(s.store, async (tx) => {
        const first = await raiseAlert(tx, c, Date.now());
        const second = await raiseAlert(tx, c, Date.now());
        await tx.updateTable('alerts').set({ description: 'after' }).where('open_key', '=', c.key).execute();
        return [first, second];
      });
      assert.deepEqual(raised, [true, false]);
      const rows = await s.store.db.selectFrom('alerts').selectAll().where('open_key', '=', c.key).execute();
      assert.deepEqual(
        rows.map((r) => r.description),
        ['after'],
      );
      await clearAlert(s.store.db, c.key, Date.now());
    });

    test('a router whose agent stopped reporting, then one reporting itself Degraded', async () => {
      // The server stopped: nothing reconciles the router any more, so what the test writes stays.
      await s.close();
      const store: Store = await openStore(tdb.url, { poolSize: 2 });
      try {
        const db = store.db;
        const router = await db
          .selectFrom('routers')
          .selectAll()
          .where('removed', 'is', null)
          .where('state', '=', 'Running')
          .executeTakeFirstOrThrow();
        assert.ok(router.status_reported, 'the agent reported');
        const now = Number(router.status_reported);
        await pass(db, now + 1000);
        // The job test's pass a day ahead saw this router silent; that alert cleared now: start afresh.
        await db.deleteFrom('alerts').where('type', '=', 9).where('open_key', 'is', null).execute();
        assert.deepEqual(
          (await alertsOf(db, 9)).map((a) => a.description),
          [],
          'a router that reports and is healthy: no alert',
        );
        await pass(db, now + 60_000);
        await pass(db, now + 61_000);
        const silent = await alertsOf(db, 9);
        assert.equal(silent.length, 1);
        assert.equal(silent[0]!.open_key, `router:${router.id}:silent`);
        assert.match(
          silent[0]!.description,
          new RegExp(`The agent of router ${router.name} stopped reporting: last reported .*, 60 s ago`),
        );
        const health = JSON.parse(router.health ?? '{}') as {
          conditions?: { type: string; status: boolean; reason: string; message: string }[];
        };
        health.conditions = [
          ...(health.conditions ?? []).filter((c) => c.type !== 'Degraded'),
          {
            type: 'Degraded',
            status: true,
            reason: 'ConfigRejected',
            message: 'dnsmasq --test refused the config',
          },
        ];
        await db
          .updateTable('routers')
          .set({ health: JSON.stringify(health), status_reported: now + 70_000 })
          .where('id', '=', router.id)
          .execute();
        await pass(db, now + 71_000);
        await pass(db, now + 72_000);
        const all = await alertsOf(db, 9);
        assert.equal(all.length, 2);
        assert.equal(all[0]!.open_key, null, 'reporting again clears the silent alert');
        assert.equal(all[1]!.open_key, `router:${router.id}:degraded`);
        assert.match(
          all[1]!.description,
          new RegExp(`Degraded router ${router.name}: ConfigRejected: dnsmasq --test refused the config`),
        );
        health.conditions = health.conditions.filter((c) => c.type !== 'Degraded');
        await db
          .updateTable('routers')
          .set({ health: JSON.stringify(health) })
          .where('id', '=', router.id)
          .execute();
        await pass(db, now + 73_000);
        assert.equal((await alertsOf(db, 9))[1]!.open_key, null, 'no longer Degraded: cleared');
      } finally {
        await store.close();
      }
    });
  });
}
