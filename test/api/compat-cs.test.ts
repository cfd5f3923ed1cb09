/**
 * What CloudStack's own integration tests expect of settings, internal ids and the hypervisor inventory
 * (issue 20 items 8 and 9), through the python `cs` client against a real server, on SQLite and PostgreSQL:
 * listConfigurations' 4.18 fields and filters, listConfigurationGroups, updateConfiguration's answers,
 * numeric ids where CloudStack takes them (and only there), and the empty host/cluster/storage/system-VM lists.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { ok, refused, startCsRig, stopCsRig } from './harness.js';
import type { CsClient as Client, ServerProcess, CsBridge } from './harness.js';

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');

interface Cfg {
  name: string;
  value: string;
  defaultvalue: string;
  type: string;
  scope: string;
  category: string;
  component: string;
  description: string;
  displaytext: string;
  group: string;
  subgroup: string;
  parent?: string;
  options?: string;
  isdynamic: boolean;
}

for (const kind of kinds) {
  describe(`CloudStack integration-test expectations with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: Client;
    let alice: Client;
    const id: Record<string, string> = {};

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      id.root = ok(await admin('listDomains', {}), 'listDomains').domain[0].id as string;
      const a = ok(
        await admin('createAccount', {
          username: 'alice',
          password: 'pw',
          email: 'alice@example.org',
          firstname: 'alice',
          lastname: 'x',
          accounttype: 0,
          domainid: id.root,
        }),
        'createAccount',
      );
      const keys = ok(await admin('registerUserKeys', { id: a.account.user[0].id }), 'registerUserKeys');
      const k = keys.userkeys ?? keys;
      alice = bridge.client(server.url, k.apikey, k.secretkey);
      id.zone = ok(
        await admin('createZone', {
          name: 'zone-a',
          networktype: 'Advanced',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
        }),
        'createZone',
      ).zone.id;
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    const setting = async (name: string): Promise<Cfg> => {
      const l = ok(await admin('listConfigurations', { name }), `listConfigurations ${name}`);
      const c = (l.configuration as Cfg[]).find((x) => x.name === name);
      assert.ok(c, `${name} is listed`);
      return c;
    };

    test('listConfigurations answers the 4.18 fields: type, displaytext, group, subgroup, parent, options', async () => {
      const lb = await setting('agent.lb.enabled');
      assert.equal(lb.value, 'false');
      assert.equal(lb.defaultvalue, 'false');
      assert.equal(lb.type, 'Boolean');
      assert.equal(lb.scope, 'Global');
      assert.equal(lb.category, 'Advanced');
      assert.equal(lb.displaytext, 'Agent lb enabled');
      assert.equal(lb.isdynamic, true);
      assert.match(lb.description, /stacknet does not act on it/);

      const wait = await setting('network.gc.wait');
      assert.equal(wait.type, 'Number');
      assert.equal(wait.group, 'Network');
      assert.equal(wait.subgroup, 'Network');
      assert.doesNotMatch(
        wait.description,
        /does not act/,
        'a setting stacknet honours does not say it ignores it',
      );

      const max = await setting('api.throttling.max');
      assert.equal(max.parent, 'api.throttling.enabled');
      assert.equal(max.group, 'Management Server');
      assert.equal(max.subgroup, 'API');

      const acct = await setting('max.account.public.ips');
      assert.equal(acct.category, 'Account Defaults');
      assert.equal(acct.group, 'Access');
      assert.equal(acct.subgroup, 'Account');

      const vrrp = await setting('router.redundant.vrrp.interval');
      assert.equal(vrrp.group, 'System VMs');
      assert.equal(vrrp.subgroup, 'VirtualRouter');

      const basic = await setting('network.dns.basiczone.updates');
      assert.equal(basic.type, 'Select');
      assert.equal(basic.options, 'all,pod');

      const threshold = await setting('zone.virtualnetwork.publicip.capacity.notificationthreshold');
      assert.equal(threshold.type, 'Decimal');

      const unknownWords = await setting('json.content.type');
      assert.equal(unknownWords.group, 'Miscellaneous');
      assert.equal(unknownWords.subgroup, 'Others');
    });

    test('the settings the integration suite names exist with CloudStack defaults and scopes', async () => {
      const expect: [string, string, string][] = [
        ['commands.timeout', '', 'Global'],
        ['ipv6.offering.enabled', 'false', 'Global'],
        ['agent.lb.enabled', 'false', 'Global'],
        ['enable.dynamic.scale.vm', 'false', 'Zone'],
        ['max.domain.public.ips', '40', 'Global'],
        ['max.account.vpcs', '20', 'Global'],
        ['guest.domain.suffix', 'cloud.internal', 'Zone'],
        ['use.system.public.ips', 'true', 'Account'],
        ['router.template.kvm', 'SystemVM Template (KVM)', 'Zone'],
      ];
      for (const [name, def, scope] of expect) {
        const c = await setting(name);
        assert.equal(c.defaultvalue, def, `${name} default`);
        assert.equal(c.scope, scope, `${name} scope`);
      }
    });

    test('listConfigurations filters by group, subgroup and parent', async () => {
      const vr = ok(
        await admin('listConfigurations', { group: 'System VMs', subgroup: 'VirtualRouter' }),
        'by subgroup',
      ).configuration as Cfg[];
      assert.ok(vr.length > 5);
      assert.ok(vr.every((c) => c.subgroup === 'VirtualRouter' && c.group === 'System VMs'));
      assert.ok(vr.some((c) => c.name === 'router.check.interval'));
      const children = ok(
        await admin('listConfigurations', { parent: 'api.throttling.enabled' }),
        'by parent',
      ).configuration as Cfg[];
      assert.deepEqual(children.map((c) => c.name).sort(), [
        'api.throttling.cachesize',
        'api.throttling.interval',
        'api.throttling.max',
      ]);
      const none = ok(await admin('listConfigurations', { group: 'No Such Group' }), 'unknown group');
      assert.equal(none.count, undefined);
      assert.equal(none.configuration, undefined);
    });

    test('listConfigurationGroups answers 4.18 groups by precedence with their subgroups', async () => {
      const l = ok(await admin('listConfigurationGroups', {}), 'listConfigurationGroups');
      assert.equal(l.count, 9);
      const groups = l.configurationgroup as {
        name: string;
        description: string;
        precedence: number;
        subgroup: { name: string; precedence: number }[];
      }[];
      assert.deepEqual(
        groups.map((g) => g.name),
        [
          'Access',
          'Compute',
          'Storage',
          'Network',
          'Hypervisor',
          'Management Server',
          'System VMs',
          'Infrastructure',
          'Miscellaneous',
        ],
      );
      const net = groups.find((g) => g.name === 'Network')!;
      assert.equal(net.precedence, 4);
      assert.deepEqual(
        net.subgroup.map((s) => s.name),
        ['Network', 'DHCP', 'VPC', 'LoadBalancer'],
      );
      const one = ok(await admin('listConfigurationGroups', { group: 'access' }), 'one group');
      assert.equal(one.count, 1);
      assert.equal(one.configurationgroup[0].name, 'Access');
      refused(
        await alice('listConfigurationGroups', {}),
        432,
        /does not exist or it is not available/,
        'a user',
      );
    });

    test('updateConfiguration: unknown names, no value, bad values and scopes answer as CloudStack does', async () => {
      refused(
        await admin('updateConfiguration', { name: 'no.such.setting', value: '1' }),
        431,
        /Config parameter with name no\.such\.setting doesn't exist/,
        'unknown name',
      );
      const same = ok(await admin('updateConfiguration', { name: 'commands.timeout' }), 'no value');
      assert.equal(same.configuration.value, '');
      const set = ok(
        await admin('updateConfiguration', { name: 'commands.timeout', value: 'DhcpEntryCommand=120' }),
        'set',
      );
      assert.equal(set.configuration.value, 'DhcpEntryCommand=120');
      assert.equal((await setting('commands.timeout')).value, 'DhcpEntryCommand=120');
      refused(
        await admin('updateConfiguration', { name: 'network.dns.basiczone.updates', value: 'some' }),
        431,
        /must be one of all, pod/,
        'outside the options',
      );
      const z = ok(
        await admin('updateConfiguration', {
          name: 'enable.dynamic.scale.vm',
          value: 'true',
          zoneid: id.zone,
        }),
        'zone value',
      );
      assert.equal(z.configuration.value, 'true');
      assert.equal(
        (await setting('enable.dynamic.scale.vm')).value,
        'false',
        'the global value is unchanged',
      );
      refused(
        await admin('updateConfiguration', { name: 'agent.lb.enabled', value: 'true', zoneid: id.zone }),
        431,
        /global scope/,
        'a global setting per zone',
      );
      refused(
        await alice('updateConfiguration', { name: 'commands.timeout', value: '' }),
        432,
        /does not exist or it is not available/,
        'a user',
      );
    });

    test('internal numeric ids are taken for parameters that predate UUIDs and answered with UUIDs', async () => {
      // A fresh database: ROOT is domain 1, zone-a zone 1.
      const d = ok(await admin('listDomains', { id: 1 }), 'listDomains id=1');
      assert.equal(d.domain[0].id, id.root);
      const z = ok(await admin('listZones', { id: '1' }), 'listZones id=1');
      assert.equal(z.zone[0].id, id.zone);
      const up = ok(await admin('updateZone', { id: 1, dns2: '8.8.4.4' }), 'updateZone id=1');
      assert.equal(up.zone.id, id.zone);
      assert.equal(up.zone.dns2, '8.8.4.4');
      const scoped = ok(
        await admin('listConfigurations', { name: 'enable.dynamic.scale.vm', zoneid: 1 }),
        'listConfigurations zoneid=1',
      );
      assert.equal(scoped.configuration[0].value, 'true');
      assert.equal(scoped.configuration[0].id, id.zone);
      // An async command: the job works on the UUID the id resolved to.
      const sub = ok(
        await admin('createDomain', { name: 'sub', parentdomainid: 1 }),
        'createDomain parentdomainid=1',
      );
      assert.equal(sub.domain.parentdomainid, id.root);
      const internal = ok(await admin('listDomains', { id: 2 }), 'listDomains id=2').domain[0];
      assert.equal(internal.id, sub.domain.id);
      const done = ok(await admin('deleteDomain', { id: 2 }, { fetch_result: true }), 'deleteDomain id=2');
      assert.equal(done.success, true, JSON.stringify(done));
      const left = ok(await admin('listDomains', { listall: true }), 'listDomains').domain as {
        id: string;
      }[];
      assert.ok(!left.some((x) => x.id === sub.domain.id));
    });

    test('an internal id that matches nothing answers as a wrong UUID does; newer parameters take only UUIDs', async () => {
      const wrongUuid = await admin('updateZone', { id: randomUUID(), dns2: '8.8.4.4' });
      const wrongId = await admin('updateZone', { id: 999999, dns2: '8.8.4.4' });
      assert.equal(wrongId.status, wrongUuid.status);
      assert.equal(wrongId.error?.errorcode, wrongUuid.error?.errorcode);
      assert.match(wrongId.error!.errortext, /999999/);
      const noneUuid = ok(await admin('listZones', { id: randomUUID() }), 'listZones wrong uuid');
      const noneId = ok(await admin('listZones', { id: 999999 }), 'listZones id=999999');
      assert.deepEqual(noneId, noneUuid);
      refused(await admin('listZones', { id: 0 }), 431, /expected a UUID/, 'id 0 is no internal id');
      refused(await admin('listZones', { id: 'abc' }), 431, /expected a UUID/, 'not a number');
      // listPublicIpAddresses' networkid is `since 4.13.0`: CloudStack takes only a UUID there.
      refused(
        await admin('listPublicIpAddresses', { networkid: 1 }),
        431,
        /networkid.*expected a UUID/,
        'networkid (since 4.13) given a number',
      );
    });

    test('listHosts, listClusters, listStoragePools, listSystemVms answer empty lists for root admins only', async () => {
      for (const [cmd, args] of [
        ['listHosts', { type: 'Routing', zoneid: id.zone }],
        ['listClusters', { zoneid: id.zone, showcapacities: true }],
        ['listStoragePools', { zoneid: id.zone }],
        ['listSystemVms', { systemvmtype: 'consoleproxy' }],
      ] as const) {
        const r = await admin(cmd, args);
        assert.equal(r.status, 200, `${cmd}: ${JSON.stringify(r.error)}`);
        assert.deepEqual(r.data, {}, `${cmd} answers {}`);
        refused(await alice(cmd, {}), 432, /does not exist or it is not available/, `${cmd} as a user`);
      }
      refused(
        await admin('listHosts', { page: 1, pagesize: 100000 }),
        431,
        /default\.page\.size/,
        'a page too big',
      );
      refused(await admin('listClusters', { id: 'not-an-id' }), 431, /expected a UUID/, 'a malformed id');
    });

    test('no projects: listProjects is empty, projectid=-1 lists nothing, any other project id names none', async () => {
      assert.deepEqual(ok(await alice('listProjects', {}), 'listProjects'), {});
      // Terraform's provider retries a lookup with projectid=-1 (every project's resources): there are none.
      for (const cmd of ['listNetworks', 'listPublicIpAddresses', 'listVPCs'])
        assert.deepEqual(ok(await alice(cmd, { projectid: -1 }), `${cmd} projectid=-1`), {}, cmd);
      assert.ok(ok(await admin('listZones', {}), 'listZones').count >= 1);
      refused(
        await alice('listNetworks', { projectid: '6f1b0e0a-8f5e-4b8e-9d7a-1c2b3c4d5e6f' }),
        431,
        /stacknet has no projects/,
        'a project id',
      );
      refused(
        await alice('associateIpAddress', { zoneid: id.zone, projectid: -1 }, { fetch_result: true }),
        431,
        /projectid/,
        '-1 outside a list',
      );
    });
  });
}
