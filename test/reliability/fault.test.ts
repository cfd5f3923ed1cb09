/**
 * The standing fault test (issue 12) per multi-server database: two `stacknet server` processes share one
 * PostgreSQL (and separately MariaDB) database; 64 signed clients run a burst of associateIpAddress and
 * deployVirtualMachine (simulator driver) across networks created just before, so their first use races.
 * (a) Every connection of the database is terminated mid-burst, twice (pg_terminate_backend / KILL
 * CONNECTION); (b) then, on fresh networks, one server is SIGKILLed mid-burst and restarted. Then, once the takeover
 * and GC intervals have passed (lowered here), invariants.ts must hold: no address twice, one source NAT per
 * implemented network, no VLAN held by nobody, no job pending, no VM Starting, no public IP Allocating, every
 * address with its event; and no server may have exited by itself.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { openStore } from '../../src/store/db.js';
import type { Store } from '../../src/store/db.js';
import {
  configure,
  createNetworks,
  killAndRestart,
  runBurst,
  setupZone,
  startCluster,
  terminateDbConnections,
} from './harness.js';
import type { BurstOp, BurstResult, Cluster, ZoneSetup } from './harness.js';
import { eventuallyHolds } from './invariants.js';

const CLIENTS = 64;
const NETWORKS = 8;
/** Per network: this many associates and this many deploys (8 × 20 = 160 requests per burst). */
const PER_NETWORK = 10;
/**
 * Faults fire when this many requests have been sent: the 64 clients start 64 at once, so past 64 every fault
 * lands with 64 requests in flight, whatever the machine's speed (by time, a fast run had finished its burst
 * before the fault).
 */
const FIRST_FAULT = 90;
const SECOND_FAULT = 130;
/**
 * The servers' job lease (STACKNET_JOB_LEASE_SECONDS; 60 s by default): a killed server's jobs wait for it before
 * another server takes them, then GC. Shortened so that (b) settles in seconds, not a minute; renewed every 5 s.
 */
const LEASE_SECONDS = 15;
const SETTLE_MS = 90_000;

function burstOps(networks: string[], zone: ZoneSetup, tag: string): BurstOp[] {
  const ops: BurstOp[] = [];
  for (let k = 0; k < PER_NETWORK; k++) {
    networks.forEach((n, i) => {
      ops.push({ command: 'associateIpAddress', params: { networkid: n } });
      ops.push({
        command: 'deployVirtualMachine',
        params: {
          serviceofferingid: zone.serviceOfferingId,
          templateid: zone.templateId,
          zoneid: zone.zoneId,
          networkids: n,
          name: `${tag}-${i}-${k}`,
        },
      });
    });
  }
  return ops;
}

function summary(r: BurstResult): string {
  const errors = r.outcomes
    .filter((o) => o.kind !== 'ok')
    .slice(0, 8)
    .map((o) => `${o.op.command} ${o.kind} ${o.code ?? ''} ${o.text ?? ''}`);
  return `${JSON.stringify(r.counts)} faults ${JSON.stringify(r.faults)}\n${errors.join('\n')}`;
}

const kinds = testDbKinds().filter((k) => k === 'postgres' || k === 'mysql');

for (const kind of kinds) {
  describe(`fault test: two servers sharing ${kind}, 64 clients, kills and terminated connections`, () => {
    let tdb: TestDatabase;
    let cluster: Cluster;
    let store: Store;
    let zone: ZoneSetup;

    before(async () => {
      tdb = await createTestDatabase(kind);
      cluster = await startCluster({
        dbUrl: tdb.url,
        servers: 2,
        env: { STACKNET_JOB_LEASE_SECONDS: String(LEASE_SECONDS) },
      });
      store = await openStore(tdb.url, { poolSize: 2 });
      const admin = cluster.admin();
      await configure(admin, {
        'network.gc.interval': 2,
        'network.gc.wait': 2,
        'expunge.interval': 1,
        'expunge.delay': 1,
      });
      zone = await setupZone(admin);
    });

    after(async () => {
      await store?.close();
      const codes = (await cluster?.stop()) ?? [];
      await tdb?.drop();
      for (const s of cluster?.servers ?? []) {
        assert.deepEqual(s.unexpectedExits, [], `${s.name} exited by itself:\n${s.output().slice(-4000)}`);
      }
      assert.deepEqual(
        codes,
        codes.map(() => 0),
        'every server shut down cleanly',
      );
    });

    test('(a) every database connection terminated mid-burst, twice', async () => {
      const nets = await createNetworks(cluster.admin(), zone, NETWORKS, { prefix: 'term', firstOctet: 101 });
      const terminated: number[] = [];
      const terminate = (afterOps: number) => ({
        afterOps,
        what: `terminate the database's connections`,
        inject: async () => {
          // Right after a first termination the pools may hold nothing yet: wait for connections to cut.
          let n = 0;
          for (let i = 0; i < 100 && n === 0; i++) {
            n = await terminateDbConnections(tdb.url);
            if (n === 0) await new Promise((res) => setTimeout(res, 50));
          }
          terminated.push(n);
        },
      });
      const r = await runBurst(cluster, {
        clients: CLIENTS,
        ops: burstOps(nets, zone, 't'),
        faults: [terminate(FIRST_FAULT), terminate(SECOND_FAULT)],
      });
      console.log(`${kind} (a): terminated ${terminated.join(' + ')} connections; ${summary(r)}`);
      assert.equal(r.faults.length, 2, 'both terminations happened during the burst');
      assert.ok(
        terminated.every((n) => n > 0),
        'connections were there to terminate',
      );
      for (const s of cluster.servers) {
        assert.ok(s.alive(), `${s.name} survived:\n${s.output().slice(-4000)}`);
        assert.deepEqual(s.unexpectedExits, []);
      }
      // A request whose connection died answers 530 (or is run again and succeeds); none is lost unanswered.
      const bad = r.outcomes.filter((o) => o.kind === 'unreachable' || o.kind === 'lost');
      assert.deepEqual(bad, [], 'every request answered');
      const codes = new Set(r.outcomes.filter((o) => o.kind === 'failed').map((o) => o.code));
      assert.ok(
        [...codes].every((c) => c === 530),
        `failures are 530 only: ${summary(r)}`,
      );
      const left = await eventuallyHolds(store, SETTLE_MS);
      assert.deepEqual(left, {}, `invariants after terminated connections (${summary(r)})`);
    });

    // After (a): what a kill leaves for the takeover must not be counted against terminated connections.
    test('(b) a server SIGKILLed mid-burst and restarted', async () => {
      const nets = await createNetworks(cluster.admin(), zone, NETWORKS, { prefix: 'kill', firstOctet: 1 });
      const victim = cluster.servers[1]!;
      const r = await runBurst(cluster, {
        clients: CLIENTS,
        ops: burstOps(nets, zone, 'k'),
        faults: [{ ...killAndRestart(victim, 500), afterOps: FIRST_FAULT }],
      });
      console.log(`${kind} (b): ${summary(r)}`);
      assert.equal(r.faults.length, 1);
      assert.equal(victim.restarts, 1);
      const left = await eventuallyHolds(store, SETTLE_MS);
      assert.deepEqual(left, {}, `invariants after the kill (${summary(r)})`);
      for (const s of cluster.servers) assert.ok(s.alive(), `${s.name} is running`);
    });
  });
}
