/**
 * The VM, NIC and router commands through the HTTP layer (inject) on the simulator driver, on every database:
 * validation, addresses and MACs, failed deploys leaving nothing, NIC changes reaching the router's desired
 * state, expunge by the scavenger honouring expunge.delay, network GC, and the orphan scan.
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
import { vmRuntimeFor } from './runtime-services.js';
import type { SimulatorDriver } from '../drivers/simulator.js';
import { GcWorkers } from '../gc/workers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

async function until<T>(fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const kind of testDbKinds()) {
  describe(`VM and router commands on the simulator (${kind})`, () => {
    let tdb: TestDatabase;
    let s: BuiltServer;
    let dir: string;
    const keys = { url: '', apiKey: 'vm-key', secretKey: 'vm-secret' };
    const id = {} as Record<
      'zone' | 'pn' | 'off' | 'so' | 'tpl' | 'net' | 'net2' | 'vm1' | 'vm1ip' | 'vm2' | 'vm2ip' | 'vm3',
      string
    >;

    const client = injectClient(() => s, keys);
    const { call, okCall, job } = client;
    const okJob = async (command: string, params: Record<string, string> = {}) => {
      const r = await job(command, params);
      assert.ok(r.ok, `${command}: ${JSON.stringify(r.error)}`);
      return r.result;
    };
    const sim = () => vmRuntimeFor(s.store).driver as SimulatorDriver;
    const routerHosts = async (networkId: string) => {
      const r = (await okCall('listRouters', { networkid: networkId })).router[0];
      const row = await s.store.db
        .selectFrom('routers')
        .select('id')
        .where('uuid', '=', r.id)
        .executeTakeFirstOrThrow();
      await vmRuntimeFor(s.store).reconciler.reconcile(Number(row.id));
      return sim().routers.get(Number(row.id))!.state!;
    };

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-vms-'));
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

    test('deploy validates names and user data; a refused deploy leaves nothing allocated', async () => {
      const bad = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        name: '1bad',
      });
      assert.equal(bad.ok, false);
      assert.equal(bad.error.errorcode, 431);
      assert.match(bad.error.errortext, /name/);
      const long = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        name: 'ud',
        userdata: 'A'.repeat(32772),
      });
      assert.match(long.error.errortext, /userdata.*32768/s);
      const notB64 = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        name: 'ud',
        userdata: '@@@@',
      });
      assert.match(notB64.error.errortext, /base64/);

      const v1 = (
        await okJob('deployVirtualMachine', {
          serviceofferingid: id.so,
          templateid: id.tpl,
          zoneid: id.zone,
          networkids: id.net,
          name: 'vm1',
          userdata: 'aGVsbG8=',
        })
      ).virtualmachine;
      assert.equal(v1.state, 'Running');
      const nic = v1.nic[0];
      assert.match(nic.ipaddress, /^10\.1\.1\.\d+$/);
      assert.equal(nic.gateway, '10.1.1.1');
      assert.equal(nic.netmask, '255.255.255.0');
      assert.equal(nic.isdefault, true);
      assert.equal(nic.networkid, id.net);
      assert.match(nic.macaddress, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      id.vm1 = v1.id;
      id.vm1ip = nic.ipaddress;

      const before = await s.store.db
        .selectFrom('ip_allocations')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      const taken = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        name: 'vm9',
        ipaddress: id.vm1ip,
      });
      assert.equal(taken.ok, false);
      assert.equal(taken.error.errorcode, 431);
      const dup = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        name: 'VM1',
      });
      assert.match(dup.error.errortext, /host name already exists/);
      const afterRows = await s.store.db
        .selectFrom('ip_allocations')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      assert.equal(Number(afterRows.n), Number(before.n), 'nothing stays allocated after refused deploys');
      assert.equal((await okCall('listVirtualMachines', { listall: 'true' })).count, 1);

      const state = await routerHosts(id.net);
      assert.deepEqual(
        state.hosts.map((h) => h.hostname),
        ['vm1'],
      );
      assert.equal(state.metadata[id.vm1ip]!.userData, 'aGVsbG8=');
      const r = (await okCall('listRouters', { networkid: id.net })).router[0];
      assert.match(r.name, /^r-\d+-VM$/);
      assert.equal(r.state, 'Running');
      assert.match(r.linklocalip, /^169\.254\./);
      assert.equal(r.guestipaddress, '10.1.1.1');
      assert.equal(r.appliedgeneration, r.desiredgeneration);
      assert.equal(r.requiresupgrade, false);
      const hc = await okCall('getRouterHealthCheckResults', { routerid: r.id });
      assert.ok(
        hc.routerhealthchecks.healthchecks.some((c: any) => c.checkname === 'generation' && c.success),
      );
    });

    test('NICs: add, secondary IPs, change address, remove; MACs unique; routers follow', async () => {
      const v2 = (
        await okJob('deployVirtualMachine', {
          serviceofferingid: id.so,
          templateid: id.tpl,
          zoneid: id.zone,
          networkids: id.net,
          name: 'vm2',
        })
      ).virtualmachine;
      id.vm2 = v2.id;
      assert.notEqual(
        v2.nic[0].macaddress,
        (await okCall('listNics', { virtualmachineid: id.vm1 })).nic[0].macaddress,
      );
      await okJob('addNicToVirtualMachine', { virtualmachineid: id.vm2, networkid: id.net2 });
      const nics = (await okCall('listNics', { virtualmachineid: id.vm2 })).nic;
      assert.equal(nics.length, 2);
      const second = nics.find((n: any) => n.networkid === id.net2);
      assert.equal(second.isdefault, false);
      const st2 = await routerHosts(id.net2);
      assert.deepEqual(
        st2.hosts.map((h) => [h.hostname, h.defaultNic]),
        [['vm2', false]],
      );
      assert.deepEqual(st2.passwords, {});

      const sec = (await okJob('addIpToNic', { nicid: nics[0].id })).nicsecondaryip;
      assert.match(sec.ipaddress, /^10\.1\.1\./);
      await okJob('removeIpFromNic', { id: sec.id });

      const old = v2.nic[0].ipaddress;
      // Guest addresses are picked at random: the new one is one no NIC of this network has held here.
      const held = new Set([old, sec.ipaddress, ...(await routerHosts(id.net)).hosts.map((h) => h.ipv4)]);
      const to = ['10.1.1.200', '10.1.1.201', '10.1.1.202', '10.1.1.203'].find((a) => !held.has(a))!;
      const moved = (
        await okJob('updateVmNicIp', {
          nicid: nics.find((n: any) => n.networkid === id.net).id,
          ipaddress: to,
        })
      ).virtualmachine;
      assert.equal(moved.nic.find((n: any) => n.networkid === id.net).ipaddress, to);
      const st = await routerHosts(id.net);
      assert.ok(st.hosts.some((h) => h.ipv4 === to));
      assert.ok(!st.hosts.some((h) => h.ipv4 === old));

      await okJob('removeNicFromVirtualMachine', { virtualmachineid: id.vm2, nicid: second.id });
      assert.equal((await routerHosts(id.net2)).hosts.length, 0);

      const pw = (await okJob('resetPasswordForVirtualMachine', { id: id.vm2 })).virtualmachine.password;
      assert.ok(pw.length >= 6);
      assert.equal((await routerHosts(id.net)).passwords[to], pw);
      id.vm2ip = to;
    });

    test('stop keeps the router entries; expunge after expunge.delay removes them and frees the address', async () => {
      await okJob('stopVirtualMachine', { id: id.vm2 });
      assert.ok((await routerHosts(id.net)).hosts.some((h) => h.hostname === 'vm2'));
      await okJob('startVirtualMachine', { id: id.vm2 });
      await okCall('updateConfiguration', { name: 'expunge.delay', value: '0' });
      await okCall('updateConfiguration', { name: 'expunge.interval', value: '1' });
      await okJob('destroyVirtualMachine', { id: id.vm2 });
      assert.equal(
        (await okCall('listVirtualMachines', { id: id.vm2 })).virtualmachine[0].state,
        'Destroyed',
      );
      await until(async () =>
        (await okCall('listVirtualMachines', { id: id.vm2 })).count ? undefined : true,
      );
      assert.ok(!(await routerHosts(id.net)).hosts.some((h) => h.hostname === 'vm2'));
      const again = (
        await okJob('deployVirtualMachine', {
          serviceofferingid: id.so,
          templateid: id.tpl,
          zoneid: id.zone,
          networkids: id.net,
          name: 'vm3',
          ipaddress: id.vm2ip,
        })
      ).virtualmachine;
      assert.equal(again.nic[0].ipaddress, id.vm2ip, "vm2's address, freed by its expunge");
      id.vm3 = again.id;
      await okCall('updateConfiguration', { name: 'expunge.delay', value: '86400' });
    });

    test('orphan scan frees addresses held by nothing, with an event', async () => {
      const now = Date.now();
      await s.store.db
        .insertInto('ip_allocations')
        .values({
          scope: 'net:999999',
          family: 4,
          address: '0000000000000000000000000a636363',
          range_id: null,
          state: 'Allocated',
          owner_kind: 'nic',
          owner_id: 987654,
          zone_id: null,
          account_id: null,
          domain_id: null,
          network_id: null,
          vpc_id: null,
          vm_id: null,
          created: now,
          updated: now,
        })
        .execute();
      const gc = new GcWorkers({ store: s.store });
      assert.equal(await gc.orphanScan(), 1);
      const ev = await okCall('listEvents', { type: 'NET.IPRELEASE', listall: 'true' });
      assert.ok(ev.event.some((e: any) => /Orphaned address 10\.99\.99\.99/.test(e.description)));
    });

    test('network GC shuts down an idle network after network.gc.wait: router stopped, VLAN returned', async () => {
      for (const v of [id.vm1, id.vm3]) await okJob('stopVirtualMachine', { id: v });
      const gc = new GcWorkers({ store: s.store });
      await okCall('updateConfiguration', { name: 'network.gc.wait', value: '1' });
      const netRow = await s.store.db
        .selectFrom('networks')
        .select('id')
        .where('uuid', '=', id.net)
        .executeTakeFirstOrThrow();
      assert.deepEqual(await gc.networkGc(), []); // first pass only remembers it
      await new Promise((r) => setTimeout(r, 1100));
      assert.ok((await gc.networkGc()).includes(Number(netRow.id)));
      const n = (await okCall('listNetworks', { id: id.net })).network[0];
      assert.equal(n.state, 'Allocated');
      assert.equal(n.vlan ?? null, null);
      await until(async () =>
        (await okCall('listRouters', { networkid: id.net })).router[0].state === 'Stopped' ? true : undefined,
      );
      // Starting a VM implements the network again and brings its router back with every entry.
      await okJob('startVirtualMachine', { id: id.vm1 });
      assert.equal((await okCall('listNetworks', { id: id.net })).network[0].state, 'Implemented');
      const st = await routerHosts(id.net);
      assert.deepEqual(st.hosts.map((h) => h.hostname).sort(), ['vm1', 'vm3']);
    });

    test('updateVirtualMachine, reboot, destroy + recover', async () => {
      const v = (
        await okJob('deployVirtualMachine', {
          serviceofferingid: id.so,
          templateid: id.tpl,
          zoneid: id.zone,
          networkids: id.net2,
          name: 'up1',
          displayname: 'up1',
        })
      ).virtualmachine;
      const bad = await call('updateVirtualMachine', { id: v.id, displayname: 'no spaces allowed' });
      assert.equal(bad.status, 431);
      const u = await okCall('updateVirtualMachine', { id: v.id, displayname: 'renamed', userdata: 'bmV3' });
      assert.equal(u.virtualmachine.displayname, 'renamed');
      assert.equal((await routerHosts(id.net2)).metadata[v.nic[0].ipaddress]!.userData, 'bmV3');
      assert.equal((await okJob('rebootVirtualMachine', { id: v.id })).virtualmachine.state, 'Running');
      await okJob('destroyVirtualMachine', { id: v.id });
      assert.equal((await okCall('recoverVirtualMachine', { id: v.id })).virtualmachine.state, 'Stopped');
      assert.equal((await okJob('startVirtualMachine', { id: v.id })).virtualmachine.state, 'Running');
    });

    test('a redundant offering gets a router pair with their own guest addresses; the gateway is the VIP', async () => {
      const off = (
        await okCall('createNetworkOffering', {
          name: 'RedundantIsolated',
          displaytext: 'redundant',
          guestiptype: 'Isolated',
          traffictype: 'Guest',
          supportedservices: 'Dhcp,Dns,UserData,SourceNat',
          enable: 'true',
        })
      ).networkoffering;
      const net = (
        await okCall('createNetwork', {
          zoneid: id.zone,
          name: 'rn',
          displaytext: 'rn',
          networkofferingid: off.id,
          gateway: '10.3.3.1',
          netmask: '255.255.255.0',
        })
      ).network;
      await okJob('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: net.id,
        name: 'rv1',
      });
      const routers = (await okCall('listRouters', { networkid: net.id })).router;
      assert.equal(routers.length, 2);
      for (const r of routers) {
        assert.equal(r.isredundantrouter, true);
        assert.notEqual(r.guestipaddress, '10.3.3.1');
        assert.equal(r.gateway, '10.3.3.1');
      }
      assert.notEqual(routers[0].guestipaddress, routers[1].guestipaddress);
    });

    test('SSH key pairs: registered, refused when malformed, served as public-keys metadata', async () => {
      const blob = Buffer.concat([
        Buffer.from([0, 0, 0, 11]),
        Buffer.from('ssh-ed25519'),
        Buffer.from([0, 0, 0, 32]),
        Buffer.alloc(32, 7),
      ]);
      const pub = `ssh-ed25519 ${blob.toString('base64')} me@host`;
      const k = (await okCall('registerSSHKeyPair', { name: 'k1', publickey: pub })).keypair;
      assert.match(k.fingerprint, /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
      assert.equal((await call('registerSSHKeyPair', { name: 'k2', publickey: 'ssh-rsa nope' })).status, 431);
      assert.equal((await call('registerSSHKeyPair', { name: 'k1', publickey: pub })).status, 431);
      assert.equal((await okCall('listSSHKeyPairs', { name: 'k1' })).count, 1);
      const blob2 = Buffer.concat([blob.subarray(0, 19), Buffer.alloc(32, 8)]);
      await okCall('registerSSHKeyPair', {
        name: 'k2',
        publickey: `ssh-ed25519 ${blob2.toString('base64')}`,
      });
      // A keyword's % and _ are characters to look for, not LIKE wildcards.
      for (const keyword of ['%', '_', 'k%1'])
        assert.equal((await okCall('listSSHKeyPairs', { keyword })).count ?? 0, 0, keyword);
      assert.equal((await okCall('listSSHKeyPairs', { keyword: 'K' })).count, 2);
      const second = await okCall('listSSHKeyPairs', { keyword: 'k', page: '2', pagesize: '1' });
      assert.equal(second.count, 2, 'count is the total, not the page');
      assert.deepEqual(
        second.sshkeypair.map((x: any) => x.name),
        ['k2'],
      );
      await okCall('deleteSSHKeyPair', { name: 'k2' });
      const v = (
        await okJob('deployVirtualMachine', {
          serviceofferingid: id.so,
          templateid: id.tpl,
          zoneid: id.zone,
          networkids: id.net2,
          name: 'kv',
          keypair: 'k1',
        })
      ).virtualmachine;
      assert.equal(v.keypairs, 'k1');
      assert.equal((await routerHosts(id.net2)).metadata[v.nic[0].ipaddress]!.metaData['public-keys'], pub);
      const missing = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net2,
        name: 'kv2',
        keypair: 'nope',
      });
      assert.match(missing.error.errortext, /keypair/);
      await okCall('deleteSSHKeyPair', { name: 'k1' });
      assert.equal((await okCall('listSSHKeyPairs', { name: 'k1' })).count ?? 0, 0);
    });

    test('stopRouter / startRouter: the router is rebuilt from the database', async () => {
      const r = (await okCall('listRouters', { networkid: id.net2 })).router[0];
      for (const keyword of ['%', '_'])
        assert.equal((await okCall('listRouters', { keyword })).count ?? 0, 0, `keyword ${keyword}`);
      assert.equal((await okCall('listRouters', { keyword: r.name })).router[0].id, r.id);
      assert.equal((await okJob('stopRouter', { id: r.id })).router.state, 'Stopped');
      const row = await s.store.db
        .selectFrom('routers')
        .select('id')
        .where('uuid', '=', r.id)
        .executeTakeFirstOrThrow();
      assert.equal(sim().routers.get(Number(row.id))!.running, false);
      const started = (await okJob('startRouter', { id: r.id })).router;
      assert.equal(started.state, 'Running');
      assert.equal(started.appliedgeneration, started.desiredgeneration);
      const users = await call('listRouters', {});
      assert.equal(users.status, 200);
    });
  });
}
