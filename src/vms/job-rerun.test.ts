/**
 * Jobs re-run after their server died part-way: each finds the work its earlier run committed and finishes it,
 * and a VM left Starting by a job that is over is settled by the GC so its addresses and network come back.
 *
 * A kill -9 after a job's first transaction leaves exactly this in the database: the work committed, the job
 * pending with the dead server's lease. The tests run a command to the end and then put its job back in that
 * state ("rewind"), so the runner takes it over as it would after the lease lapsed; test/reliability/
 * sqlite-crash.test.ts does the same with real kills.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, testDbKinds } from '../store/testing/test-databases.js';
import type { TestDatabase } from '../store/testing/test-databases.js';
import { buildTestServer, injectClient, rewindJob } from '../server/testing/test-server.js';
import type { BuiltServer } from '../server/build-server.js';
import { defaultRootAdmin } from '../accounts/repository.js';
import { buildDemo } from '../cli/demo/build-demo.js';
import { JOB_FAILED, JOB_PENDING } from '../api/jobs/repository.js';
import type { VmState } from './tables.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

async function eventually<T>(fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const kind of testDbKinds()) {
  describe(`async jobs re-run after a crash (${kind})`, () => {
    let tdb: TestDatabase;
    let s: BuiltServer;
    let dir: string;
    let zone: string;
    let net: string;
    let so: string;
    let tpl: string;
    const keys = { url: '', apiKey: 'rerun-key', secretKey: 'rerun-secret' };

    const { okCall: call } = injectClient(() => s, keys);
    const outcome = async (jobid: string) =>
      eventually(async () => {
        const q = await call('queryAsyncJobResult', { jobid });
        return q.jobstatus === JOB_PENDING ? undefined : q;
      });
    /** Runs an async command to success; returns its jobid and result. */
    const okJob = async (command: string, params: Record<string, string>) => {
      const { jobid } = await call(command, params);
      const q = await outcome(jobid);
      assert.equal(q.jobstatus, 1, `${command}: ${JSON.stringify(q.jobresult)}`);
      return { jobid: jobid as string, result: q.jobresult };
    };
    /** The job as a kill -9 after its commit leaves it: pending, held by a server that is gone, run once. */
    const rewind = (jobid: string, status = JOB_PENDING) => rewindJob(s, jobid, status);
    /** An isolated network in the demo zone (Allocated until a VM or an address needs it). */
    const newNetwork = async (name: string, gateway: string): Promise<string> => {
      const offering = await call('listNetworkOfferings', {
        name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
      });
      const r = await call('createNetwork', {
        zoneid: zone,
        name,
        displaytext: name,
        networkofferingid: offering.networkoffering[0].id,
        gateway,
        netmask: '255.255.255.0',
      });
      return r.network.id as string;
    };
    const setVmState = (uuid: string, state: VmState) =>
      s.store.db.updateTable('vms').set({ state }).where('uuid', '=', uuid).execute();
    const vmRow = (uuid: string) =>
      s.store.db.selectFrom('vms').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
    const count = async (table: 'vms' | 'nics' | 'nic_secondary_ips' | 'ip_allocations', where: any) => {
      let q = s.store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n'));
      for (const [k, v] of Object.entries(where)) q = q.where(k as never, '=', v as never);
      return Number((await q.executeTakeFirstOrThrow()).n);
    };
    const rerun = async (jobid: string) => {
      const q = await outcome(jobid);
      const attempts = await s.store.db
        .selectFrom('async_jobs')
        .select('attempts')
        .where('uuid', '=', jobid)
        .executeTakeFirstOrThrow();
      assert.equal(Number(attempts.attempts), 2, 'the job ran again');
      assert.equal(q.jobstatus, 1, `the re-run finds its own work: ${JSON.stringify(q.jobresult)}`);
      return q.jobresult;
    };

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-rerun-'));
      s = await buildTestServer({
        dataDir: dir,
        dbUrl: tdb.url,
        keys,
      });
      const demo = await buildDemo(s.store, (await defaultRootAdmin(s.store.db))!.caller);
      zone = demo.zone.id;
      net = demo.network!.id;
      so = (await call('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0].id;
      tpl = (await call('listTemplates', { templatefilter: 'featured' })).template[0].id;
    });

    after(async () => {
      await s?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a deploy re-run after its VM committed finds that VM and finishes it: started, or answered', async () => {
      for (const left of ['Starting', 'Running'] as const) {
        const name = `rerun-${left.toLowerCase()}`;
        const { jobid, result } = await okJob('deployVirtualMachine', {
          serviceofferingid: so,
          templateid: tpl,
          zoneid: zone,
          networkids: net,
          name,
        });
        const vm = result.virtualmachine;
        await setVmState(vm.id, left);
        const held = await count('ip_allocations', { vm_id: (await vmRow(vm.id)).id });
        await rewind(jobid);
        const again = await rerun(jobid);
        assert.equal(again.virtualmachine.id, vm.id);
        assert.equal(again.virtualmachine.state, 'Running');
        assert.equal(again.virtualmachine.ipaddress, vm.ipaddress, 'the address its first run took');
        assert.equal((await vmRow(vm.id)).state, 'Running');
        assert.equal(await count('vms', { name }), 1, 'no second VM');
        assert.equal(await count('ip_allocations', { vm_id: (await vmRow(vm.id)).id }), held);
      }
    });

    test('start, NIC and secondary-IP jobs and destroy with expunge re-run after their commit finish', async () => {
      const { result } = await okJob('deployVirtualMachine', {
        serviceofferingid: so,
        templateid: tpl,
        zoneid: zone,
        networkids: net,
        name: 'nics',
      });
      const vm = result.virtualmachine.id as string;
      const vmId = Number((await vmRow(vm)).id);
      const other = await newNetwork('rerun-second', '10.9.9.1');

      // start: its first run committed Starting and died before the VM ran.
      await okJob('stopVirtualMachine', { id: vm });
      const start = await okJob('startVirtualMachine', { id: vm });
      await setVmState(vm, 'Starting');
      await rewind(start.jobid);
      assert.equal((await rerun(start.jobid)).virtualmachine.state, 'Running');

      // addNicToVirtualMachine: the NIC is there; a second run must not call it somebody else's.
      const add = await okJob('addNicToVirtualMachine', { virtualmachineid: vm, networkid: other });
      await rewind(add.jobid);
      const added = await rerun(add.jobid);
      assert.equal(added.virtualmachine.nic.length, 2);
      assert.equal(await count('nics', { vm_id: vmId }), 2);

      // addIpToNic: one secondary address, not one per run.
      const nic = added.virtualmachine.nic.find((n: any) => n.isdefault).id as string;
      const ip = await okJob('addIpToNic', { nicid: nic });
      await rewind(ip.jobid);
      assert.equal((await rerun(ip.jobid)).nicsecondaryip.id, ip.result.nicsecondaryip.id);
      assert.equal(await count('nic_secondary_ips', { vm_id: vmId }), 1);

      // Deletions: already gone is done.
      const unIp = await okJob('removeIpFromNic', { id: ip.result.nicsecondaryip.id });
      await rewind(unIp.jobid);
      await rerun(unIp.jobid);
      const secondNic = added.virtualmachine.nic.find((n: any) => !n.isdefault).id as string;
      const unNic = await okJob('removeNicFromVirtualMachine', { virtualmachineid: vm, nicid: secondNic });
      await rewind(unNic.jobid);
      assert.equal((await rerun(unNic.jobid)).virtualmachine.nic.length, 1);

      const destroy = await okJob('destroyVirtualMachine', { id: vm, expunge: 'true' });
      await rewind(destroy.jobid);
      await rerun(destroy.jobid);
      assert.notEqual((await vmRow(vm)).removed, null);
      assert.equal(await count('nics', { vm_id: vmId }), 0);
    });

    test('createVPC, associateIpAddress and the deletions (address, VPC, network, account, domain) re-run after their commit', async () => {
      const offering = (await call('listVPCOfferings', {})).vpcoffering[0].id as string;
      const vpc = await okJob('createVPC', {
        zoneid: zone,
        name: 'rerun-vpc',
        displaytext: 'rerun-vpc',
        cidr: '10.50.0.0/16',
        vpcofferingid: offering,
      });
      await rewind(vpc.jobid);
      assert.equal((await rerun(vpc.jobid)).vpc.id, vpc.result.vpc.id, 'the VPC its earlier run created');
      const vpcs = await s.store.db.selectFrom('vpcs').select('id').where('name', '=', 'rerun-vpc').execute();
      assert.equal(vpcs.length, 1, 'not a second VPC');

      const ip = await okJob('associateIpAddress', { networkid: net });
      await rewind(ip.jobid);
      const again = await rerun(ip.jobid);
      assert.equal(again.ipaddress.id, ip.result.ipaddress.id);
      assert.equal(again.ipaddress.state, 'Allocated');
      const gone = await okJob('disassociateIpAddress', { id: ip.result.ipaddress.id });
      await rewind(gone.jobid);
      await rerun(gone.jobid);

      const delVpc = await okJob('deleteVPC', { id: vpc.result.vpc.id });
      await rewind(delVpc.jobid);
      await rerun(delVpc.jobid);
      const doomed = await newNetwork('rerun-doomed', '10.7.7.1');
      const delNet = await okJob('deleteNetwork', { id: doomed });
      await rewind(delNet.jobid);
      await rerun(delNet.jobid);

      const domain = (await call('createDomain', { name: 'rerun-domain' })).domain.id as string;
      const account = (
        await call('createAccount', {
          username: 'rerun-user',
          password: 'rerun-password',
          email: 'rerun@example.org',
          firstname: 'Re',
          lastname: 'Run',
          domainid: domain,
        })
      ).account.id as string;
      const delAccount = await okJob('deleteAccount', { id: account });
      await rewind(delAccount.jobid);
      await rerun(delAccount.jobid);
      const delDomain = await okJob('deleteDomain', { id: domain });
      await rewind(delDomain.jobid);
      await rerun(delDomain.jobid);
    });

    test('createPhysicalNetwork, addTrafficType and updatePhysicalNetwork re-run after their commit', async () => {
      const pn = await okJob('createPhysicalNetwork', { zoneid: zone, name: 'rerun-pn', vlan: '3100-3109' });
      await rewind(pn.jobid);
      assert.equal((await rerun(pn.jobid)).physicalnetwork.id, pn.result.physicalnetwork.id);
      const pns = await s.store.db
        .selectFrom('physical_networks')
        .select('id')
        .where('name', '=', 'rerun-pn')
        .execute();
      assert.equal(pns.length, 1, 'not a second physical network');
      const tt = await okJob('addTrafficType', {
        physicalnetworkid: pn.result.physicalnetwork.id,
        traffictype: 'Management',
      });
      await rewind(tt.jobid);
      assert.equal((await rerun(tt.jobid)).traffictype.id, tt.result.traffictype.id);
      const up = await okJob('updatePhysicalNetwork', { id: pn.result.physicalnetwork.id, state: 'Enabled' });
      await rewind(up.jobid);
      assert.equal((await rerun(up.jobid)).physicalnetwork.state, 'Enabled');
    });

    test('portable ranges and a portable address re-run after their commit', async () => {
      const range = {
        regionid: '1',
        startip: '198.51.100.10',
        endip: '198.51.100.12',
        gateway: '198.51.100.1',
        netmask: '255.255.255.0',
      };
      const pr = await okJob('createPortableIpRange', range);
      await rewind(pr.jobid);
      assert.equal((await rerun(pr.jobid)).portableiprange.id, pr.result.portableiprange.id);
      const ip = await okJob('associateIpAddress', { zoneid: zone, isportable: 'true', networkid: net });
      await rewind(ip.jobid);
      const again = await rerun(ip.jobid);
      assert.equal(again.ipaddress.id, ip.result.ipaddress.id);
      assert.equal(again.ipaddress.isportable, true);
      const gone = await okJob('disassociateIpAddress', { id: ip.result.ipaddress.id });
      await rewind(gone.jobid);
      await rerun(gone.jobid);
      const del = await okJob('deletePortableIpRange', { id: pr.result.portableiprange.id });
      await rewind(del.jobid);
      await rerun(del.jobid);
    });

    test('static NAT, updateVmNicIp and the VM and network lifecycle jobs re-run after their commit', async () => {
      const { result } = await okJob('deployVirtualMachine', {
        serviceofferingid: so,
        templateid: tpl,
        zoneid: zone,
        networkids: net,
        name: 'nat',
      });
      const vm = result.virtualmachine;
      const ip = await okJob('associateIpAddress', { networkid: net });
      await call('enableStaticNat', { ipaddressid: ip.result.ipaddress.id, virtualmachineid: vm.id });
      const off = await okJob('disableStaticNat', { ipaddressid: ip.result.ipaddress.id });
      await rewind(off.jobid);
      await rerun(off.jobid);

      // Without ipaddress the job picks a free address: a re-run keeps that one, not a third.
      const nic = vm.nic[0].id as string;
      const moved = await okJob('updateVmNicIp', { nicid: nic });
      const address = moved.result.virtualmachine.nic[0].ipaddress as string;
      assert.notEqual(address, vm.nic[0].ipaddress);
      await rewind(moved.jobid);
      assert.equal((await rerun(moved.jobid)).virtualmachine.nic[0].ipaddress, address);
      const vmId = Number((await vmRow(vm.id)).id);
      assert.equal(await count('ip_allocations', { vm_id: vmId }), 1, 'one address for its one NIC');

      for (const [command, params] of [
        ['rebootVirtualMachine', { id: vm.id }],
        ['resetPasswordForVirtualMachine', { id: vm.id }],
        ['stopVirtualMachine', { id: vm.id }],
        ['restartNetwork', { id: net }],
        ['restartNetwork', { id: net, cleanup: 'true' }],
        ['updateNetwork', { id: net, displaytext: 'renamed by a re-run' }],
      ] as const) {
        const j = await okJob(command, params);
        await rewind(j.jobid);
        await rerun(j.jobid);
      }
      assert.equal(
        (await call('listRouters', { networkid: net })).router.length,
        1,
        'one router after cleanups',
      );
      const offering = (await call('listVPCOfferings', {})).vpcoffering[0].id as string;
      const vpc = (
        await okJob('createVPC', {
          zoneid: zone,
          name: 'rerun-vpc2',
          displaytext: 'rerun-vpc2',
          cidr: '10.60.0.0/16',
          vpcofferingid: offering,
        })
      ).result.vpc.id as string;
      for (const [command, params] of [
        ['updateVPC', { id: vpc, displaytext: 'renamed by a re-run' }],
        ['restartVPC', { id: vpc }],
        ['restartVPC', { id: vpc, cleanup: 'true' }],
      ] as const) {
        const j = await okJob(command, params);
        await rewind(j.jobid);
        await rerun(j.jobid);
      }
    });

    test('router start, stop, reboot and destroy re-run after their commit', async () => {
      const router = (await call('listRouters', { networkid: net })).router[0].id as string;
      for (const command of ['stopRouter', 'startRouter', 'rebootRouter', 'destroyRouter']) {
        const j = await okJob(command, { id: router });
        await rewind(j.jobid);
        const again = await rerun(j.jobid);
        assert.equal(again.router.id, router, command);
      }
    });

    // Last: it turns the GC and the scavenger on for the whole server.
    test('a VM left Starting by a job that is over is settled; its addresses go and its network shuts down', async () => {
      const gcNet = await newNetwork('rerun-gc', '10.8.8.1');
      // A deploy abandoned after its VM committed (its servers died maxAttempts times) ...
      const deployed = await okJob('deployVirtualMachine', {
        serviceofferingid: so,
        templateid: tpl,
        zoneid: zone,
        networkids: gcNet,
        name: 'abandoned',
      });
      const lost = deployed.result.virtualmachine.id as string;
      await setVmState(lost, 'Starting');
      await rewind(deployed.jobid, JOB_FAILED);
      // ... and a start of a VM that had run before, whose job failed without moving the VM on.
      const other = (
        await okJob('deployVirtualMachine', {
          serviceofferingid: so,
          templateid: tpl,
          zoneid: zone,
          networkids: gcNet,
          name: 'restarted',
        })
      ).result.virtualmachine.id as string;
      await okJob('stopVirtualMachine', { id: other });
      const start = await okJob('startVirtualMachine', { id: other });
      await setVmState(other, 'Starting');
      await rewind(start.jobid, JOB_FAILED);
      const lostId = Number((await vmRow(lost)).id);
      assert.ok((await count('ip_allocations', { vm_id: lostId })) > 0);

      for (const [name, value] of Object.entries({
        'network.gc.interval': '1',
        'network.gc.wait': '1',
        'expunge.interval': '1',
        'expunge.delay': '0',
      }))
        await call('updateConfiguration', { name, value });
      await eventually(async () => ((await vmRow(lost)).removed !== null ? true : undefined));
      assert.equal((await vmRow(other)).state, 'Stopped', 'an interrupted start leaves the VM Stopped');
      assert.equal(
        await count('ip_allocations', { vm_id: lostId }),
        0,
        'the failed deploy gave its address back',
      );
      assert.equal(await count('nics', { vm_id: lostId }), 0, 'and its MAC');
      await eventually(async () => {
        const n = await s.store.db
          .selectFrom('networks')
          .select(['state', 'vnet'])
          .where('uuid', '=', gcNet)
          .executeTakeFirstOrThrow();
        return n.state !== 'Implemented' && n.vnet === null ? true : undefined;
      });
    });
  });
}
