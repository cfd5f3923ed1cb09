/**
 * The calls of the CloudStack UI's pages (issue 14), made as the UI makes them: a browser session logged in with
 * POST login, then GET /client/api with the sessionkey and the parameters each page sends (list views ask with
 * listall, page and pagesize = the capability's defaultuipagesize). For each page the answer must be 200 and carry
 * the fields the page shows in its columns and details. Pages: dashboard, guest networks (list, one network, its
 * public-IP and router tabs), public IPs, instances, zones, routers, accounts, events, global settings. The data is
 * built through the API with python `cs`: a zone, an isolated network with a deployed VM, a static-NAT address and
 * a VPC. On SQLite and PostgreSQL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, ok, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, ServerProcess, CsBridge } from '../api/harness.js';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { createTestZone } from '../networking/zone-fixture.js';
import { BrowserSession } from './harness.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');
const job = { fetch_result: true };
/** What a list view sends besides its own filters. */
const listView = { listall: 'true', page: '1', pagesize: '20' };

/** Every one of `fields` is present (not undefined) on `item`; the message names the missing ones. */
function hasFields(item: any, fields: readonly string[], what: string) {
  assert.ok(item, `${what}: no item`);
  const missing = fields.filter((f) => item[f] === undefined);
  assert.deepEqual(missing, [], `${what} lacks ${missing.join(', ')}: ${JSON.stringify(item)}`);
}

for (const kind of kinds) {
  describe(`the CloudStack UI's pages (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: CsClient;
    let call: (command: string, p?: Record<string, string>) => Promise<any>;
    const id = {} as Record<'zone' | 'net' | 'vpc' | 'vm' | 'natIp' | 'so' | 'tpl', string>;

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      id.zone = (
        await createTestZone(admin, {
          name: 'uip-zone',
          vlans: '800-809',
          publicVlan: '41',
          publicPrefix: '198.51.100',
          guestCidr: '10.20.0.0/16',
        })
      ).zone;
      const offerings = ok(await admin('listNetworkOfferings', {}), 'listNetworkOfferings').networkoffering;
      const iso = offerings.find(
        (o: any) => o.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService',
      ).id;
      id.net = ok(
        await admin('createNetwork', {
          zoneid: id.zone,
          name: 'web',
          displaytext: 'web',
          networkofferingid: iso,
        }),
        'createNetwork',
      ).network.id;
      id.so = ok(await admin('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0].id;
      id.tpl = ok(await admin('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
      id.vm = ok(
        await admin(
          'deployVirtualMachine',
          { serviceofferingid: id.so, templateid: id.tpl, zoneid: id.zone, networkids: id.net, name: 'web1' },
          job,
        ),
        'deployVirtualMachine',
      ).virtualmachine.id;
      id.natIp = ok(
        await admin('associateIpAddress', { networkid: id.net }, job),
        'associateIpAddress',
      ).ipaddress.id;
      ok(
        await admin('enableStaticNat', { ipaddressid: id.natIp, virtualmachineid: id.vm }),
        'enableStaticNat',
      );
      const vo = ok(await admin('listVPCOfferings', {}), 'listVPCOfferings').vpcoffering[0].id;
      id.vpc = ok(
        await admin(
          'createVPC',
          { zoneid: id.zone, name: 'shop', displaytext: 'shop', cidr: '10.30.0.0/16', vpcofferingid: vo },
          job,
        ),
        'createVPC',
      ).vpc.id;

      // The UI's login: POST login, then every call carries the session key (the cookie goes along).
      const b = new BrowserSession(`http://127.0.0.1:${server.port}`);
      const l = await b.api({ command: 'login', username: 'admin', password: 'admin-test-password' }, 'POST');
      assert.equal(l.status, 200, JSON.stringify(l.json));
      const sessionkey = l.json.loginresponse.sessionkey as string;
      call = async (command, p = {}) => {
        const r = await b.api({ command, sessionkey, ...p });
        assert.equal(r.status, 200, `${command} ${JSON.stringify(p)}: ${JSON.stringify(r.json)}`);
        const key = `${command.toLowerCase()}response`;
        assert.ok(r.json[key], `${command} answers ${key}: ${JSON.stringify(r.json)}`);
        return r.json[key];
      };
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    test('dashboard: zones, capacity, the zone counters, alerts and the latest events', async () => {
      const zones = await call('listZones', { showicon: 'true' });
      hasFields(zones.zone[0], ['id', 'name'], 'dashboard zone');
      const zoneid = zones.zone[0].id as string;
      await call('listCapacity', { zoneid, fetchlatest: 'false' });
      // Counters: the dashboard reads only `count` (absent = 0).
      for (const [command, p] of [
        ['listPods', { zoneid }],
        ['listClusters', { zoneid }],
        ['listHosts', { zoneid, listall: 'true', details: 'min', type: 'routing', page: '1', pagesize: '1' }],
        [
          'listHosts',
          {
            zoneid,
            listall: 'true',
            details: 'min',
            type: 'routing',
            state: 'alert',
            page: '1',
            pagesize: '1',
          },
        ],
        ['listStoragePools', { zoneid }],
        ['listSystemVms', { zoneid }],
      ] as const)
        await call(command, p);
      const routers = await call('listRouters', { zoneid, listall: 'true' });
      assert.ok(routers.count >= 1, `router count ${JSON.stringify(routers)}`);
      const vms = await call('listVirtualMachines', {
        zoneid,
        listall: 'true',
        projectid: '-1',
        details: 'min',
        page: '1',
        pagesize: '1',
      });
      assert.equal(vms.count, 1);
      await call('listAlerts', { page: '1', pagesize: '8', listall: 'true' });
      const events = await call('listEvents', { page: '1', pagesize: '8', listall: 'true' });
      assert.ok(events.event.length > 0);
      for (const e of events.event)
        hasFields(e, ['id', 'type', 'level', 'state', 'description', 'created'], 'dashboard event');
    });

    test('guest networks: the list, one network, its public-IP tab and its router tab', async () => {
      const list = await call('listNetworks', listView);
      const web = list.network.find((n: any) => n.id === id.net);
      // Columns, then details, then what the tabs' show() tests (type, vpcid, service).
      hasFields(
        web,
        ['name', 'state', 'type', 'cidr', 'broadcasturi', 'domain', 'account', 'zonename'],
        'network columns',
      );
      hasFields(
        web,
        [
          'id',
          'displaytext',
          'traffictype',
          'vlan',
          'netmask',
          'gateway',
          'ispersistent',
          'restartrequired',
          'redundantrouter',
          'networkdomain',
          'zoneid',
          'domainid',
          'service',
          'publicmtu',
          'privatemtu',
        ],
        'network details',
      );
      assert.equal(web.type, 'Isolated');
      assert.equal(web.vpcid, undefined, 'the IP and egress tabs show only without vpcid');
      const one = await call('listNetworks', { id: id.net, listall: 'true' });
      assert.equal(one.network.length, 1);
      assert.equal(one.network[0].id, id.net);

      // Public IP addresses tab.
      const ips = await call('listPublicIpAddresses', {
        listall: 'true',
        page: '1',
        pagesize: '10',
        associatednetworkid: id.net,
      });
      assert.equal(ips.count, 2, JSON.stringify(ips));
      for (const ip of ips.publicipaddress)
        hasFields(
          ip,
          [
            'id',
            'ipaddress',
            'state',
            'associatednetworkid',
            'associatednetworkname',
            'forvirtualnetwork',
            'issourcenat',
          ],
          'network IP tab row',
        );
      const nat = ips.publicipaddress.find((ip: any) => ip.id === id.natIp);
      hasFields(nat, ['virtualmachineid', 'virtualmachinename'], 'static NAT row');

      // Virtual routers tab (the UI spells it listAll).
      const routers = await eventually(async () => {
        const r = await call('listRouters', { listAll: 'true', networkid: id.net });
        return r.router?.length ? r.router : undefined;
      });
      hasFields(
        routers[0],
        ['id', 'name', 'state', 'publicip', 'version', 'requiresupgrade', 'isredundantrouter', 'hostname'],
        'network router tab row',
      );
    });

    test('public IP addresses: columns and details', async () => {
      const list = await call('listPublicIpAddresses', listView);
      assert.ok(list.count >= 2);
      for (const ip of list.publicipaddress)
        hasFields(
          ip,
          ['id', 'ipaddress', 'state', 'allocated', 'account', 'zonename', 'issourcenat', 'isstaticnat'],
          'public IP',
        );
      const nat = list.publicipaddress.find((ip: any) => ip.id === id.natIp);
      hasFields(
        nat,
        ['associatednetworkname', 'networkid', 'virtualmachinename', 'vmipaddress'],
        'static NAT public IP',
      );
      const one = await call('listPublicIpAddresses', { id: id.natIp, listall: 'true' });
      assert.equal(one.publicipaddress[0].isstaticnat, true);
    });

    test('instances: the metrics list as an admin sees it, and the details', async () => {
      const list = await call('listVirtualMachinesMetrics', listView);
      const vm = list.virtualmachine.find((v: any) => v.id === id.vm);
      hasFields(
        vm,
        ['displayname', 'name', 'instancename', 'state', 'ipaddress', 'account', 'hostname', 'zonename'],
        'instance columns',
      );
      hasFields(vm, ['cpunumber', 'memory', 'cputotal', 'memorytotal'], 'instance metrics columns');
      hasFields(
        vm,
        [
          'id',
          'templatename',
          'serviceofferingname',
          'isdynamicallyscalable',
          'haenable',
          'hypervisor',
          'account',
          'domain',
          'zonename',
        ],
        'instance details',
      );
      const one = await call('listVirtualMachines', { id: id.vm, listall: 'true' });
      assert.equal(one.virtualmachine[0].id, id.vm);
      hasFields(one.virtualmachine[0], ['nic'], 'instance (one)');
    });

    test('zones: the metrics list and the details', async () => {
      const list = await call('listZonesMetrics', listView);
      const z = list.zone.find((x: any) => x.id === id.zone);
      hasFields(z, ['name', 'allocationstate', 'networktype'], 'zone columns');
      hasFields(
        z,
        ['id', 'guestcidraddress', 'localstorageenabled', 'securitygroupsenabled', 'dns1', 'internaldns1'],
        'zone details',
      );
    });

    test('routers: columns and details', async () => {
      const list = await call('listRouters', { ...listView, projectid: '-1' });
      assert.ok(list.router.length >= 1);
      const r = list.router.find((x: any) => x.guestnetworkid === id.net);
      hasFields(
        r,
        [
          'name',
          'state',
          'publicip',
          'guestnetworkname',
          'redundantstate',
          'version',
          'hostname',
          'account',
          'zonename',
          'requiresupgrade',
        ],
        'router columns',
      );
      hasFields(
        r,
        [
          'id',
          'serviceofferingname',
          'guestipaddress',
          'linklocalip',
          'networkdomain',
          'isredundantrouter',
          'created',
        ],
        'router details',
      );
      assert.equal(r.serviceofferingname, 'System Offering For Software Router');
    });

    test('accounts: columns and details', async () => {
      const list = await call('listAccounts', listView);
      const a = list.account.find((x: any) => x.name === 'admin');
      hasFields(a, ['name', 'state', 'rolename', 'roletype', 'domainpath'], 'account columns');
      assert.equal(a.domainpath, 'ROOT');
      // One ROOT volume per VM, as listVolumes shows them.
      const volumes = await call('listVolumes', { listall: 'true' });
      assert.equal(volumes.count, 1);
      assert.equal(a.vmtotal, 1);
      assert.equal(a.volumetotal, volumes.count);
      hasFields(
        a,
        // receivedbytes/sentbytes are left out: stacknet keeps no per-account traffic counters.
        ['id', 'iptotal', 'vmtotal', 'volumetotal', 'created', 'domainid', 'accounttype'],
        'account details',
      );
    });

    test('events: columns and details', async () => {
      const list = await call('listEvents', listView);
      assert.ok(list.count > 0);
      const deploy = list.event.find((e: any) => e.type === 'VM.CREATE');
      hasFields(
        deploy,
        ['id', 'level', 'type', 'state', 'description', 'username', 'account', 'domain', 'created'],
        'event',
      );
    });

    test('global settings: groups, then the settings of each', async () => {
      const groups = await call('listConfigurationGroups');
      assert.ok(groups.count > 0, JSON.stringify(groups));
      const settings = await call('listConfigurations', listView);
      assert.ok(settings.count > 0);
      for (const s of settings.configuration)
        hasFields(s, ['name', 'description', 'category'], `setting ${s.name}`);
      const one = await call('listConfigurations', { name: settings.configuration[0].name });
      assert.equal(one.configuration[0].name, settings.configuration[0].name);
    });
  });
}
