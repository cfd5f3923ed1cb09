/**
 * The API server as a CloudStack client sees it: a real server process, the real python `cs` library, signed
 * requests, on SQLite, PostgreSQL and MariaDB.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { CsBridge, startServer } from './harness.js';
import type { ServerProcess } from './harness.js';

const commandsUnderTest = [
  'login',
  'logout',
  'listApis',
  'queryAsyncJobResult',
  'listAsyncJobs',
  'createDomain',
  'listDomains',
  'deleteDomain',
  'createAccount',
  'listAccounts',
  'deleteAccount',
  'createUser',
  'listUsers',
  'registerUserKeys',
  'getUserKeys',
  'listConfigurations',
  'updateConfiguration',
  'resetConfiguration',
  'listEvents',
  'listEventTypes',
];

for (const kind of testDbKinds()) {
  describe(`API server over HTTP with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: ReturnType<CsBridge['client']>;
    const ids: Record<string, string> = {};

    before(async () => {
      tdb = await createTestDatabase(kind);
      server = await startServer(tdb.url);
      bridge = new CsBridge();
      admin = bridge.client(server.url, server.apiKey, server.secretKey);
    });

    after(async () => {
      await bridge?.close();
      const code = await server?.stop();
      assert.equal(code, 0, `server exit code after SIGTERM\n${server?.output()}`);
      await tdb?.drop();
    });

    test('listApis lists every command with CloudStack metadata', async () => {
      const r = await admin('listApis');
      assert.ok(r.ok, JSON.stringify(r));
      const names = r.data.api.map((a: { name: string }) => a.name);
      for (const c of commandsUnderTest) assert.ok(names.includes(c), `listApis lacks ${c}`);
      assert.equal(r.data.count, r.data.api.length);
      const del = r.data.api.find((a: { name: string }) => a.name === 'deleteAccount');
      assert.equal(del.isasync, true);
      assert.deepEqual(
        del.params.map((p: { name: string; type: string; required: boolean }) => [
          p.name,
          p.type,
          p.required,
        ]),
        [['id', 'uuid', true]],
      );
      assert.ok(del.response.some((f: { name: string }) => f.name === 'success'));
      const one = await admin('listApis', { name: 'createDomain' });
      assert.equal(one.data.count, 1);
    });

    test('domains, accounts, users and keys', async () => {
      const d = await admin('createDomain', { name: 'eng' });
      assert.ok(d.ok, JSON.stringify(d));
      ids.eng = d.data.domain.id;
      assert.equal(d.data.domain.path, 'ROOT/eng');
      const dup = await admin('createDomain', { name: 'eng' });
      assert.equal(dup.status, 431);
      assert.match(dup.error.errortext, /name/);

      const a1 = await admin('createAccount', {
        username: 'alice',
        password: 'alice-pw',
        email: 'alice@example.org',
        firstname: 'Alice',
        lastname: 'A',
        domainid: ids.eng,
        accounttype: 0,
      });
      assert.ok(a1.ok, JSON.stringify(a1));
      ids.alice = a1.data.account.id;
      ids.aliceUser = a1.data.account.user[0].id;
      assert.equal(a1.data.account.user[0].secretkey, undefined);
      const a2 = await admin('createAccount', {
        username: 'bob',
        password: 'bob-pw',
        email: 'bob@example.org',
        firstname: 'Bob',
        lastname: 'B',
      });
      assert.ok(a2.ok, JSON.stringify(a2));
      ids.bob = a2.data.account.id;
      ids.bobUser = a2.data.account.user[0].id;

      const u = await admin('createUser', {
        account: 'alice',
        domainid: ids.eng,
        username: 'alice2',
        password: 'pw2',
        email: 'a2@example.org',
        firstname: 'Al',
        lastname: 'Two',
      });
      assert.ok(u.ok, JSON.stringify(u));
      assert.equal(u.data.user.account, 'alice');

      const doms = await admin('listDomains', { listall: true });
      assert.deepEqual(doms.data.domain.map((x: { path: string }) => x.path).sort(), ['ROOT', 'ROOT/eng']);
      const accts = await admin('listAccounts', { listall: true });
      assert.deepEqual(accts.data.account.map((x: { name: string }) => x.name).sort(), [
        'admin',
        'alice',
        'bob',
      ]);
      const users = await admin('listUsers', { listall: true });
      assert.equal(users.data.count, 4);
      for (const x of users.data.user) assert.equal(x.secretkey, undefined);

      const keys = await admin('registerUserKeys', { id: ids.aliceUser });
      assert.ok(keys.ok, JSON.stringify(keys));
      ids.aliceKey = keys.data.userkeys.apikey;
      ids.aliceSecret = keys.data.userkeys.secretkey;
      const got = await admin('getUserKeys', { id: ids.aliceUser });
      assert.deepEqual(got.data.userkeys, keys.data.userkeys);
    });

    test('a user sees only its own account and cannot read another account', async () => {
      const alice = bridge.client(server.url, ids.aliceKey!, ids.aliceSecret!);
      const mine = await alice('listAccounts', { listall: true });
      assert.ok(mine.ok, JSON.stringify(mine));
      assert.deepEqual(
        mine.data.account.map((x: { name: string }) => x.name),
        ['alice'],
      );
      const users = await alice('listUsers', { listall: true });
      assert.deepEqual(users.data.user.map((x: { username: string }) => x.username).sort(), [
        'alice',
        'alice2',
      ]);
      const other = await alice('listEvents', { account: 'bob', listall: true });
      assert.equal(other.status, 531, JSON.stringify(other));
      const bobKeys = await alice('getUserKeys', { id: ids.bobUser });
      assert.equal(bobKeys.status, 531);
      const bobAccount = await alice('listAccounts', { id: ids.bob });
      assert.deepEqual(bobAccount.data, {});
      // Admin-only commands do not exist for a user: CloudStack's unknown-command answer.
      const denied = await alice('createDomain', { name: 'x' });
      assert.equal(denied.status, 432);
      assert.ok(denied.text!.includes('errorresponse'));
      const apis = await alice('listApis');
      const names = apis.data.api.map((a: { name: string }) => a.name);
      assert.ok(!names.includes('createDomain') && !names.includes('listConfigurations'));
      assert.ok(names.includes('listAccounts'));
    });

    test('a domain admin sees and changes only its domain subtree', async () => {
      const created = await admin('createAccount', {
        username: 'engadmin',
        password: 'engadmin-pw',
        email: 'ea@example.org',
        firstname: 'Eng',
        lastname: 'Admin',
        domainid: ids.eng,
        accounttype: 2,
      });
      assert.ok(created.ok, JSON.stringify(created));
      assert.equal(created.data.account.roletype, 'DomainAdmin');
      const keys = await admin('registerUserKeys', { id: created.data.account.user[0].id });
      const da = bridge.client(server.url, keys.data.userkeys.apikey, keys.data.userkeys.secretkey);
      const accts = await da('listAccounts', { listall: true });
      assert.deepEqual(accts.data.account.map((x: { name: string }) => x.name).sort(), ['alice', 'engadmin']);
      const doms = await da('listDomains', { listall: true });
      assert.deepEqual(
        doms.data.domain.map((x: { path: string }) => x.path),
        ['ROOT/eng'],
      );
      const sub = await da('createDomain', { name: 'team' });
      assert.equal(sub.data.domain.path, 'ROOT/eng/team');
      const outside = await da('createDomain', {
        name: 'x',
        parentdomainid: doms.data.domain[0].parentdomainid,
      });
      assert.equal(outside.status, 531);
      const bob = await da('deleteAccount', { id: ids.bob }, { fetch_result: true });
      assert.equal(bob.ok, false);
      assert.equal(bob.error.errorcode, 531);
      const stillThere = await admin('listAccounts', { id: ids.bob });
      assert.equal(stillThere.data.count, 1);
      const cleanup = await admin('deleteDomain', { id: sub.data.domain.id }, { fetch_result: true });
      assert.deepEqual(cleanup.data, { success: true });
    });

    test('an async job runs to completion, and a failing one reports its error', async () => {
      const queued = await admin('deleteAccount', { id: ids.bob });
      assert.ok(queued.ok, JSON.stringify(queued));
      assert.equal(typeof queued.data.jobid, 'string');
      // The first job is over before the second is queued: two jobs on one account may otherwise run side by side.
      for (let i = 0; i < 600; i++) {
        const q = await admin('queryAsyncJobResult', { jobid: queued.data.jobid });
        if (q.data.jobstatus !== 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const done = await admin('deleteAccount', { id: ids.bob }, { fetch_result: true });
      // The first job deleted bob; polling a second delete of the same id ends in a failed job.
      assert.equal(done.ok, false);
      assert.equal(done.error.errorcode, 431);
      const q = await admin('queryAsyncJobResult', { jobid: queued.data.jobid });
      assert.equal(q.data.jobstatus, 1, JSON.stringify(q.data));
      assert.equal(q.data.jobresultcode, 0);
      assert.deepEqual(q.data.jobresult, { success: true });
      assert.equal(q.data.jobinstancetype, 'Account');
      const sub = await admin('createDomain', { name: 'temp' });
      const del = await admin('deleteDomain', { id: sub.data.domain.id }, { fetch_result: true });
      assert.deepEqual(del.data, { success: true });
      const jobs = await admin('listAsyncJobs', { listall: true });
      assert.ok(jobs.data.count >= 3);
      assert.ok(jobs.data.asyncjobs.every((j: { jobstatus: number }) => typeof j.jobstatus === 'number'));
      const gone = await admin('listAccounts', { listall: true, name: 'bob' });
      assert.deepEqual(gone.data, {});
    });

    test('XML is the default response and JSON on request', async () => {
      const xml = await admin('listDomains', { listall: true }, { json: false });
      assert.ok(xml.ok, JSON.stringify(xml));
      assert.match(
        xml.data,
        /^<\?xml version="1.0" encoding="UTF-8"\?><listdomainsresponse cloud-stack-version=/,
      );
      assert.match(xml.data, /<count>2<\/count><domain><id>/);
      const json = await admin('listDomains', { listall: true });
      assert.equal(json.data.count, 2);
    });

    test('bad signature, expired signatureversion=3 request and unknown command', async () => {
      const wrong = bridge.client(server.url, server.apiKey, 'not-the-secret');
      const r = await wrong('listDomains');
      assert.equal(r.status, 401);
      assert.equal(r.error.errortext, 'unable to verify user credentials and/or request signature');
      const expired = await admin('listDomains', {
        signatureVersion: '3',
        expires: '2020-01-01T00:00:00+0000',
      });
      assert.equal(expired.status, 401);
      const unknownKey = bridge.client(server.url, 'no-such-key', 'x');
      assert.equal((await unknownKey('listDomains')).status, 401);
      const unknown = await admin('listZonesX');
      assert.equal(unknown.status, 432);
      // python-cs signs `~` literally; the server accepts it.
      const tilde = await admin('listDomains', { keyword: 'a~b' });
      assert.ok(tilde.ok, JSON.stringify(tilde));
    });

    test('pagination: count is the total, page/pagesize rules, default.page.size bound', async () => {
      for (const n of ['p1', 'p2', 'p3']) assert.ok((await admin('createDomain', { name: n })).ok);
      const all = await admin('listDomains', { listall: true });
      const total = all.data.count;
      assert.equal(total, 5);
      const p1 = await admin('listDomains', { listall: true, page: 1, pagesize: 2 });
      assert.equal(p1.data.count, total);
      assert.equal(p1.data.domain.length, 2);
      const p3 = await admin('listDomains', { listall: true, page: 3, pagesize: 2 });
      assert.equal(p3.data.domain.length, 1);
      // (python-cs adds pagesize to any `page`, so the lone parameter sent here is pagesize.)
      const onlySize = await admin('listDomains', { listall: true, pagesize: 2 });
      assert.equal(onlySize.status, 431);
      assert.match(onlySize.error.errortext, /\bpage\b/);
      const set = await admin('updateConfiguration', { name: 'default.page.size', value: '3' });
      assert.equal(set.data.configuration.value, '3');
      const bounded = await admin('listDomains', { listall: true });
      assert.equal(bounded.data.domain.length, 3);
      assert.equal(bounded.data.count, total);
      const tooBig = await admin('listDomains', { listall: true, page: 1, pagesize: 4 });
      assert.equal(tooBig.status, 431);
      const reset = await admin('resetConfiguration', { name: 'default.page.size' });
      assert.equal(reset.data.configuration.value, '500');
    });

    test('wrong-typed and missing parameters answer 431 naming the parameter', async () => {
      const wrongType = await admin('listDomains', { level: 'abc' });
      assert.equal(wrongType.status, 431);
      assert.equal(wrongType.error.cserrorcode, 4350);
      assert.match(wrongType.error.errortext, /level/);
      const badUuid = await admin('deleteAccount', { id: 'not-a-uuid' });
      assert.equal(badUuid.status, 431);
      assert.match(badUuid.error.errortext, /\bid\b/);
      const missing = await admin('createDomain', {});
      assert.equal(missing.status, 431);
      assert.match(missing.error.errortext, /name/);
    });

    test('settings: list, update with validation, reset', async () => {
      const l = await admin('listConfigurations', { name: 'network.gc.wait' });
      assert.equal(l.data.configuration[0].value, '600');
      assert.equal(l.data.configuration[0].defaultvalue, '600');
      const up = await admin('updateConfiguration', { name: 'network.gc.wait', value: '120' });
      assert.equal(up.data.configuration.value, '120');
      assert.equal(
        (await admin('listConfigurations', { name: 'network.gc.wait' })).data.configuration[0].value,
        '120',
      );
      const bad = await admin('updateConfiguration', { name: 'network.gc.wait', value: 'soon' });
      assert.equal(bad.status, 431);
      assert.match(bad.error.errortext, /value/);
      const unknown = await admin('updateConfiguration', { name: 'no.such.setting', value: '1' });
      assert.equal(unknown.status, 431);
      const r = await admin('resetConfiguration', { name: 'network.gc.wait' });
      assert.equal(r.data.configuration.value, '600');
      const dns = await admin('listConfigurations', { keyword: 'dns' });
      assert.ok(
        dns.data.configuration.some(
          (c: { name: string; scope: string }) => c.name === 'use.external.dns' && c.scope === 'Zone',
        ),
      );
    });

    test('events are recorded with the changes, and event types are listed', async () => {
      const ev = await admin('listEvents', { listall: true, pagesize: 500, page: 1 });
      const types = new Set(ev.data.event.map((e: { type: string }) => e.type));
      for (const t of [
        'DOMAIN.CREATE',
        'ACCOUNT.CREATE',
        'USER.CREATE',
        'ACCOUNT.DELETE',
        'REGISTER.USER.KEY',
        'CONFIGURATION.VALUE.EDIT',
      ]) {
        assert.ok(types.has(t), `no ${t} event`);
      }
      const et = await admin('listEventTypes');
      const names = et.data.eventtype.map((e: { name: string }) => e.name);
      assert.ok(names.includes('NET.IPASSIGN') && names.includes('VM.CREATE'));
    });

    test('login session: sessionkey cookie and parameter, logout ends it', async () => {
      const s = await bridge.session({
        endpoint: server.url,
        username: 'alice',
        password: 'alice-pw',
        domain: '/eng/',
        command: 'listAccounts',
      });
      assert.ok(s.ok, JSON.stringify(s));
      const d = s.data;
      assert.equal(d.login_status, 200, JSON.stringify(d.login));
      assert.equal(d.login.loginresponse.username, 'alice');
      assert.ok(d.cookies.includes('sessionkey') && d.cookies.includes('JSESSIONID'));
      assert.equal(d.call_status, 200);
      assert.equal(d.call.listaccountsresponse.account[0].name, 'alice');
      assert.equal(d.logout_status, 200);
      assert.equal(d.after_status, 401);
      const bad = await bridge.session({
        endpoint: server.url,
        username: 'alice',
        password: 'wrong',
        domain: '/eng/',
        command: 'listAccounts',
      });
      assert.equal(bad.data.login_status, 531);
    });
  });
}
