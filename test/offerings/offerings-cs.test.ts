/**
 * Offerings as CloudStack's own integration tests use them, through the python `cs` client against a real
 * `stacknet server`, on SQLite and PostgreSQL: service offerings (fields, custom sizes, domain admins limited to
 * their subtree, delete), deploy and changeService using them, network and VPC offerings limited to domains and
 * zones (visible and usable only there), their update/delete refusals, and the OS type catalogue.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient as Client, ServerProcess, CsBridge } from '../api/harness.js';

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');
const NOT_AVAILABLE = /does not exist or it is not available/;
const job = { fetch_result: true };

for (const kind of kinds) {
  describe(`offerings with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: Client;
    /** alice: user in ROOT/eng/team; bob: user in ROOT; dadmin: domain admin of ROOT/eng. */
    let alice: Client;
    let bob: Client;
    let dadmin: Client;
    const id: Record<string, string> = {};

    const account = async (
      name: string,
      domainid: string | undefined,
      accounttype: number,
    ): Promise<Client> => {
      const a = ok(
        await admin('createAccount', {
          username: name,
          password: 'pw',
          email: `${name}@example.org`,
          firstname: name,
          lastname: 'x',
          accounttype,
          domainid,
        }),
        `createAccount ${name}`,
      );
      const keys = ok(await admin('registerUserKeys', { id: a.account.user[0].id }), 'registerUserKeys');
      const k = keys.userkeys ?? keys;
      return bridge.client(server.url, k.apikey, k.secretkey);
    };

    const network = async (c: Client, name: string, offering: string | undefined, gateway: string) =>
      c('createNetwork', {
        zoneid: id.zone,
        name,
        displaytext: name,
        networkofferingid: offering,
        gateway,
        netmask: '255.255.255.0',
      });

    /** A 1-CPU, 64 MB offering created by `c`, with `extra` parameters. */
    const tiny = (c: Client, name: string, extra: Record<string, unknown> = {}) =>
      c('createServiceOffering', {
        name,
        displaytext: name,
        cpunumber: 1,
        cpuspeed: 1,
        memory: 64,
        ...extra,
      });

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      id.root = ok(await admin('listDomains', {}), 'listDomains').domain[0].id;
      id.eng = ok(await admin('createDomain', { name: 'eng' }), 'eng').domain.id;
      id.team = ok(await admin('createDomain', { name: 'team', parentdomainid: id.eng }), 'team').domain.id;
      id.other = ok(await admin('createDomain', { name: 'other' }), 'other').domain.id;
      alice = await account('alice', id.team, 0);
      bob = await account('bob', id.root, 0);
      dadmin = await account('dadmin', id.eng, 2);
      const zone = (name: string) =>
        admin('createZone', {
          name,
          networktype: 'Advanced',
          dns1: '192.0.2.53',
          internaldns1: '192.0.2.53',
        });
      id.zone = ok(await zone('z1'), 'createZone').zone.id;
      id.zone2 = ok(await zone('z2'), 'createZone z2').zone.id;
      const pn = ok(
        await admin(
          'createPhysicalNetwork',
          { zoneid: id.zone, name: 'pn', isolationmethods: 'VLAN', vlan: '100-150' },
          job,
        ),
        'createPhysicalNetwork',
      ).physicalnetwork.id;
      for (const t of ['Guest', 'Public'])
        ok(
          await admin('addTrafficType', { physicalnetworkid: pn, traffictype: t }, job),
          `addTrafficType ${t}`,
        );
      ok(await admin('updatePhysicalNetwork', { id: pn, state: 'Enabled' }, job), 'updatePhysicalNetwork');
      ok(
        await admin('createVlanIpRange', {
          zoneid: id.zone,
          vlan: '50',
          gateway: '203.0.113.1',
          netmask: '255.255.255.0',
          startip: '203.0.113.10',
          endip: '203.0.113.60',
          forvirtualnetwork: true,
        }),
        'createVlanIpRange',
      );
      id.isoOff = ok(
        await admin('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
        'offering',
      ).networkoffering[0].id;
      id.tpl = ok(
        await alice('listTemplates', { templatefilter: 'featured' }),
        'listTemplates',
      ).template[0].id;
      id.aliceNet = ok(await network(alice, 'alice-net', id.isoOff, '10.1.1.1'), 'alice network').network.id;
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    test('createServiceOffering answers CloudStack fields and refuses what CloudStack refuses', async () => {
      const so = ok(
        await admin('createServiceOffering', {
          name: 'big',
          displaytext: 'Big instance',
          cpunumber: 2,
          cpuspeed: 1000,
          memory: 2048,
          offerha: true,
          limitcpuuse: true,
          networkrate: 100,
          tags: 'ssd',
          hosttags: 'h1',
        }),
        'createServiceOffering',
      ).serviceoffering;
      id.big = so.id;
      assert.equal(so.cpunumber, 2);
      assert.equal(so.cpuspeed, 1000);
      assert.equal(so.memory, 2048);
      assert.equal(so.offerha, true);
      assert.equal(so.limitcpuuse, true);
      assert.equal(so.networkrate, 100);
      assert.equal(so.storagetype, 'shared');
      assert.equal(so.storagetags, 'ssd');
      assert.equal(so.hosttags, 'h1');
      assert.equal(so.issystem, false);
      assert.equal(so.iscustomized, false);
      assert.equal(so.domainid, undefined, 'a public offering has no domain');
      assert.match(so.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/);
      const listed = ok(await bob('listServiceOfferings', { id: so.id }), 'list').serviceoffering[0];
      assert.equal(listed.name, 'big');

      const bad: [Record<string, unknown>, RegExp][] = [
        [{ cpunumber: 0, cpuspeed: 100, memory: 512 }, /cpunumber/],
        [{ cpunumber: 1, cpuspeed: 100, memory: 16 }, /memory/],
        [{ cpunumber: 1, memory: 512 }, /cpuspeed/],
        [{ cpunumber: 1, cpuspeed: 100, memory: 512, storagetype: 'local', offerha: true }, /offerha/],
        [{ cpunumber: 1, cpuspeed: 100, memory: 512, storagetype: 'nvme' }, /storagetype/],
        [{ cpunumber: 1, cpuspeed: 100, memory: 512, issystem: true, systemvmtype: 'bogus' }, /systemvmtype/],
        [
          { cpunumber: 1, cpuspeed: 100, memory: 512, domainid: '11111111-2222-4333-8444-555555555555' },
          /domainid/,
        ],
      ];
      for (const [params, text] of bad)
        refused(
          await admin('createServiceOffering', { name: 'x', displaytext: 'x', ...params }),
          431,
          text,
          `createServiceOffering ${JSON.stringify(params)}`,
        );
      refused(await tiny(alice, 'u'), 432, NOT_AVAILABLE, 'a user creating a service offering');
      refused(
        await alice('listServiceOfferings', { issystem: true }),
        431,
        /root admins/,
        'user lists system',
      );
      const sys = ok(
        await admin('createServiceOffering', {
          name: 'vr',
          displaytext: 'router',
          cpunumber: 1,
          cpuspeed: 500,
          memory: 256,
          issystem: true,
        }),
        'system offering',
      ).serviceoffering;
      assert.equal(sys.systemvmtype, 'domainrouter');
      id.sys = sys.id;
      const system = ok(
        await admin('listServiceOfferings', { issystem: true }),
        'list system',
      ).serviceoffering;
      // CloudStack's defaults for its routers and internal LB VMs, then the one just made.
      assert.deepEqual(system.map((o: { name: string }) => o.name).sort(), [
        'System Offering For Internal LB VM',
        'System Offering For Software Router',
        'vr',
      ]);
      const guest = ok(await admin('listServiceOfferings', {}), 'list').serviceoffering;
      assert.ok(
        !guest.some((o: { name: string }) => o.name === 'vr'),
        'system offerings are not listed by default',
      );
    });

    test('domain-limited service offerings: visible in the subtree only; domain admins manage only their own', async () => {
      const eng = ok(
        await admin('createServiceOffering', {
          name: 'eng-small',
          displaytext: 'eng',
          cpunumber: 1,
          cpuspeed: 500,
          memory: 512,
          domainid: id.eng,
        }),
        'eng offering',
      ).serviceoffering;
      id.engSo = eng.id;
      assert.equal(eng.domainid, id.eng);
      assert.equal(eng.domain, 'eng');
      const names = async (c: Client) =>
        (ok(await c('listServiceOfferings', {}), 'list').serviceoffering ?? []).map(
          (o: { name: string }) => o.name,
        );
      assert.ok((await names(alice)).includes('eng-small'), 'a user of a subdomain sees it');
      assert.ok(!(await names(bob)).includes('eng-small'), 'a user elsewhere does not');
      assert.equal(
        ok(await admin('listServiceOfferings', { domainid: id.eng }), 'by domain').serviceoffering.length,
        1,
      );

      refused(await tiny(dadmin, 'd'), 431, /public/, 'a domain admin creating a public offering');
      refused(
        await tiny(dadmin, 'd', { domainid: id.other }),
        431,
        /subtree/,
        'a domain admin limiting to a domain outside its subtree',
      );
      const own = ok(
        await tiny(dadmin, 'team-only', { domainid: id.team }),
        'domain admin offering',
      ).serviceoffering;
      assert.equal(own.domainid, id.team);
      refused(
        await dadmin('deleteServiceOffering', { id: id.big }),
        431,
        /public/,
        'domain admin deletes public',
      );
      refused(
        await dadmin('updateServiceOffering', { id: own.id, zoneid: id.zone }),
        431,
        /zones/,
        'domain admin changes zones',
      );
      const upd = ok(
        await dadmin('updateServiceOffering', {
          id: own.id,
          name: 'team-renamed',
          displaytext: 'T',
          sortkey: 3,
        }),
        'update',
      ).serviceoffering;
      assert.equal(upd.name, 'team-renamed');
      assert.equal(upd.displaytext, 'T');
      // Root makes it public: bob sees it now.
      const pub = ok(await admin('updateServiceOffering', { id: own.id, domainid: 'public' }), 'public');
      assert.equal(pub.serviceoffering.domainid, undefined);
      assert.ok((await names(bob)).includes('team-renamed'));
      ok(await admin('deleteServiceOffering', { id: own.id }), 'delete');
      assert.ok(!(await names(admin)).includes('team-renamed'), 'a deleted offering is not listed');
      refused(await admin('deleteServiceOffering', { id: own.id }), 431, /id/, 'delete twice');
      refused(await alice('deleteServiceOffering', { id: id.big }), 432, NOT_AVAILABLE, 'user deletes');
    });

    test('deployVirtualMachine uses the offering; changeServiceForVirtualMachine only when stopped', async () => {
      const deploy = (c: Client, params: Record<string, unknown>) =>
        c(
          'deployVirtualMachine',
          { zoneid: id.zone, networkids: id.aliceNet, templateid: id.tpl, ...params },
          job,
        );
      refused(
        await alice('deployVirtualMachine', { zoneid: id.zone, networkids: id.aliceNet, templateid: id.tpl }),
        431,
        /serviceofferingid/,
        'deploy without an offering',
      );
      refused(
        await alice('deployVirtualMachine', {
          zoneid: id.zone,
          networkids: id.aliceNet,
          serviceofferingid: id.big,
        }),
        431,
        /templateid/,
        'deploy without a template',
      );
      const otherDomain = ok(await tiny(admin, 'other-only', { domainid: id.other }), 'other').serviceoffering
        .id;
      refused(
        await deploy(alice, { serviceofferingid: otherDomain, name: 'x1' }),
        431,
        /not available to domain/,
        'domain',
      );
      const zone2Only = ok(await tiny(admin, 'z2-only', { zoneid: id.zone2 }), 'zone2').serviceoffering;
      assert.equal(zone2Only.zoneid, id.zone2);
      assert.equal(zone2Only.zone, 'z2');
      refused(
        await deploy(alice, { serviceofferingid: zone2Only.id, name: 'x2' }),
        431,
        /not available in zone/,
        'zone',
      );
      refused(
        await deploy(alice, { serviceofferingid: id.sys, name: 'x3' }),
        431,
        /system offering/,
        'system',
      );

      const custom = ok(
        await admin('createServiceOffering', {
          name: 'custom',
          displaytext: 'custom',
          cpuspeed: 1500,
          mincpunumber: 1,
          maxcpunumber: 4,
          minmemory: 256,
          maxmemory: 4096,
        }),
        'custom',
      ).serviceoffering;
      assert.equal(custom.iscustomized, true);
      assert.equal(custom.cpunumber, undefined);
      refused(
        await deploy(alice, { serviceofferingid: custom.id, name: 'x4' }),
        431,
        /details/,
        'custom without sizes',
      );
      refused(
        await deploy(alice, {
          serviceofferingid: custom.id,
          name: 'x5',
          'details[0].cpuNumber': 8,
          'details[0].memory': 1024,
        }),
        431,
        /cpuNumber/,
        'custom beyond its bounds',
      );
      const cvm = ok(
        await deploy(alice, {
          serviceofferingid: custom.id,
          name: 'cvm',
          'details[0].cpuNumber': 3,
          'details[0].memory': 1536,
        }),
        'custom deploy',
      ).virtualmachine;
      assert.deepEqual([cvm.cpunumber, cvm.cpuspeed, cvm.memory], [3, 1500, 1536]);

      const vm = ok(
        await deploy(alice, { serviceofferingid: id.engSo, name: 'web1' }),
        'deploy',
      ).virtualmachine;
      assert.equal(vm.serviceofferingid, id.engSo);
      assert.equal(vm.serviceofferingname, 'eng-small');
      assert.deepEqual([vm.cpunumber, vm.cpuspeed, vm.memory], [1, 500, 512]);
      assert.equal(vm.templateid, id.tpl);
      assert.equal(vm.templatename, 'CentOS 5.5(64-bit) no GUI (KVM)');
      assert.equal(vm.templatedisplaytext, 'CentOS 5.5(64-bit) no GUI (KVM)');
      assert.equal(vm.passwordenabled, true);
      assert.equal(vm.domainpath, 'ROOT/eng/team');
      const ostype = ok(await alice('listOsTypes', { id: vm.ostypeid }), 'listOsTypes').ostype[0];
      assert.equal(ostype.description, 'CentOS 5.5 (64-bit)');

      refused(
        await alice('changeServiceForVirtualMachine', { id: vm.id, serviceofferingid: id.big }),
        431,
        /in state Running; make sure the virtual machine is stopped/,
        'change a running VM',
      );
      ok(await alice('stopVirtualMachine', { id: vm.id }, job), 'stop');
      refused(
        await alice('changeServiceForVirtualMachine', { id: vm.id, serviceofferingid: id.engSo }),
        431,
        /already has service offering/,
        'change to the same offering',
      );
      refused(
        await bob('changeServiceForVirtualMachine', { id: vm.id, serviceofferingid: id.big }),
        431,
        /virtual machine/,
        "change another account's VM",
      );
      const changed = ok(
        await alice('changeServiceForVirtualMachine', { id: vm.id, serviceofferingid: id.big }),
        'changeService',
      ).virtualmachine;
      assert.equal(changed.serviceofferingname, 'big');
      assert.deepEqual([changed.cpunumber, changed.cpuspeed, changed.memory], [2, 1000, 2048]);
      const listed = ok(await alice('listVirtualMachines', { id: vm.id }), 'list').virtualmachine[0];
      assert.equal(listed.memory, 2048);
      const events = ok(await alice('listEvents', { type: 'VM.UPGRADE' }), 'events').event;
      assert.equal(events.length, 1);
      // The offering list for this VM leaves out the one it has.
      const choices = ok(
        await alice('listServiceOfferings', { virtualmachineid: vm.id }),
        'choices',
      ).serviceoffering;
      assert.ok(!choices.some((o: { id: string }) => o.id === id.big));
      ok(await admin('deleteServiceOffering', { id: id.engSo }), 'delete eng offering');
      refused(
        await deploy(alice, { serviceofferingid: id.engSo, name: 'x6' }),
        431,
        /serviceofferingid/,
        'deleted',
      );
      // The VM keeps the offering it has.
      assert.equal(
        ok(await alice('listVirtualMachines', { id: cvm.id }), 'cvm').virtualmachine[0].cpunumber,
        3,
      );
    });

    test('network offerings limited to domains and zones; update and delete as CloudStack', async () => {
      const created = ok(
        await admin('createNetworkOffering', {
          name: 'eng-iso',
          displaytext: 'eng isolated',
          guestiptype: 'Isolated',
          traffictype: 'Guest',
          supportedservices: 'Dhcp,Dns,UserData,SourceNat,StaticNat,PortForwarding,Firewall',
          enable: true,
          domainid: id.eng,
          zoneid: id.zone,
          maxconnections: 1000,
        }),
        'createNetworkOffering',
      ).networkoffering;
      assert.equal(created.domainid, id.eng);
      assert.equal(created.domain, 'eng');
      assert.equal(created.zoneid, id.zone);
      assert.equal(created.zone, 'z1');
      assert.equal(created.maxconnections, 1000);
      const seen = async (c: Client) =>
        (ok(await c('listNetworkOfferings', { id: created.id }), 'list').networkoffering ?? []).length;
      assert.equal(await seen(alice), 1, 'a user of a subdomain sees it');
      assert.equal(await seen(bob), 0, 'a user elsewhere does not');
      assert.equal(
        ok(await admin('listNetworkOfferings', { id: created.id }), 'admin').networkoffering[0].domainid,
        id.eng,
      );
      refused(
        await network(bob, 'bob-net', created.id, '10.2.2.1'),
        431,
        /not available to domain/,
        'bob uses it',
      );
      const net = ok(await network(alice, 'alice-eng', created.id, '10.3.3.1'), 'alice uses it').network;
      assert.equal(net.networkofferingid, created.id);

      refused(
        await alice('updateNetworkOffering', { id: created.id, state: 'Disabled' }),
        432,
        NOT_AVAILABLE,
        'a user updating an offering',
      );
      const disabled = ok(
        await admin('updateNetworkOffering', {
          id: created.id,
          state: 'Disabled',
          name: 'eng-iso2',
          displaytext: 'renamed',
          sortkey: 5,
          tags: 'fast',
        }),
        'disable',
      ).networkoffering;
      assert.equal(disabled.state, 'Disabled');
      assert.equal(disabled.name, 'eng-iso2');
      assert.equal(disabled.tags, 'fast');
      assert.equal(await seen(alice), 0, 'users see enabled offerings only');
      refused(await network(alice, 'alice-2', created.id, '10.4.4.1'), 431, /Disabled/, 'disabled offering');
      refused(
        await admin('updateNetworkOffering', { id: created.id, availability: 'Required' }),
        431,
        /Required/,
        'a second Required offering',
      );
      refused(
        await admin('updateNetworkOffering', { id: created.id, state: 'Broken' }),
        431,
        /state/,
        'bad state',
      );
      const pub = ok(
        await admin('updateNetworkOffering', {
          id: created.id,
          domainid: 'public',
          zoneid: 'all',
          state: 'Enabled',
        }),
        'public',
      ).networkoffering;
      assert.equal(pub.domainid, undefined);
      assert.equal(await seen(bob), 1, 'public again');

      refused(await admin('deleteNetworkOffering', { id: created.id }), 431, /used by 1 network/, 'in use');
      refused(await admin('deleteNetworkOffering', { id: id.isoOff }), 431, /default/, 'a default offering');
      const unused = ok(
        await admin('createNetworkOffering', {
          name: 'unused',
          displaytext: 'unused',
          guestiptype: 'L2',
          traffictype: 'Guest',
        }),
        'unused',
      ).networkoffering;
      assert.equal(unused.state, 'Disabled', 'created Disabled without enable=true');
      ok(await admin('deleteNetworkOffering', { id: unused.id }), 'delete');
      assert.equal(
        ok(await admin('listNetworkOfferings', { id: unused.id }), 'gone').networkoffering,
        undefined,
      );
    });

    test('VPC offerings: create, update, delete; createVPC refused when disabled or not visible', async () => {
      refused(
        await admin(
          'createVPCOffering',
          { name: 'fw', displaytext: 'fw', supportedservices: 'Dhcp,Firewall' },
          job,
        ),
        431,
        /not supported in a VPC/,
        'Firewall in a VPC offering',
      );
      const vo = ok(
        await admin(
          'createVPCOffering',
          {
            name: 'eng-vpc',
            displaytext: 'eng VPC',
            supportedservices: 'Dhcp,Dns,UserData,SourceNat,StaticNat,PortForwarding,NetworkACL',
            domainid: id.eng,
            internetprotocol: 'IPv4',
          },
          job,
        ),
        'createVPCOffering',
      ).vpcoffering;
      assert.equal(vo.state, 'Disabled');
      assert.equal(vo.domainid, id.eng);
      assert.equal(vo.domain, 'eng');
      assert.equal(vo.internetprotocol, 'IPv4');
      assert.ok(
        vo.service.some((s: { name: string }) => s.name === 'Gateway'),
        'a VPC router is a gateway',
      );
      const vpc = (c: Client, name: string) =>
        c(
          'createVPC',
          {
            name,
            displaytext: name,
            cidr: '10.50.0.0/16',
            vpcofferingid: vo.id,
            zoneid: id.zone,
            start: false,
          },
          job,
        );
      refused(await vpc(alice, 'v0'), 431, /Disabled/, 'a disabled VPC offering');
      refused(
        await alice('updateVPCOffering', { id: vo.id, state: 'Enabled' }, job),
        432,
        NOT_AVAILABLE,
        'user',
      );
      const enabled = ok(
        await admin('updateVPCOffering', { id: vo.id, state: 'Enabled', name: 'eng-vpc2' }, job),
        'enable',
      ).vpcoffering;
      assert.equal(enabled.state, 'Enabled');
      assert.equal(enabled.name, 'eng-vpc2');
      const listed = async (c: Client) =>
        (ok(await c('listVPCOfferings', { id: vo.id }), 'list').vpcoffering ?? []).length;
      assert.equal(await listed(alice), 1);
      assert.equal(await listed(bob), 0);
      refused(await vpc(bob, 'vb'), 431, /not available to domain/, 'an invisible VPC offering');
      const v = ok(await vpc(alice, 'va'), 'createVPC').vpc;
      assert.equal(v.vpcofferingid, vo.id);
      refused(await admin('deleteVPCOffering', { id: vo.id }, job), 431, /used by 1 VPC/, 'in use');
      const def = ok(await admin('listVPCOfferings', { isdefault: true }), 'default').vpcoffering[0].id;
      refused(await admin('deleteVPCOffering', { id: def }, job), 431, /default/, 'the default offering');
      const spare = ok(
        await admin(
          'createVPCOffering',
          { name: 'spare', displaytext: 'spare', supportedservices: 'Dhcp,Dns' },
          job,
        ),
        'spare',
      ).vpcoffering;
      ok(await admin('deleteVPCOffering', { id: spare.id }, job), 'deleteVPCOffering');
      assert.equal(ok(await admin('listVPCOfferings', { id: spare.id }), 'gone').vpcoffering, undefined);
    });

    test('listOsTypes and listOsCategories: a built-in catalogue the template points at', async () => {
      const types = ok(await bob('listOsTypes', {}), 'listOsTypes');
      assert.ok(types.count > 10);
      for (const t of types.ostype) {
        assert.equal(t.isuserdefined, false);
        assert.match(t.id, /^[0-9a-f-]{36}$/);
      }
      const tpl = ok(await bob('listTemplates', { templatefilter: 'featured', id: id.tpl }), 'tpl')
        .template[0];
      const own = types.ostype.find((t: { id: string }) => t.id === tpl.ostypeid);
      assert.equal(own.description, tpl.ostypename);
      const cats = ok(await bob('listOsCategories', {}), 'listOsCategories').oscategory;
      assert.ok(cats.some((c: { id: string }) => c.id === own.oscategoryid));
      const byCat = ok(await bob('listOsTypes', { oscategoryid: own.oscategoryid }), 'by category').ostype;
      assert.ok(byCat.every((t: { oscategoryid: string }) => t.oscategoryid === own.oscategoryid));
      const page = ok(await bob('listOsTypes', { page: 1, pagesize: 2 }), 'page');
      assert.equal(page.ostype.length, 2);
      assert.equal(page.count, types.count);
    });
  });
}
