/**
 * Concurrent first use of new isolated networks (issue 12 items 2 and 9), on every database, one server:
 * - 16 concurrent associateIpAddress on one network just created: exactly one of the 16 addresses is its
 *   source NAT (was up to 5 on PostgreSQL, 2-4 on MariaDB);
 * - 64 concurrent deploys over 32 networks just created (two each): every deploy succeeds (MariaDB failed some
 *   530 "Could not take a VLAN ... too many concurrent allocations"), and each network ends with one VLAN
 *   (one vnet allocation, the one it carries) and one source NAT;
 * - the database refuses a second source NAT for a network or VPC and a second VLAN for a network, whatever
 *   the application does (migration 0007).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { isUniqueViolation, openStore } from '../../src/store/db.js';
import type { Store } from '../../src/store/db.js';
import { createNetworks, runBurst, setupZone, startCluster } from './harness.js';
import type { Cluster, ZoneSetup } from './harness.js';
import { checkInvariants, violations } from './invariants.js';

for (const kind of testDbKinds()) {
  describe(`first use of new networks under concurrency (${kind})`, () => {
    let tdb: TestDatabase;
    let cluster: Cluster;
    let store: Store;
    let zone: ZoneSetup;

    before(async () => {
      tdb = await createTestDatabase(kind);
      cluster = await startCluster({ dbUrl: tdb.url, servers: 1 });
      store = await openStore(tdb.url, { poolSize: 2 });
      zone = await setupZone(cluster.admin());
    });

    after(async () => {
      await store?.close();
      const codes = (await cluster?.stop()) ?? [];
      await tdb?.drop();
      assert.deepEqual(
        codes,
        codes.map(() => 0),
      );
    });

    const snatOf = async (uuid: string) =>
      Number(
        (
          await sql<{
            n: number;
          }>`select count(*) as n from ip_allocations a join networks n on n.id = a.network_id
            where n.uuid = ${uuid} and a.owner_kind = 'publicip' and a.source_nat = 1`.execute(store.db)
        ).rows[0]!.n,
      );

    test('16 concurrent associates on a new network: one source NAT', async () => {
      const [net] = await createNetworks(cluster.admin(), zone, 1, { prefix: 'assoc', firstOctet: 1 });
      const r = await runBurst(cluster, {
        clients: 16,
        ops: Array.from({ length: 16 }, () => ({
          command: 'associateIpAddress',
          params: { networkid: net! },
        })),
      });
      assert.deepEqual(r.counts, { ok: 16 }, JSON.stringify(r.outcomes.filter((o) => o.kind !== 'ok')));
      assert.equal(await snatOf(net!), 1, 'source NATs of the network');
    });

    test('64 concurrent deploys over 32 new networks: all succeed, one VLAN and one source NAT each', async () => {
      const nets = await createNetworks(cluster.admin(), zone, 32, { prefix: 'dep', firstOctet: 10 });
      const r = await runBurst(cluster, {
        clients: 64,
        ops: [0, 1].flatMap((k) =>
          nets.map((n, i) => ({
            command: 'deployVirtualMachine',
            params: {
              serviceofferingid: zone.serviceOfferingId,
              templateid: zone.templateId,
              zoneid: zone.zoneId,
              networkids: n,
              name: `vm-${i}-${k}`,
            },
          })),
        ),
      });
      assert.deepEqual(r.counts, { ok: 64 }, JSON.stringify(r.outcomes.filter((o) => o.kind !== 'ok')));
      for (const n of nets) assert.equal(await snatOf(n), 1, `source NATs of ${n}`);
      const v = violations(
        await checkInvariants(store, [
          'duplicateAddresses',
          'networksWithSeveralSourceNats',
          'implementedNetworksWithoutOneSourceNat',
          'vnetsHeldByNobody',
          'networksWithSeveralVnets',
          'addressesWithoutEvent',
        ]),
      );
      assert.deepEqual(v, {});
    });

    test('the database refuses a second source NAT per network or VPC and a second VLAN per network', async () => {
      const db = store.db as unknown as Kysely<Record<string, Record<string, unknown>>>;
      // Ids no row of the burst uses (ip_allocations' network/VPC ids have no foreign key).
      const net = 900_001;
      const vpc = 900_002;
      const ip = (n: number, o: Record<string, unknown>) => ({
        scope: 'pub:constraint-test',
        family: 4,
        address: n.toString(16).padStart(32, '0'),
        state: 'Allocated',
        owner_kind: 'publicip',
        created: 1,
        updated: 1,
        ...o,
      });
      const refused = async (what: string, table: string, row: Record<string, unknown>) => {
        let caught: unknown;
        await db
          .insertInto(table)
          .values(row)
          .execute()
          .catch((e: unknown) => (caught = e));
        assert.ok(isUniqueViolation(caught), `${what}: expected a unique violation, got ${String(caught)}`);
      };
      await db
        .insertInto('ip_allocations')
        .values(ip(1, { network_id: net, source_nat: 1 }))
        .execute();
      await db
        .insertInto('ip_allocations')
        .values(ip(2, { network_id: net, source_nat: 0 }))
        .execute();
      await db
        .insertInto('ip_allocations')
        .values(ip(3, { network_id: net + 10, source_nat: 1 }))
        .execute();
      await refused(
        'second source NAT of a network',
        'ip_allocations',
        ip(4, { network_id: net, source_nat: 1 }),
      );
      await db
        .insertInto('ip_allocations')
        .values(ip(5, { vpc_id: vpc, source_nat: 1 }))
        .execute();
      // A tier's ordinary IPs carry both ids; only the VPC's own source NAT (no network) counts.
      await db
        .insertInto('ip_allocations')
        .values(ip(6, { vpc_id: vpc, network_id: net + 20, source_nat: 0 }))
        .execute();
      await refused('second source NAT of a VPC', 'ip_allocations', ip(7, { vpc_id: vpc, source_nat: 1 }));
      const pn = await db.selectFrom('physical_networks').select(['id', 'zone_id']).executeTakeFirstOrThrow();
      const vnet = (v: number, network: number | null) => ({
        zone_id: pn.zone_id,
        physical_network_id: pn.id,
        vnet: v,
        network_id: network,
        account_id: null,
        taken: 1,
      });
      await db.insertInto('vnet_allocations').values(vnet(3001, net)).execute();
      await db.insertInto('vnet_allocations').values(vnet(3002, null)).execute();
      await db.insertInto('vnet_allocations').values(vnet(3003, null)).execute();
      await refused('second VLAN of a network', 'vnet_allocations', vnet(3004, net));
      await db.deleteFrom('vnet_allocations').where('vnet', '>', 3000).execute();
      await db.deleteFrom('ip_allocations').where('scope', '=', 'pub:constraint-test').execute();
    });
  });
}
