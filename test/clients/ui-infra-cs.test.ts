/**
 * What CloudStack's web UI reads on the infrastructure side (issue 14), with python `cs`: listInfrastructure
 * counts, listZonesMetrics, alerts raised by stacknet itself (public-IP capacity over its zone threshold, driven
 * through the API), router `redundantstate`/`softwareversion`/`hostname` and network `publicmtu`/`privatemtu`.
 * On SQLite and PostgreSQL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { eventually, ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, ServerProcess, CsBridge } from '../api/harness.js';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { createTestZone, createUserClient } from '../networking/zone-fixture.js';
import { openStore } from '../../src/store/db.js';

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');
const job = { fetch_result: true };
const PUBLIC_IP_THRESHOLD = 'zone.virtualnetwork.publicip.capacity.notificationthreshold';

/** The one alert a list holds (the test fails if there is none). */
function only(l: Alert[]): Alert {
  assert.ok(l[0], 'an alert');
  return l[0];
}

interface Alert {
  id: string;
  type: number;
  name: string;
  description: string;
  sent: string;
}

for (const kind of kinds) {
  describe(`the UI's infrastructure pages with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: CsClient;
    let alice: CsClient;
    let zoneA: string;
    let zoneB: string;
    let iso: string;
    let vmId: string;

    const alertsOf = async (zoneName: string): Promise<Alert[]> =>
      (ok(await admin('listAlerts', { type: '4', keyword: zoneName }), 'listAlerts').alert ?? []) as Alert[];

    const network = async (zoneid: string, name: string): Promise<string> =>
      ok(
        await alice('createNetwork', { zoneid, name, displaytext: name, networkofferingid: iso }),
        `createNetwork ${name}`,
      ).network.id as string;

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      alice = (await createUserClient(admin, (k, s) => bridge.client(server.url, k, s), 'infra-alice'))
        .client;
      zoneA = (
        await createTestZone(admin, {
          name: 'alert-zone-a',
          vlans: '700-709',
          publicVlan: '40',
          publicPrefix: '198.51.100',
          guestCidr: '10.9.0.0/16',
        })
      ).zone;
      zoneB = (
        await createTestZone(admin, {
          name: 'alert-zone-b',
          vlans: '710-719',
          publicVlan: '41',
          publicPrefix: '203.0.113',
          guestCidr: '10.10.0.0/16',
        })
      ).zone;
      const offerings = ok(await alice('listNetworkOfferings', {}), 'listNetworkOfferings')
        .networkoffering as {
        id: string;
        name: string;
      }[];
      iso = offerings.find((o) => o.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService')!.id;
      // A pass a second, so the test sees conditions quickly (CloudStack's default is 5 minutes).
      ok(
        await admin('updateConfiguration', { name: 'capacity.check.period', value: '1000' }),
        'check period',
      );
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    test('public IPs in use above the zone threshold raise one ALERT.NETWORK.PUBLICIP alert', async () => {
      // 31 addresses in each zone's range: 4 in use (the source NAT and 3 more) is 13%, above 10%.
      for (const zoneid of [zoneA, zoneB])
        ok(
          await admin('updateConfiguration', { name: PUBLIC_IP_THRESHOLD, value: '0.1', zoneid }),
          'zone threshold',
        );
      assert.equal(
        ok(await admin('listConfigurations', { name: PUBLIC_IP_THRESHOLD }), 'listConfigurations')
          .configuration[0].value,
        '0.75',
        "CloudStack's global default",
      );
      assert.deepEqual(await alertsOf('alert-zone-a'), [], 'no alert before the addresses are taken');
      const netA = await network(zoneA, 'alert-net-a');
      // A VM implements the network and gives it its router (listed below).
      vmId = ok(
        await alice(
          'deployVirtualMachine',
          {
            serviceofferingid: ok(await alice('listServiceOfferings', { name: 'Small Instance' }), 'so')
              .serviceoffering[0].id,
            templateid: ok(await alice('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0]
              .id,
            zoneid: zoneA,
            networkids: netA,
            name: 'infra-vm',
          },
          job,
        ),
        'deployVirtualMachine',
      ).virtualmachine.id as string;
      for (let i = 0; i < 4; i++)
        ok(await alice('associateIpAddress', { networkid: netA }, job), `associateIpAddress ${i}`);
      const a = only(
        await eventually(
          async () => {
            const l = await alertsOf('alert-zone-a');
            return l.length ? l : undefined;
          },
          20_000,
          'the public-IP alert of zone a',
        ),
      );
      assert.equal(a.type, 4);
      assert.equal(a.name, 'ALERT.NETWORK.PUBLICIP');
      // The pass may come between two associations: what it counted, of the range's 31.
      assert.match(a.description, /zone alert-zone-a: \d+ of 31 in use \(\d+(\.\d+)?%\)/);
      assert.match(a.sent, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/);
      assert.deepEqual(
        ok(await admin('listAlerts', { id: a.id }), 'listAlerts id').alert.map((x: Alert) => x.id),
        [a.id],
      );

      // A condition that starts later, in zone b: the pass that sees it also saw zone a's condition still
      // holding, and must not have raised it again.
      const netB = await network(zoneB, 'alert-net-b');
      for (let i = 0; i < 4; i++)
        ok(await alice('associateIpAddress', { networkid: netB }, job), `associateIpAddress b ${i}`);
      await eventually(
        async () => ((await alertsOf('alert-zone-b')).length ? true : undefined),
        20_000,
        'zone b',
      );
      assert.equal((await alertsOf('alert-zone-a')).length, 1, 'one alert per condition, not one per pass');
      const all = ok(await admin('listAlerts', {}), 'listAlerts').alert as Alert[];
      assert.equal(all.length, 2);
      assert.equal(ok(await admin('listAlerts', { type: '9' }), 'listAlerts type 9').count, undefined);
      assert.equal(ok(await admin('listInfrastructure', {}), 'listInfrastructure').infrastructure.alerts, 2);
    });

    test('archiveAlerts and deleteAlerts: the chosen alerts leave the list; a choice is required', async () => {
      const a = only(await alertsOf('alert-zone-a'));
      const b = only(await alertsOf('alert-zone-b'));
      refused(await admin('archiveAlerts', {}), 431, /ids/, 'archiveAlerts without a choice');
      refused(await admin('deleteAlerts', { type: 'x' }), 431, /type/, 'a type that is no number');
      refused(
        await alice('listAlerts', {}),
        432,
        /does not exist or it is not available/,
        'listAlerts as a user',
      );
      ok(await admin('archiveAlerts', { ids: a.id }), 'archiveAlerts');
      assert.deepEqual(await alertsOf('alert-zone-a'), [], 'archived');
      ok(await admin('deleteAlerts', { type: '4' }), 'deleteAlerts');
      // Zone b's condition still holds: the next pass raises it anew (a new alert), zone a's stays archived.
      const again = await eventually(
        async () => {
          const l = await alertsOf('alert-zone-b');
          return l.length ? l : undefined;
        },
        20_000,
        'zone b raised again',
      );
      assert.equal(again.length, 1);
      assert.notEqual(only(again).id, b.id, 'the deleted alert is gone');
      assert.deepEqual(await alertsOf('alert-zone-a'), [], 'an archived condition is not raised again');
    });

    test('listInfrastructure counts what exists, for root admins only', async () => {
      const routers = ok(await admin('listRouters', { listall: true }), 'listRouters').router as unknown[];
      const alerts = ok(await admin('listAlerts', {}), 'listAlerts').count ?? 0;
      const infra = ok(await admin('listInfrastructure', {}), 'listInfrastructure').infrastructure;
      assert.deepEqual(infra, {
        zones: 2,
        pods: 0,
        clusters: 0,
        hosts: 0,
        storagepools: 0,
        imagestores: 0,
        systemvms: 0,
        routers: routers.length,
        ilbvms: 0,
        managementservers: 1,
        cpusockets: 0,
        alerts,
      });
      assert.ok(routers.length >= 1, "the VM's network has its router");
      refused(
        await alice('listInfrastructure', {}),
        432,
        /does not exist or it is not available/,
        'as a user',
      );
    });

    test('listZonesMetrics answers the zone list with zero metrics and no threshold crossed', async () => {
      const zones = ok(await admin('listZones', {}), 'listZones');
      const metrics = ok(await admin('listZonesMetrics', {}), 'listZonesMetrics');
      assert.equal(metrics.count, zones.count);
      const z = metrics.zone.find((x: { id: string }) => x.id === zoneA);
      assert.deepEqual(
        {
          ...z,
          ...Object.fromEntries(
            Object.keys(z)
              .filter((k) => !(k in zones.zone[0]))
              .map((k) => [k, z[k]]),
          ),
        },
        z,
      );
      assert.equal(z.name, 'alert-zone-a');
      assert.equal(z.state, 'Enabled');
      assert.equal(z.cputotal, '0.00 Ghz');
      assert.equal(z.memorytotal, '0.00 GB');
      for (const k of ['cputhreshold', 'cpudisablethreshold', 'memorythreshold', 'memorydisablethreshold'])
        assert.equal(z[k], false, k);
      const plain = zones.zone.find((x: { id: string }) => x.id === zoneA);
      for (const [k, v] of Object.entries(plain)) assert.deepEqual(z[k], v, `listZones field ${k}`);
      assert.equal(
        ok(await admin('listZonesMetrics', { name: 'alert-zone-b' }), 'by name').zone[0].id,
        zoneB,
      );
    });

    test('routers answer redundantstate, softwareversion and hostname; networks their MTUs', async () => {
      const [r] = ok(await admin('listRouters', { listall: true }), 'listRouters').router;
      assert.equal(r.redundantstate, 'UNKNOWN', 'a standalone router');
      assert.equal(r.isredundantrouter, false);
      assert.equal(r.softwareversion, '0.1.0');
      assert.equal(r.hostname, hostname());
      const [n] = ok(await alice('listNetworks', { zoneid: zoneA }), 'listNetworks').network;
      assert.equal(n.type, 'Isolated');
      assert.equal(n.publicmtu, 1500);
      assert.equal(n.privatemtu, 1500);
    });

    test('a router whose health checks fail raises one ALERT.SERVICE.DOMAINROUTER alert', async () => {
      // A row the router cannot serve (a MAC that is no MAC, written by hand): the agent sets it aside and
      // reports itself Degraded, which fails the router's health checks.
      const store = await openStore(tdb.url, { poolSize: 1 });
      try {
        const vm = await store.db
          .selectFrom('vms')
          .select('id')
          .where('uuid', '=', vmId)
          .executeTakeFirstOrThrow();
        await store.db.updateTable('nics').set({ mac: 'not-a-mac' }).where('vm_id', '=', vm.id).execute();
        await store.db
          .updateTable('routers')
          .set((eb) => ({ desired_generation: eb('desired_generation', '+', 1) }))
          .where('removed', 'is', null)
          .execute();
      } finally {
        await store.close();
      }
      const a = only(
        await eventually(
          async () => {
            const l = ok(await admin('listAlerts', { type: '9' }), 'listAlerts type 9').alert as
              Alert[] | undefined;
            return l?.length ? l : undefined;
          },
          20_000,
          'the router alert',
        ),
      );
      const [r] = ok(await admin('listRouters', { listall: true }), 'listRouters').router;
      assert.equal(r.healthchecksfailed, true);
      assert.equal(a.name, 'ALERT.SERVICE.DOMAINROUTER');
      assert.match(a.description, new RegExp(`router ${r.name}.*quarantine.*not-a-mac`));
      assert.equal(ok(await admin('listAlerts', { name: 'ALERT.SERVICE.DOMAINROUTER' }), 'by name').count, 1);
    });
  });
}
