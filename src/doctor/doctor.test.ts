/**
 * diagnoseVirtualMachine / diagnoseNetwork through the HTTP layer on the simulator driver, on every database:
 * a healthy VM (the data-plane links the simulator lacks are SKIP with the reason), a stopped router, a stopped
 * VM, an entry the router set aside (a host name clash), lookups by name, and the refusals. The netns chain,
 * link by link, is test/e2e/doctor-netns.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, testDbKinds } from '../store/testing/test-databases.js';
import type { TestDatabase } from '../store/testing/test-databases.js';
import { buildTestServer, injectClient, zoneWithTwoNetworks } from '../server/testing/test-server.js';
import type { BuiltServer } from '../server/build-server.js';
import { bumpNetworkRouters } from '../routers/repository.js';
import { vmRuntimeFor } from '../vms/runtime-services.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

for (const kind of testDbKinds()) {
  describe(`doctor on the simulator (${kind})`, () => {
    let tdb: TestDatabase;
    let s: BuiltServer;
    let dir: string;
    const keys = { url: '', apiKey: 'doctor-key', secretKey: 'doctor-secret' };
    const id = {} as Record<string, string>;
    const client = injectClient(() => s, keys);
    const { call, okCall, job } = client;
    const okJob = async (command: string, params: Record<string, string> = {}) => {
      const r = await job(command, params);
      assert.ok(r.ok, `${command}: ${JSON.stringify(r.error)}`);
      return r.result;
    };
    const deploy = async (name: string) =>
      (
        await okJob('deployVirtualMachine', {
          serviceofferingid: id.so!,
          templateid: id.tpl!,
          zoneid: id.zone!,
          networkids: id.net!,
          name,
        })
      ).virtualmachine;
    const statuses = (d: any) => Object.fromEntries(d.steps.map((x: any) => [x.step, x.status]));

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-doctor-'));
      s = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys });
      Object.assign(id, await zoneWithTwoNetworks(client));
      id.vm1 = (await deploy('vm1')).id;
      id.vm2 = (await deploy('vm2')).id;
    });

    after(async () => {
      await s?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a healthy VM: every link OK, the ones the simulator has not SKIP with the reason', async () => {
      const d = (await okCall('diagnoseVirtualMachine', { id: id.vm1! })).diagnosis;
      assert.equal(d.healthy, true, JSON.stringify(d, null, 2));
      assert.equal(d.firstfailure, undefined);
      assert.deepEqual(statuses(d), {
        database: 'OK',
        router: 'OK',
        'desired-state': 'OK',
        applied: 'OK',
        'dhcp-files': 'OK',
        lease: 'SKIP',
        'port-rules': 'SKIP',
        dns: 'SKIP',
        nat: 'SKIP',
      });
      assert.match(d.steps[0].evidence, /NET\.IPASSIGN/);
      assert.match(d.steps[4].evidence, /dhcphosts\.txt: [0-9a-f]{2}:/);
      const byName = (await okCall('diagnoseVirtualMachine', { name: 'vm2' })).diagnosis;
      assert.equal(byName.id, id.vm2);
      const net = (await okCall('diagnoseNetwork', { id: id.net! })).diagnosis;
      assert.equal(net.healthy, true, JSON.stringify(net, null, 2));
      assert.deepEqual(net.brokenvms, []);
    });

    test('refusals: no id or name, an unknown VM, an unknown network', async () => {
      assert.equal((await call('diagnoseVirtualMachine')).status, 431);
      const r = await call('diagnoseVirtualMachine', { name: 'nope' });
      assert.equal(r.status, 431);
      assert.match(r.body.errortext, /no virtual machine/);
      assert.equal((await call('diagnoseNetwork', { id: id.vm1! })).status, 431);
    });

    test('an entry the router set aside (a multicast MAC in the NIC row) fails the applied link and names the VM', async () => {
      const db = s.store.db;
      const vm2 = await db
        .selectFrom('vms')
        .selectAll()
        .where('uuid', '=', id.vm2!)
        .executeTakeFirstOrThrow();
      const nic = await db
        .selectFrom('nics')
        .selectAll()
        .where('vm_id', '=', vm2.id)
        .executeTakeFirstOrThrow();
      const routers = await db
        .selectFrom('routers')
        .select('id')
        .where('network_id', '=', nic.network_id)
        .execute();
      const setMac = async (mac: string) => {
        await db.updateTable('nics').set({ mac }).where('id', '=', nic.id).execute();
        await bumpNetworkRouters(db, Number(nic.network_id));
        for (const r of routers) await vmRuntimeFor(s.store).reconciler.reconcile(Number(r.id));
      };
      await setMac('01:00:5e:00:00:42');
      try {
        const d = (await okCall('diagnoseVirtualMachine', { id: id.vm2! })).diagnosis;
        assert.equal(d.firstfailure, 'applied', JSON.stringify(d, null, 2));
        assert.match(d.steps[3].evidence, /applied without hosts 01:00:5e:00:00:42 \(mac: /);
        const net = (await okCall('diagnoseNetwork', { id: id.net! })).diagnosis;
        assert.equal(net.firstfailure, 'applied');
        assert.deepEqual(
          net.brokenvms.map((b: any) => [b.id, b.step]),
          [[id.vm2, 'applied']],
        );
        assert.equal((await okCall('diagnoseVirtualMachine', { id: id.vm1! })).diagnosis.healthy, true);
      } finally {
        await setMac(nic.mac);
      }
    });

    test('a stopped VM fails the database link; a stopped router fails the router link', async () => {
      await okJob('stopVirtualMachine', { id: id.vm2! });
      const d = (await okCall('diagnoseVirtualMachine', { id: id.vm2! })).diagnosis;
      assert.equal(d.firstfailure, 'database');
      assert.match(d.steps[0].evidence, /the VM is Stopped/);
      assert.match(d.steps[0].advice, /startVirtualMachine/);
      assert.ok(d.steps.slice(1).every((x: any) => x.status === 'SKIP'));
      const router = (await okCall('listRouters', { networkid: id.net! })).router[0];
      await okJob('stopRouter', { id: router.id });
      const r = (await okCall('diagnoseVirtualMachine', { id: id.vm1! })).diagnosis;
      assert.equal(r.firstfailure, 'router');
      assert.match(r.steps[1].evidence, /Stopped/);
      assert.match(r.steps[1].advice, new RegExp(`startRouter id=${router.id}`));
      const net = (await okCall('diagnoseNetwork', { id: id.net! })).diagnosis;
      assert.equal(net.firstfailure, 'router');
      assert.equal(net.brokenvms.length, 2);
      await okJob('startRouter', { id: router.id });
      await okJob('startVirtualMachine', { id: id.vm2! });
      assert.equal((await okCall('diagnoseVirtualMachine', { id: id.vm2! })).diagnosis.healthy, true);
    });
  });
}
