/**
 * `macaddress` through the HTTP layer (inject) on the simulator driver, on every database: malformed, group-bit
 * (multicast/broadcast), all-zero and server-generated-range MACs are refused with 431 naming the parameter
 * (deployVirtualMachine `macaddress` and `iptonetworklist[n].mac`, addNicToVirtualMachine `macaddress`), a good one
 * is stored in CloudStack's form (lower case, colons), and a MAC already used in the zone is a 431, not a 530.
 * Nothing stays allocated after a refusal, and the router keeps converging.
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

for (const kind of testDbKinds()) {
  describe(`macaddress is validated at the API (${kind})`, () => {
    let tdb: TestDatabase;
    let s: BuiltServer;
    let dir: string;
    const keys = { url: '', apiKey: 'mac-key', secretKey: 'mac-secret' };
    const id = {} as Record<'zone' | 'net' | 'net2' | 'so' | 'tpl', string>;

    const client = injectClient(() => s, keys);
    const { okCall, job } = client;
    const refused = async (command: string, params: Record<string, string>, param: string) => {
      const r = await job(command, params);
      assert.equal(r.ok, false, `${command} ${JSON.stringify(params)} was accepted`);
      assert.equal(r.error.errorcode, 431, JSON.stringify(r.error));
      assert.ok(
        r.error.errortext.startsWith(`Invalid value for parameter ${param}:`),
        `${JSON.stringify(params)}: ${r.error.errortext}`,
      );
    };
    const allocations = async () =>
      Number(
        (
          await s.store.db
            .selectFrom('ip_allocations')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-mac-'));
      s = await buildTestServer({
        dataDir: dir,
        dbUrl: tdb.url,
        keys,
      });
      Object.assign(id, await zoneWithTwoNetworks(client));
    });

    after(async () => {
      await s?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('malformed, group-bit, all-zero and generated-range MACs: 431 naming the parameter, nothing allocated', async () => {
      const first = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        name: 'gen1',
      });
      assert.ok(first.ok, JSON.stringify(first.error));
      const generated: string = first.result.virtualmachine.nic[0].macaddress;
      // The next MACs the server would hand out in this zone (ipam/mac.ts layout).
      const ahead = `${generated.slice(0, 15)}${(parseInt(generated.slice(15), 16) + 3).toString(16).padStart(2, '0')}`;
      const before = await allocations();
      const bad = [
        'not-a-mac',
        'zz:zz:zz:zz:zz:zz',
        '10.1.1.5',
        '02:00:00:00:00',
        '02:00:00:00:00:01:02',
        '02:00:00:00:00:01\n',
        '02:00:00-00:00:01x',
        'ff:ff:ff:ff:ff:ff',
        '01:00:5e:00:00:fb',
        '33:33:00:00:00:01',
        '00:00:00:00:00:00',
        ahead,
      ];
      for (const [n, mac] of bad.entries())
        await refused(
          'deployVirtualMachine',
          {
            serviceofferingid: id.so,
            templateid: id.tpl,
            zoneid: id.zone,
            networkids: id.net,
            name: `b${n}`,
            macaddress: mac,
          },
          'macaddress',
        );
      await refused(
        'deployVirtualMachine',
        {
          serviceofferingid: id.so,
          templateid: id.tpl,
          zoneid: id.zone,
          name: 'bmap',
          'iptonetworklist[0].networkid': id.net,
          'iptonetworklist[0].mac': 'ff:ff:ff:ff:ff:ff',
        },
        'iptonetworklist[0].mac',
      );
      await refused(
        'addNicToVirtualMachine',
        { virtualmachineid: first.result.virtualmachine.id, networkid: id.net2, macaddress: 'not-a-mac' },
        'macaddress',
      );
      assert.equal(await allocations(), before, 'a refused MAC leaves nothing allocated');
      const vms = await okCall('listVirtualMachines', { listall: 'true' });
      assert.equal(vms.count, 1);
    });

    test("a good MAC is stored in CloudStack's form; the same MAC again in the zone is a 431; the router converges", async () => {
      const r = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        name: 'own',
        macaddress: 'AA-BB-CC-DD-EE-01',
      });
      assert.ok(r.ok, JSON.stringify(r.error));
      const vm = r.result.virtualmachine;
      assert.equal(vm.nic[0].macaddress, 'aa:bb:cc:dd:ee:01');
      const before = await allocations();
      for (const spelling of ['aa:bb:cc:dd:ee:01', 'AA:BB:CC:DD:EE:01', 'aa-bb-cc-dd-ee-01'])
        await refused(
          'deployVirtualMachine',
          {
            serviceofferingid: id.so,
            templateid: id.tpl,
            zoneid: id.zone,
            networkids: id.net2,
            name: 'dup',
            macaddress: spelling,
          },
          'macaddress',
        );
      await refused(
        'addNicToVirtualMachine',
        { virtualmachineid: vm.id, networkid: id.net2, macaddress: 'aa:bb:cc:dd:ee:01' },
        'macaddress',
      );
      assert.equal(await allocations(), before);
      const added = await job('addNicToVirtualMachine', {
        virtualmachineid: vm.id,
        networkid: id.net2,
        macaddress: 'aa:bb:cc:dd:ee:02',
      });
      assert.ok(added.ok, JSON.stringify(added.error));
      const router = (await okCall('listRouters', { networkid: id.net, fetchhealthcheckresults: 'true' }))
        .router[0];
      assert.equal(router.appliedgeneration, router.desiredgeneration);
      assert.equal(router.healthchecksfailed, false, JSON.stringify(router.healthcheckresults));
    });
  });
}
