/**
 * Accounts, domains and users as CloudStack's own integration tests (test_accounts.py and friends) use them,
 * through a real `stacknet server` and the python `cs` client, on SQLite and PostgreSQL: getUserKeys of a user
 * without keys, keys of other users of an account, listDomains scoping, resource-limit fields, owners named by
 * domainid alone, and updateUser/deleteUser/moveUser/disable-enable-lock of users and accounts/updateAccount.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient as Client, ServerProcess, CsBridge } from '../api/harness.js';

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');

const RESOURCES = [
  'vm',
  'ip',
  'volume',
  'snapshot',
  'template',
  'project',
  'network',
  'vpc',
  'cpu',
  'memory',
  'primarystorage',
  'secondarystorage',
];

for (const kind of kinds) {
  describe(`accounts, domains and users with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: Client;
    const as: Record<string, Client> = {};
    const id: Record<string, string> = {};
    const user: Record<string, string> = {};

    const account = async (name: string, domainid: string, accounttype: number) => {
      const a = ok(
        await admin('createAccount', {
          username: name,
          password: `pw-${name}`,
          email: `${name}@example.org`,
          firstname: name,
          lastname: 'x',
          accounttype,
          domainid,
        }),
        `createAccount ${name}`,
      );
      id[name] = a.account.id;
      user[name] = a.account.user[0].id;
      const k = ok(await admin('registerUserKeys', { id: user[name] }), 'registerUserKeys').userkeys;
      as[name] = bridge.client(server.url, k.apikey, k.secretkey);
    };
    const domains = async (c: Client, p: Record<string, unknown> = {}) =>
      ((ok(await c('listDomains', p), 'listDomains').domain ?? []) as { name: string }[]).map((d) => d.name);

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      id.root = ok(await admin('listDomains', { name: 'ROOT' }), 'ROOT').domain[0].id;
      id.sales = ok(await admin('createDomain', { name: 'sales' }), 'sales').domain.id;
      id.east = ok(await admin('createDomain', { name: 'east', parentdomainid: id.sales }), 'east').domain.id;
      await account('dadmin', id.sales!, 2);
      await account('alice', id.sales!, 0);
      await account('bob', id.east!, 0);
      await account('carol', id.root!, 0);
      const u2 = ok(
        await admin('createUser', {
          account: 'alice',
          domainid: id.sales,
          username: 'alice2',
          password: 'pw-alice2',
          email: 'a2@example.org',
          firstname: 'a2',
          lastname: 'x',
        }),
        'createUser alice2',
      );
      user.alice2 = u2.user.id;
      user.admin = ok(await admin('listUsers', { username: 'admin' }), 'admin user').user[0].id;
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    test('item 2: getUserKeys of a user without keys answers an empty userkeys object', async () => {
      const r = ok(await admin('getUserKeys', { id: user.alice2 }), 'getUserKeys');
      assert.deepEqual(r, { userkeys: {} });
      const xml = await admin('getUserKeys', { id: user.alice2 }, { json: false });
      assert.match(String(xml.text ?? JSON.stringify(xml.data)), /userkeys/);
      refused(
        await admin('getUserKeys', { id: '00000000-0000-4000-8000-000000000000' }),
        431,
        /no user has this id/,
        'unknown user',
      );
    });

    test('item 7: keys of another user of the account, for callers who may act on that account', async () => {
      // A user may read and issue the keys of another user of its own account (CloudStack's checkAccess).
      assert.deepEqual(ok(await as.alice!('getUserKeys', { id: user.alice2 }), 'alice reads alice2'), {
        userkeys: {},
      });
      const k = ok(
        await as.alice!('registerUserKeys', { id: user.alice2 }),
        'alice issues alice2 keys',
      ).userkeys;
      const read = ok(await as.alice!('getUserKeys', { id: user.alice2 }), 'alice reads again').userkeys;
      assert.equal(read.apikey, k.apikey);
      assert.equal(read.secretkey, k.secretkey);
      // A domain admin for users of its subtree; root admin for everybody.
      assert.ok(ok(await as.dadmin!('getUserKeys', { id: user.bob }), 'dadmin reads bob').userkeys.apikey);
      assert.ok(ok(await admin('getUserKeys', { id: user.carol }), 'admin reads carol').userkeys.apikey);
      for (const [who, target, what] of [
        ['alice', 'bob', 'a user, another account'],
        ['bob', 'alice2', 'a user, another account'],
        ['dadmin', 'carol', 'a domain admin, outside its domain'],
        ['dadmin', 'admin', 'a domain admin, a root admin'],
      ] as const) {
        refused(await as[who]!('getUserKeys', { id: user[target] }), 531, /permission/, what);
        refused(
          await as[who]!('registerUserKeys', { id: user[target] }),
          531,
          /permission/,
          `register: ${what}`,
        );
      }
    });

    test('item 3: listDomains as CloudStack scopes it', async () => {
      assert.deepEqual(await domains(admin), ['ROOT', 'sales', 'east']);
      assert.deepEqual(await domains(admin, { level: 1 }), ['sales']);
      assert.deepEqual(await domains(admin, { level: 2, listall: true }), ['east']);
      assert.deepEqual(await domains(admin, { id: id.east }), ['east']);
      assert.deepEqual(await domains(admin, { keyword: 'ale' }), ['sales']);
      assert.deepEqual(await domains(admin, { name: 'east' }), ['east']);
      assert.deepEqual(await domains(as.dadmin!), ['sales']);
      assert.deepEqual(await domains(as.dadmin!, { listall: true }), ['sales', 'east']);
      assert.deepEqual(await domains(as.dadmin!, { id: id.east }), ['east']);
      assert.deepEqual(await domains(as.bob!), ['east']);
      refused(await as.dadmin!('listDomains', { id: id.root }), 531, /no access to domain/, 'dadmin, ROOT');
      refused(await as.bob!('listDomains', { id: id.sales }), 531, /no access/, 'user, parent domain');
      const page = ok(await admin('listDomains', { page: 2, pagesize: 2 }), 'paged');
      assert.equal(page.count, 3);
      assert.deepEqual(
        page.domain.map((d: { name: string }) => d.name),
        ['east'],
      );
    });

    test('item 5: domainid without account makes the caller the owner, after its reach is checked', async () => {
      const z = ok(
        await admin('createZone', {
          name: 'z1',
          networktype: 'Advanced',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
        }),
        'createZone',
      ).zone.id;
      const pn = ok(
        await admin(
          'createPhysicalNetwork',
          { zoneid: z, name: 'pn1', isolationmethods: 'VLAN', vlan: '100-199' },
          { fetch_result: true },
        ),
        'createPhysicalNetwork',
      ).physicalnetwork.id;
      for (const t of ['Guest', 'Public', 'Management'])
        ok(
          await admin('addTrafficType', { physicalnetworkid: pn, traffictype: t }, { fetch_result: true }),
          t,
        );
      ok(
        await admin('updatePhysicalNetwork', { id: pn, state: 'Enabled' }, { fetch_result: true }),
        'enable pn',
      );
      ok(
        await admin('createVlanIpRange', {
          zoneid: z,
          vlan: '50',
          gateway: '203.0.113.1',
          netmask: '255.255.255.0',
          startip: '203.0.113.10',
          endip: '203.0.113.40',
          forvirtualnetwork: true,
        }),
        'createVlanIpRange',
      );
      id.zone = z;
      id.vpcOffering = ok(await admin('listVPCOfferings', {}), 'vpc offerings').vpcoffering[0].id;
      const vpc = (c: Client, name: string, extra: Record<string, unknown>) =>
        c(
          'createVPC',
          {
            zoneid: z,
            name,
            displaytext: name,
            cidr: '10.20.0.0/16',
            vpcofferingid: id.vpcOffering,
            ...extra,
          },
          { fetch_result: true },
        );
      const v = ok(await vpc(as.dadmin!, 'dvpc', { domainid: id.sales }), 'createVPC with domainid only');
      assert.equal(v.vpc.account, 'dadmin');
      assert.equal(v.vpc.domainid, id.sales);
      id.vpc = v.vpc.id;
      const b = ok(await vpc(as.bob!, 'bvpc', { domainid: id.east }), 'user, own domain');
      assert.equal(b.vpc.account, 'bob');
      refused(await vpc(as.dadmin!, 'x', { domainid: id.root }), 531, /permission/, 'dadmin, ROOT');
      refused(await vpc(as.bob!, 'x', { domainid: id.sales }), 531, /permission/, 'user, another domain');
      refused(await vpc(as.dadmin!, 'x', { account: 'alice' }), 431, /together/, 'account without domainid');
      refused(
        await vpc(admin, 'x', { domainid: '00000000-0000-4000-8000-000000000000' }),
        431,
        /domainid/,
        'unknown domain',
      );
    });

    test('item 8: domain and account responses carry resource-limit fields with counted totals', async () => {
      const all = ok(await admin('listDomains', { listall: true }), 'listDomains').domain as Record<
        string,
        unknown
      >[];
      for (const d of all) {
        for (const r of RESOURCES) {
          assert.equal(d[`${r}limit`], 'Unlimited', `${String(d.name)} ${r}limit`);
          assert.equal(d[`${r}available`], 'Unlimited', `${String(d.name)} ${r}available`);
          assert.equal(typeof d[`${r}total`], 'number', `${String(d.name)} ${r}total`);
        }
      }
      const byName = new Map(all.map((d) => [d.name, d]));
      // One VPC in sales (dadmin's), one in east (bob's): a domain counts its subtree.
      assert.equal(byName.get('east')!.vpctotal, 1);
      assert.equal(byName.get('sales')!.vpctotal, 2);
      assert.equal(byName.get('ROOT')!.vpctotal, 2);
      assert.equal(byName.get('sales')!.volumetotal, 0);
      // Public IPs counted from what exists: the same number listPublicIpAddresses shows.
      const ips = ok(
        await as.dadmin!('associateIpAddress', { vpcid: id.vpc }, { fetch_result: true }),
        'associate',
      );
      assert.ok(ips.ipaddress.id);
      const listed = ok(
        await admin('listPublicIpAddresses', { listall: true, allocatedonly: true }),
        'ips',
      ).count;
      const root = ok(await admin('listDomains', { id: id.root }), 'ROOT').domain[0];
      assert.equal(root.iptotal, listed);
      const min = ok(await admin('listDomains', { id: id.root, details: 'min' }), 'details=min').domain[0];
      assert.equal(min.vmlimit, undefined);
      refused(await admin('listDomains', { details: 'bogus' }), 431, /details/, 'details=bogus');

      const acct = (name: string) =>
        admin('listAccounts', { name, listall: true }).then((r) => ok(r, name).account[0]);
      const d = await acct('dadmin');
      const dadminIps = ok(await as.dadmin!('listPublicIpAddresses', {}), 'dadmin ips').count;
      assert.equal(d.iplimit, '20');
      assert.equal(d.iptotal, dadminIps);
      assert.equal(d.ipavailable, String(20 - dadminIps));
      assert.equal(d.vpctotal, 1);
      assert.equal(d.vmlimit, 'Unlimited');
      assert.equal(d.vmrunning, 0);
      const a = await acct('admin');
      assert.equal(a.iplimit, 'Unlimited');
      // The limit follows the setting the allocation checks.
      ok(await admin('updateConfiguration', { name: 'max.account.public.ips', value: '7' }), 'limit 7');
      assert.equal((await acct('carol')).iplimit, '7');
      ok(await admin('updateConfiguration', { name: 'max.account.public.ips', value: '20' }), 'limit 20');
      // The create answers carry the fields too.
      assert.equal(ok(await admin('createDomain', { name: 'west' }), 'west').domain.vmlimit, 'Unlimited');
    });

    test('updateUser: names, email, keys and passwords as CloudStack checks them', async () => {
      const u = ok(
        await admin('updateUser', { id: user.alice2, firstname: 'Alicia', email: 'alicia@example.org' }),
        'updateUser',
      ).user;
      assert.equal(u.firstname, 'Alicia');
      assert.equal(u.email, 'alicia@example.org');
      refused(await admin('updateUser', { id: user.alice2, firstname: ' ' }), 431, /firstname/, 'blank name');
      refused(
        await admin('updateUser', { id: user.alice2, username: 'alice' }),
        431,
        /already exists/,
        'taken',
      );
      refused(
        await admin('updateUser', { id: user.alice2, userapikey: 'k' }),
        431,
        /together/,
        'half a pair',
      );
      refused(
        await as.bob!('updateUser', { id: user.alice2, lastname: 'y' }),
        531,
        /permission/,
        'bob on alice2',
      );
      // A user changes its own password only with the current one; an admin without.
      refused(
        await as.alice!('updateUser', { id: user.alice, password: 'n1' }),
        431,
        /currentpassword/,
        'no current',
      );
      refused(
        await as.alice!('updateUser', { id: user.alice, password: 'n1', currentpassword: 'wrong' }),
        431,
        /incorrect/,
        'wrong current',
      );
      ok(
        await as.alice!('updateUser', { id: user.alice, password: 'n1', currentpassword: 'pw-alice' }),
        'own password',
      );
      const s = ok(
        await bridge.session({
          endpoint: server.url,
          username: 'alice',
          password: 'n1',
          domain: '/sales',
          command: 'listUsers',
        }),
        'login with the new password',
      );
      assert.equal(s.login_status, 200, JSON.stringify(s.login));
      // Keys given by an admin work at once.
      ok(
        await admin('updateUser', {
          id: user.alice2,
          userapikey: `api-${kind}`,
          usersecretkey: `secret-${kind}`,
        }),
        'set keys',
      );
      const a2 = bridge.client(server.url, `api-${kind}`, `secret-${kind}`);
      assert.equal(
        ok(await a2('listUsers', { id: user.alice2 }), 'alice2 with its new keys').user[0].firstname,
        'Alicia',
      );
      refused(
        await admin('updateUser', { id: user.bob, userapikey: `api-${kind}`, usersecretkey: 'x' }),
        431,
        /already has this API key/,
        'duplicate api key',
      );
      const ev = ok(await admin('listEvents', { type: 'USER.UPDATE', listall: true }), 'USER.UPDATE events');
      assert.equal(ev.count, 3);
    });

    test('disableAccount, enableAccount, lockAccount: users refused, resources kept', async () => {
      const dis = ok(
        await admin('disableAccount', { id: id.dadmin, lock: false }, { fetch_result: true }),
        'disableAccount',
      );
      assert.equal(dis.account.state, 'disabled');
      assert.equal((await as.dadmin!('listVPCs', {})).status, 401);
      const s = ok(
        await bridge.session({
          endpoint: server.url,
          username: 'dadmin',
          password: 'pw-dadmin',
          domain: '/sales',
          command: 'listVPCs',
        }),
        'session',
      );
      assert.equal(s.login_status, 531);
      assert.match(JSON.stringify(s.login), /disabled or locked/);
      // A wrong password says nothing of the state.
      const wrong = ok(
        await bridge.session({
          endpoint: server.url,
          username: 'dadmin',
          password: 'nope',
          domain: '/sales',
          command: 'listVPCs',
        }),
        'wrong password',
      );
      assert.doesNotMatch(JSON.stringify(wrong.login), /disabled/);
      const vpcs = ok(
        await admin('listVPCs', { listall: true, account: 'dadmin', domainid: id.sales }),
        'kept',
      );
      assert.equal(vpcs.count, 1);
      const en = ok(await admin('enableAccount', { account: 'dadmin', domainid: id.sales }), 'enableAccount');
      assert.equal(en.account.state, 'enabled');
      assert.equal(ok(await as.dadmin!('listVPCs', {}), 'dadmin again').count, 1);
      const locked = ok(
        await admin('disableAccount', { id: id.bob, lock: true }, { fetch_result: true }),
        'disableAccount lock=true',
      );
      assert.equal(locked.account.state, 'locked');
      assert.equal((await as.bob!('listVPCs', {})).status, 401);
      ok(await as.dadmin!('enableAccount', { id: id.bob }), 'dadmin enables bob');
      assert.equal(ok(await as.bob!('listVPCs', {}), 'bob again').count, 1);
      assert.equal(
        ok(await admin('lockAccount', { account: 'bob', domainid: id.east }), 'lock').account.state,
        'locked',
      );
      ok(await admin('enableAccount', { id: id.bob }), 'enable bob');
      refused(
        await as.dadmin!('disableAccount', { id: id.carol, lock: false }, { fetch_result: true }),
        531,
        /permission/,
        'dadmin, ROOT account',
      );
      refused(await as.alice!('enableAccount', { id: id.alice }), 432, /.*/, 'a user may not call it');
      const adminAcct = ok(await admin('listAccounts', { name: 'admin' }), 'admin').account[0].id;
      refused(
        await admin('disableAccount', { id: adminAcct, lock: true }, { fetch_result: true }),
        531,
        /default account/,
        'default account',
      );
      refused(await admin('enableAccount', { account: 'bob' }), 431, /domainid/, 'account without domainid');
      for (const t of ['ACCOUNT.DISABLE', 'ACCOUNT.ENABLE'])
        assert.ok(ok(await admin('listEvents', { type: t, listall: true }), t).count >= 2, t);
    });

    test('updateAccount: rename, network domain, role', async () => {
      const a = ok(await admin('updateAccount', { id: id.carol, newname: 'carol2' }), 'rename').account;
      assert.equal(a.name, 'carol2');
      refused(
        await admin('updateAccount', { account: 'carol2', domainid: id.root, newname: 'admin' }),
        431,
        /already exists/,
        'name taken',
      );
      refused(
        await admin('updateAccount', { id: id.carol, networkdomain: 'bad_domain!' }),
        431,
        /networkdomain/,
        'bad nd',
      );
      assert.equal(
        ok(await admin('updateAccount', { id: id.carol, networkdomain: 'corp.example' }), 'nd').account
          .networkdomain,
        'corp.example',
      );
      refused(
        await as.dadmin!('updateAccount', { id: id.carol, newname: 'x' }),
        531,
        /permission/,
        'dadmin, ROOT',
      );
      const daRole = ok(await admin('listAccounts', { name: 'dadmin', listall: true }), 'r').account[0]
        .roleid;
      const up = ok(await admin('updateAccount', { id: id.alice, roleid: daRole }), 'role').account;
      assert.equal(up.accounttype, 2);
      assert.ok(ok(await admin('listEvents', { type: 'ACCOUNT.UPDATE', listall: true }), 'ev').count >= 3);
    });

    test('deleteUser and moveUser', async () => {
      refused(await admin('deleteUser', { id: user.admin }), 431, /default user/, 'default admin');
      refused(await as.dadmin!('deleteUser', { id: user.dadmin }), 431, /itself/, 'self');
      refused(await as.dadmin!('deleteUser', { id: user.carol }), 531, /permission/, 'outside the domain');
      refused(await as.bob!('deleteUser', { id: user.alice2 }), 432, /.*/, 'a user may not call it');
      const dave = ok(
        await admin('createAccount', {
          username: 'dave',
          password: 'pw',
          email: 'd@example.org',
          firstname: 'd',
          lastname: 'x',
          accounttype: 0,
          domainid: id.sales,
        }),
        'dave',
      ).account;
      ok(await as.dadmin!('moveUser', { id: user.alice2, account: 'dave' }), 'moveUser');
      const moved = ok(await admin('listUsers', { id: user.alice2, listall: true }), 'moved').user[0];
      assert.equal(moved.account, 'dave');
      assert.equal(moved.accountid, dave.id);
      // It keeps its keys: it now acts as dave's user.
      const a2 = bridge.client(server.url, `api-${kind}`, `secret-${kind}`);
      assert.equal(ok(await a2('listAccounts', {}), 'as dave').account[0].name, 'dave');
      refused(
        await admin('moveUser', { id: user.alice2, accountid: id.bob }),
        431,
        /own domain/,
        'other domain',
      );
      refused(await admin('moveUser', { id: user.alice2 }), 431, /account or accountid/, 'no target');
      ok(await admin('deleteUser', { id: user.alice2 }), 'deleteUser');
      refused(await admin('getUserKeys', { id: user.alice2 }), 431, /no user/, 'deleted user');
      assert.equal((await a2('listUsers', {})).status, 401);
      for (const t of ['USER.MOVE', 'USER.DELETE'])
        assert.equal(ok(await admin('listEvents', { type: t, listall: true }), t).count, 1, t);
    });

    test('disableUser, enableUser, lockUser', async () => {
      const d = ok(
        await as.dadmin!('disableUser', { id: user.bob }, { fetch_result: true }),
        'disableUser',
      ).user;
      assert.equal(d.state, 'disabled');
      assert.equal((await as.bob!('listUsers', {})).status, 401);
      assert.equal(ok(await as.dadmin!('enableUser', { id: user.bob }), 'enableUser').user.state, 'enabled');
      assert.equal(ok(await as.bob!('listUsers', {}), 'bob back').count, 1);
      // Locking the account's only enabled user locks the account.
      assert.equal(ok(await admin('lockUser', { id: user.bob }), 'lockUser').user.state, 'locked');
      const b = ok(await admin('listAccounts', { id: id.bob, listall: true }), 'bob account').account[0];
      assert.equal(b.state, 'locked');
      refused(await admin('lockUser', { id: user.admin }), 531, /default user/, 'default admin');
      refused(
        await admin('disableUser', { id: user.admin }, { fetch_result: true }),
        431,
        /default user/,
        'default admin',
      );
      refused(
        await as.dadmin!('disableUser', { id: user.carol }, { fetch_result: true }),
        531,
        /permission/,
        'outside the domain',
      );
      // enableUser enables the account as well.
      ok(await admin('enableUser', { id: user.bob }), 'enable bob');
      assert.equal(
        ok(await admin('listAccounts', { id: id.bob, listall: true }), 'b').account[0].state,
        'enabled',
      );
      for (const t of ['USER.DISABLE', 'USER.ENABLE', 'USER.LOCK'])
        assert.ok(ok(await admin('listEvents', { type: t, listall: true }), t).count >= 1, t);
    });
  });
}
