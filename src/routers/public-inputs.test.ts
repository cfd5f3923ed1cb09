import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netDb } from '../networks/tables.js';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { SimulatorDriver } from '../drivers/simulator.js';
import { routerPublicIps, routerPublicNics, vpcEdgeNetworkId } from './public-inputs.js';
import { groupPublicNics } from './public-nics.js';
import { migrations } from '../store/migrations/index.js';
import { sql } from 'kysely';
import type { PublicNicGroup } from './public-nics.js';
import { loadBuildInput, routerById } from './repository.js';
import { routerRuntime } from './runtime.js';
import {
  insertNetwork,
  insertPublicIp,
  insertRouter,
  insertVmWithNic,
  insertVpc,
  insertZoneAndNetwork,
} from './testing/fixtures.js';

const summary = (ips: Awaited<ReturnType<typeof routerPublicIps>>) =>
  ips.map(
    (i) =>
      `${i.address} ${i.vlan} ${i.gateway}/${i.prefix}${i.sourceNat ? ' snat' : ''}${i.staticNatGuestIp ? ` -> ${i.staticNatGuestIp}` : ''}`,
  );

for (const kind of testDbKinds()) {
  test(`routerPublicIps, isolated network: source NAT first, other VLANs, portable, static NAT (${kind})`, async () => {
    const t = await createTestStore(kind);
    try {
      const db = t.store.db;
      const { zoneId, networkId } = await insertZoneAndNetwork(db);
      const other = await insertNetwork(db, zoneId, { cidr: '10.2.2.0/24', gateway: '10.2.2.1', vnet: 101 });
      const vm = await insertVmWithNic(db, zoneId, networkId, {
        name: 'vm1',
        ip: '10.1.1.10',
        mac: '02:00:00:00:00:01',
      });
      await insertPublicIp(db, zoneId, {
        address: '192.0.2.80',
        gateway: '192.0.2.1',
        vlan: 'vlan://10',
        networkId,
      });
      await insertPublicIp(db, zoneId, {
        address: '192.0.2.90',
        gateway: '192.0.2.1',
        vlan: 'vlan://10',
        networkId,
        sourceNat: true,
      });
      await insertPublicIp(db, zoneId, {
        address: '198.51.100.7',
        gateway: '198.51.100.1',
        netmask: '255.255.255.128',
        vlan: '20',
        networkId,
        staticNat: { vmId: vm, guestIp: '10.1.1.10' },
      });
      await insertPublicIp(db, zoneId, {
        address: '203.0.113.9',
        gateway: '203.0.113.1',
        vlan: 'untagged',
        networkId,
        portable: true,
      });
      // Not this router's: another network's, and one an association job still holds.
      await insertPublicIp(db, zoneId, {
        address: '192.0.2.70',
        gateway: '192.0.2.1',
        vlan: '10',
        networkId: other,
      });
      await insertPublicIp(db, zoneId, {
        address: '192.0.2.60',
        gateway: '192.0.2.1',
        vlan: '10',
        networkId,
        state: 'Allocating',
      });
      assert.deepEqual(summary(await routerPublicIps(db, networkId)), [
        '192.0.2.90 10 192.0.2.1/24 snat',
        '192.0.2.80 10 192.0.2.1/24',
        '198.51.100.7 20 198.51.100.1/25 -> 10.1.1.10',
        '203.0.113.9 untagged 203.0.113.1/24',
      ]);

      // The desired state and the driver runtime name the same interfaces.
      const rid = await insertRouter(db, zoneId, networkId);
      const router = (await routerById(db, rid))!;
      const input = await loadBuildInput(db, router, 5);
      assert.deepEqual(input.public, {
        nics: [
          {
            interface: 'eth2',
            vlan: '10',
            gateway: '192.0.2.1',
            prefix: 24,
            addresses: ['192.0.2.90', '192.0.2.80'],
          },
          {
            interface: 'eth3',
            vlan: 'untagged',
            gateway: '203.0.113.1',
            prefix: 24,
            addresses: ['203.0.113.9'],
          },
          { interface: 'eth4', vlan: '20', gateway: '198.51.100.1', prefix: 25, addresses: ['198.51.100.7'] },
        ],
        sourceNatIp: '192.0.2.90',
        staticNats: [{ publicIp: '198.51.100.7', guestIp: '10.1.1.10' }],
        // No offering: nothing to deny by default.
        egressDefaultAllow: true,
      });
      const rt = await routerRuntime(db, router);
      assert.equal(rt.zoneId, zoneId);
      assert.deepEqual(
        rt.publicNics,
        input.public!.nics.map(({ addresses: _, ...n }) => n),
      );
      // routerPublicNics (listRouters, the runtime) reads each range's first address only, and names the same
      // interfaces with the same first address as grouping every address does.
      const heads = (groups: PublicNicGroup[]) =>
        groups.map((g) => `${g.interface} ${g.vlan} ${g.gateway}/${g.prefix} ${g.ips[0]!.address}`);
      assert.deepEqual(
        heads(await routerPublicNics(db, networkId)),
        heads(groupPublicNics(await routerPublicIps(db, networkId))),
      );
      assert.deepEqual(heads(await routerPublicNics(db, networkId)), [
        'eth2 10 192.0.2.1/24 192.0.2.90',
        'eth3 untagged 203.0.113.1/24 203.0.113.9',
        'eth4 20 198.51.100.1/25 198.51.100.7',
      ]);
      // A router whose network holds no public IP: no public section, no public NICs.
      const rOther = await insertRouter(db, zoneId, await insertNetwork(db, zoneId, { vnet: 102 }), {
        controlIp: '169.254.3.4',
      });
      const rowOther = (await routerById(db, rOther))!;
      assert.equal((await loadBuildInput(db, rowOther, 1)).public, undefined);
      assert.deepEqual((await routerRuntime(db, rowOther)).publicNics, []);
      // The simulator takes the new fields.
      const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-pubin-'));
      try {
        const sim = new SimulatorDriver({ dataDir });
        await sim.ensureRouter(rt);
        assert.deepEqual(sim.routers.get(rid)!.publicNics, rt.publicNics);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
      // The offering's egressdefaultpolicy: the built-in isolated offering's is deny (0).
      const offering = await netDb(db)
        .selectFrom('network_offerings')
        .select(['id', 'egress_default_policy'])
        .orderBy('id')
        .executeTakeFirstOrThrow();
      await netDb(db)
        .updateTable('networks')
        .set({ offering_id: offering.id })
        .where('id', '=', networkId)
        .execute();
      assert.equal(
        (await loadBuildInput(db, router, 6)).public?.egressDefaultAllow,
        Number(offering.egress_default_policy) === 1,
      );
      await netDb(db)
        .updateTable('network_offerings')
        .set({ egress_default_policy: 1 })
        .where('id', '=', offering.id)
        .execute();
      assert.equal((await loadBuildInput(db, router, 7)).public?.egressDefaultAllow, true);
      await netDb(db)
        .updateTable('network_offerings')
        .set({ egress_default_policy: 0 })
        .where('id', '=', offering.id)
        .execute();
      assert.equal((await loadBuildInput(db, router, 8)).public?.egressDefaultAllow, false);
    } finally {
      await t.cleanup();
    }
  });

  test(`routerPublicIps, VPC: only the edge tier's router holds the VPC's IPs (${kind})`, async () => {
    const t = await createTestStore(kind);
    try {
      const db = t.store.db;
      const { zoneId } = await insertZoneAndNetwork(db);
      const vpcId = await insertVpc(db, zoneId);
      const tierA = await insertNetwork(db, zoneId, {
        cidr: '10.8.1.0/24',
        gateway: '10.8.1.1',
        vpcId,
        vnet: 201,
      });
      const tierB = await insertNetwork(db, zoneId, {
        cidr: '10.8.2.0/24',
        gateway: '10.8.2.1',
        vpcId,
        vnet: 202,
      });
      await insertPublicIp(db, zoneId, {
        address: '192.0.2.40',
        gateway: '192.0.2.1',
        vlan: '10',
        vpcId,
        sourceNat: true,
      });
      await insertPublicIp(db, zoneId, {
        address: '192.0.2.41',
        gateway: '192.0.2.1',
        vlan: '10',
        vpcId,
        networkId: tierB,
      });
      // No tier has a router yet: nobody holds them.
      assert.equal(await vpcEdgeNetworkId(db, vpcId), null);
      assert.deepEqual(await routerPublicIps(db, tierA), []);
      const rB = await insertRouter(db, zoneId, tierB, { controlIp: '169.254.3.5' });
      assert.equal(await vpcEdgeNetworkId(db, vpcId), tierB);
      assert.deepEqual(summary(await routerPublicIps(db, tierB)), [
        '192.0.2.40 10 192.0.2.1/24 snat',
        '192.0.2.41 10 192.0.2.1/24',
      ]);
      // Tier A gets a router: the lowest live tier is the edge, and it holds every IP of the VPC.
      const rA = await insertRouter(db, zoneId, tierA, { controlIp: '169.254.3.6' });
      assert.equal(await vpcEdgeNetworkId(db, vpcId), tierA);
      assert.equal((await routerPublicIps(db, tierA)).length, 2);
      assert.deepEqual(await routerPublicIps(db, tierB), []);
      const inputA = await loadBuildInput(db, (await routerById(db, rA))!, 1);
      assert.equal(inputA.public?.sourceNatIp, '192.0.2.40');
      assert.equal(inputA.public?.egressDefaultAllow, true, 'a VPC tier: its ACL governs egress');
      assert.equal((await loadBuildInput(db, (await routerById(db, rB))!, 1)).public, undefined);
      assert.deepEqual(
        (await routerRuntime(db, (await routerById(db, rA))!)).publicNics.map((n) => n.interface),
        ['eth2'],
      );
    } finally {
      await t.cleanup();
    }
  });
}

if (testDbKinds().includes('mysql'))
  test('0032 on MariaDB: invisible virtual columns and their indexes, down and up again (mysql)', async () => {
    const t = await createTestStore('mysql');
    try {
      const db = t.store.db;
      const shape = async () =>
        (
          await sql<{
            c: string;
            extra: string;
          }>`select column_name as c, extra from information_schema.columns
            where table_schema = database() and table_name = 'ip_allocations' and column_name like 'held_public_%'
            order by column_name`.execute(db)
        ).rows.map((r) => `${r.c} ${r.extra}`);
      const indexes = async () =>
        (
          await sql<{ i: string }>`select distinct index_name as i from information_schema.statistics
            where table_schema = database() and table_name = 'ip_allocations' and index_name like '%public_heads_ix'
            order by index_name`.execute(db)
        ).rows.map((r) => r.i);
      const made = [await shape(), await indexes()];
      assert.deepEqual(made[1], [
        'ip_allocations_network_public_heads_ix',
        'ip_allocations_vpc_public_heads_ix',
      ]);
      for (const c of made[0]!) assert.match(c, /^held_public_(network|vpc)_id VIRTUAL GENERATED.*INVISIBLE/);
      assert.equal(made[0]!.length, 2);
      const m = migrations['0032-router-public-heads-mariadb']!;
      await m.down!(db as never);
      assert.deepEqual([await shape(), await indexes()], [[], []]);
      await m.up(db as never);
      assert.deepEqual([await shape(), await indexes()], made);
      // SELECT * does not return them.
      const { zoneId, networkId } = await insertZoneAndNetwork(db);
      await insertPublicIp(db, zoneId, {
        address: '192.0.2.80',
        gateway: '192.0.2.1',
        vlan: '10',
        networkId,
      });
      const row = (await sql<Record<string, unknown>>`select * from ip_allocations`.execute(db)).rows[0]!;
      assert.ok(!('held_public_network_id' in row));
      const held = await sql<{ n: unknown }>`select held_public_network_id as n from ip_allocations`.execute(
        db,
      );
      assert.equal(Number(held.rows[0]!.n), networkId);
    } finally {
      await t.cleanup();
    }
  });
