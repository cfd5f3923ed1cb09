/**
 * What CloudStack's web UI asks of a server, answered by a real `stacknet server --ui-dir` process (issue 14):
 * its unauthenticated calls before login, the login answer it stores, its start-up calls after login (with the
 * session, as the UI makes them, and signed through the python `cs` client), and the static files served from
 * the same origin as /client/api. On SQLite and PostgreSQL. The page under test/ui/console is the project's own
 * small console: it logs in the way the UI does; ui-browser.test.ts loads it in chromium.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CsBridge, ok, refused, startServer } from '../api/harness.js';
import type { CsClient, ServerProcess } from '../api/harness.js';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { timezoneOffsetHours } from '../../src/api/authentication.js';
import { BrowserSession, consoleDir } from './harness.js';

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');

for (const kind of kinds) {
  describe(`the CloudStack UI's calls (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: CsClient;
    let origin: string;

    before(async () => {
      tdb = await createTestDatabase(kind);
      server = await startServer(tdb.url, {}, ['--ui-dir', consoleDir]);
      origin = `http://127.0.0.1:${server.port}`;
      bridge = new CsBridge();
      admin = bridge.client(server.url, server.apiKey, server.secretKey);
    });

    after(async () => {
      await bridge?.close();
      const code = await server?.stop();
      assert.equal(code, 0, `server exit code\n${server?.output()}`);
      await tdb?.drop();
    });

    test('before login: identity providers, OAuth, themes answer without credentials; forgotPassword says why not', async () => {
      const b = new BrowserSession(origin);
      for (const [command, key] of [
        ['listIdps', 'listidpsresponse'],
        ['listOauthProvider', 'listoauthproviderresponse'],
        ['listGuiThemes', 'listguithemesresponse'],
      ] as const) {
        const r = await b.api({ command });
        assert.equal(r.status, 200, `${command}: ${JSON.stringify(r.json)}`);
        assert.deepEqual(r.json, { [key]: {} }, command);
      }
      const fp = await b.api({ command: 'forgotPassword', username: 'admin' }, 'POST');
      assert.equal(fp.status, 530);
      assert.equal(fp.json.forgotpasswordresponse.cserrorcode, 4390);
      assert.match(fp.json.forgotpasswordresponse.errortext, /updateUser/);
      // Commands that are not public still need credentials.
      assert.equal((await b.api({ command: 'listCapabilities' })).status, 401);
    });

    test('the login answer carries what the UI stores (timezone, timezoneoffset, 2FA flags)', async () => {
      const root = ok(await admin('listDomains', {}), 'listDomains').domain[0].id as string;
      const a = ok(
        await admin('createAccount', {
          username: 'kiran',
          password: 'kiran-pw',
          email: 'kiran@example.org',
          firstname: 'Kiran',
          lastname: 'Rao',
          accounttype: 0,
          domainid: root,
          timezone: 'Asia/Kolkata',
        }),
        'createAccount',
      );
      assert.equal(a.account.user[0].timezone, 'Asia/Kolkata');
      // A name that is no time zone is refused with what to give instead, and the user keeps the one it had.
      const userid = a.account.user[0].id as string;
      for (const timezone of ['Mars/Olympus_Mons', 'é'.repeat(200)]) {
        refused(
          await admin('updateUser', { id: userid, timezone }),
          431,
          /timezone.*not a time zone \(use an IANA name/,
          `updateUser timezone=${timezone.slice(0, 20)}`,
        );
      }
      refused(
        await admin('createUser', {
          account: 'kiran',
          username: 'kiran2',
          password: 'x-pw',
          email: 'k2@example.org',
          firstname: 'K',
          lastname: 'R',
          domainid: root,
          timezone: 'GMT+5:30',
        }),
        431,
        /not a time zone/,
        'createUser with a bad timezone',
      );
      const users = ok(await admin('listUsers', { username: 'kiran' }), 'listUsers').user;
      assert.equal(users.length, 1);
      assert.equal(users[0].timezone, 'Asia/Kolkata');
      const b = new BrowserSession(origin);
      const r = await b.api(
        { command: 'login', username: 'kiran', password: 'kiran-pw', domain: '/' },
        'POST',
      );
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const l = r.json.loginresponse;
      assert.equal(l.timezone, 'Asia/Kolkata');
      assert.equal(l.timezoneoffset, '5.5');
      assert.equal(l.is2faenabled, 'false');
      assert.equal(l.type, '0');
      const adminLogin = await new BrowserSession(origin).api(
        { command: 'login', username: 'admin', password: 'admin-test-password' },
        'POST',
      );
      assert.equal(adminLogin.json.loginresponse.timezone, undefined);
      assert.equal(adminLogin.json.loginresponse.timezoneoffset, '0.0');
    });

    test("after login: the UI's start-up calls answer with the fields it reads", async () => {
      const b = new BrowserSession(origin);
      const l = await b.api({ command: 'login', username: 'admin', password: 'admin-test-password' }, 'POST');
      const sessionkey = l.json.loginresponse.sessionkey as string;
      const userid = l.json.loginresponse.userid as string;
      const call = (command: string, p: Record<string, string> = {}) => b.api({ command, sessionkey, ...p });

      const caps = await call('listCapabilities');
      assert.equal(caps.status, 200);
      const c = caps.json.listcapabilitiesresponse.capability;
      assert.equal(c.cloudstackversion, '4.18.0.0');
      assert.equal(c.securitygroupsenabled, false);
      assert.equal(c.defaultuipagesize, 20);
      assert.equal(c.apilimitmax, 25);
      const ldap = await call('listLdapConfigurations');
      assert.deepEqual(ldap, { status: 200, json: { ldapconfigurationresponse: {} } });
      const cloudian = await call('cloudianIsEnabled');
      assert.deepEqual(cloudian.json, {
        cloudianisenabledresponse: { cloudianisenabled: { enabled: false } },
      });
      assert.deepEqual((await call('listResourceIcon', { resourceids: userid, resourcetype: 'User' })).json, {
        listresourceiconresponse: {},
      });
      const apis = await call('listApis');
      const names = new Set(
        (apis.json.listapisresponse.api as { name: string }[]).map((x: { name: string }) => x.name),
      );
      for (const n of ['listCapabilities', 'listLdapConfigurations', 'cloudianIsEnabled', 'listZones'])
        assert.ok(names.has(n), `listApis has ${n}`);
      assert.equal((await call('listZones')).status, 200);
      const users = await call('listUsers', { id: userid });
      assert.equal(users.json.listusersresponse.user[0].id, userid);
      for (const [command, p] of [
        ['listNetworks', { restartrequired: 'true', forvpc: 'false' }],
        ['listVPCs', { restartrequired: 'true' }],
        // The UI shows security groups only when this finds an enabled provider: stacknet has none.
        ['listNetworkServiceProviders', { name: 'SecurityGroupProvider', state: 'Enabled' }],
        ['listGuiThemes', { listonlydefaulttheme: 'true' }],
      ] as const) {
        const r = await call(command, p);
        assert.equal(r.status, 200, `${command}: ${JSON.stringify(r.json)}`);
      }

      // The same through the python `cs` client, signed.
      const signedCaps = ok(await admin('listCapabilities', {}), 'listCapabilities (cs)');
      assert.equal(signedCaps.capability.cloudstackversion, '4.18.0.0');
      ok(await admin('listLdapConfigurations', {}), 'listLdapConfigurations (cs)');
      refused(
        await admin('listLdapConfigurations', { pagesize: 'x' }),
        431,
        /pagesize/,
        'listLdapConfigurations with a bad pagesize',
      );
    });

    test('the UI is served at /client/ from the same origin; nothing outside its directory is', async () => {
      const b = new BrowserSession(origin);
      const root = await b.request('/');
      assert.equal(root.status, 302);
      assert.equal(root.headers.get('location'), '/client/');
      const index = await b.request('/client/');
      assert.equal(index.status, 200);
      assert.match(index.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(await index.text(), /stacknet console check/);
      const js = await b.request('/client/login-check.js');
      assert.equal(js.status, 200);
      assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
      for (const path of [
        '/client/missing.js',
        '/client/..%2f..%2fpackage.json',
        '/client/%2e%2e/ui-console.test.ts',
        '/client/%00',
      ]) {
        const r = await b.request(path);
        assert.equal(r.status, 404, path);
      }
      // The API still answers at /client/api beside the files.
      assert.equal((await b.api({ command: 'listIdps' })).status, 200);
    });
  });
}

test('timezoneoffset is the zone offset in hours, as a Java float prints it', () => {
  const jan = Date.UTC(2026, 0, 15);
  const jul = Date.UTC(2026, 6, 15);
  assert.equal(timezoneOffsetHours(undefined, jan), '0.0');
  assert.equal(timezoneOffsetHours('UTC', jan), '0.0');
  assert.equal(timezoneOffsetHours('Asia/Kolkata', jan), '5.5');
  assert.equal(timezoneOffsetHours('America/New_York', jan), '-5.0');
  assert.equal(timezoneOffsetHours('America/New_York', jul), '-4.0');
  assert.equal(timezoneOffsetHours('Asia/Kathmandu', jan), '5.75');
  assert.equal(timezoneOffsetHours('Not/AZone', jan), '0.0');
});
