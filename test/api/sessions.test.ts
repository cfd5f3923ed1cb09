/**
 * Sessions and logins as strict as CloudStack's (issue 12 items 6 and 8), on SQLite, PostgreSQL and MariaDB,
 * through the real HTTP app (inject): a session needs the sessionkey cookie and parameter together; repeated
 * wrong passwords lock the user (known or not) and the source address for a while; signatureversion=3 `expires`
 * may not be far ahead; a malformed login domainId is a 431 naming it, never a database error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestServer } from '../../src/server/testing/test-server.js';
import type { BuiltServer } from '../../src/server/build-server.js';
import { signedQuery } from '../../src/api/client.js';
import { formatExpires } from '../../src/api/signature.js';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';

const admin = { url: '', apiKey: 'sessions-key', secretKey: 'sessions-secret' };

for (const kind of testDbKinds()) {
  describe(`sessions and logins on ${kind}`, () => {
    let tdb: TestDatabase;
    let dir: string;
    let s: BuiltServer;
    const logged: string[] = [];

    const api = (url: string, o: { cookies?: Record<string, string>; from?: string } = {}) =>
      s.app.inject({ url: `/client/api?${url}`, cookies: o.cookies, remoteAddress: o.from ?? '192.0.2.1' });
    const signed = (command: string, params: Record<string, string> = {}) =>
      api(signedQuery(admin, command, params));
    const login = (user: string, password: string, from?: string, domain = '/') =>
      api(
        `command=login&response=json&username=${encodeURIComponent(user)}&password=${encodeURIComponent(password)}&domain=${encodeURIComponent(domain)}`,
        { from },
      );
    const setSetting = async (name: string, value: string) => {
      const r = await signed('updateConfiguration', { name, value });
      assert.equal(r.statusCode, 200, r.body);
    };
    const addUser = async (name: string) => {
      const r = await signed('createAccount', {
        username: name,
        password: `${name}-pw`,
        firstname: name,
        lastname: 'Test',
        email: `${name}@example.com`,
        accounttype: '0',
      });
      assert.equal(r.statusCode, 200, r.body);
    };

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-sessions-'));
      s = await buildTestServer({
        dataDir: dir,
        dbUrl: tdb.url,
        adminPassword: 'admin-pw',
        log: (m) => logged.push(m),
        keys: admin,
      });
    });

    after(async () => {
      await s?.close();
      rmSync(dir, { recursive: true, force: true });
      await tdb?.drop();
    });

    test('a session needs the sessionkey cookie and the sessionkey parameter, equal', async () => {
      await addUser('carol');
      const r = await login('carol', 'carol-pw', '192.0.2.10');
      assert.equal(r.statusCode, 200, r.body);
      const key = r.json().loginresponse.sessionkey as string;
      const q = 'command=listAccounts&response=json';
      const withKey = `${q}&sessionkey=${encodeURIComponent(key)}`;
      assert.equal((await api(withKey, { cookies: { sessionkey: key } })).statusCode, 200);
      const cookieOnly = await api(q, { cookies: { sessionkey: key } });
      assert.equal(cookieOnly.statusCode, 401, 'the cookie alone is what a cross-site request carries');
      assert.equal(cookieOnly.json().listaccountsresponse.errorcode, 401);
      assert.equal((await api(withKey)).statusCode, 401, 'the parameter without the cookie');
      assert.equal((await api(`${q}&sessionkey=x`, { cookies: { sessionkey: key } })).statusCode, 401);
      assert.equal((await api(withKey, { cookies: { sessionkey: 'x' } })).statusCode, 401);
      // Signed requests need neither.
      assert.equal((await signed('listAccounts')).statusCode, 200);
      // A cross-site logout (cookie only) does not end the session; a real one does.
      await api('command=logout&response=json', { cookies: { sessionkey: key } });
      assert.equal((await api(withKey, { cookies: { sessionkey: key } })).statusCode, 200);
      await api(`command=logout&response=json&sessionkey=${encodeURIComponent(key)}`, {
        cookies: { sessionkey: key },
      });
      assert.equal((await api(withKey, { cookies: { sessionkey: key } })).statusCode, 401);
    });

    test('stacknet.api.session.key.check: CookieOrParameter lets the UIs that send the cookie only in, ParameterOnly does not', async () => {
      await addUser('frank');
      const r = await login('frank', 'frank-pw', '192.0.2.11');
      const key = r.json().loginresponse.sessionkey as string;
      const q = 'command=listAccounts&response=json';
      const withKey = `${q}&sessionkey=${encodeURIComponent(key)}`;
      try {
        await setSetting('stacknet.api.session.key.check', 'CookieOrParameter');
        assert.equal((await api(q, { cookies: { sessionkey: key } })).statusCode, 200, 'the cookie alone');
        assert.equal((await api(withKey)).statusCode, 200, 'the parameter alone');
        assert.equal((await api(withKey, { cookies: { sessionkey: 'x' } })).statusCode, 401, 'both, unequal');
        // Primate (the 4.15 UI) spells parameters in camel case: pageSize must not be lost.
        const paged = await api(`${q}&page=1&pageSize=1&listAll=true`, { cookies: { sessionkey: key } });
        assert.equal(paged.statusCode, 200, paged.body);
        await setSetting('stacknet.api.session.key.check', 'ParameterOnly');
        assert.equal((await api(q, { cookies: { sessionkey: key } })).statusCode, 401, 'the cookie alone');
        assert.equal((await api(withKey)).statusCode, 200, 'the parameter alone');
        const bad = await signed('updateConfiguration', {
          name: 'stacknet.api.session.key.check',
          value: 'Cookie',
        });
        assert.equal(bad.statusCode, 431, bad.body);
      } finally {
        await setSetting('stacknet.api.session.key.check', 'CookieAndParameter');
      }
      assert.equal((await api(q, { cookies: { sessionkey: key } })).statusCode, 401, 'back to both');
    });

    test('wrong passwords lock the user after incorrect.login.attempts.allowed, for a while', async () => {
      await addUser('dave');
      // Each attempt from its own address: this is the per-user limit.
      for (let i = 1; i <= 5; i++) {
        const r = await login('dave', 'wrong', `198.51.100.${i}`);
        assert.equal(r.statusCode, 531, r.body);
        assert.match(r.json().loginresponse.errortext, /Failed to authenticate user dave/);
      }
      const locked = await login('dave', 'dave-pw', '198.51.100.99');
      assert.equal(locked.statusCode, 531, 'the right password is refused while the user is locked');
      const e = locked.json().loginresponse;
      assert.equal(e.cserrorcode, 4365);
      assert.match(
        e.errortext,
        /User dave in domain ROOT is locked .*incorrect\.login\.attempts\.allowed.*try again after/,
      );
      assert.ok(
        logged.some((l) => /^login: User dave in domain ROOT is locked/.test(l)),
        'the lock is logged for the operator',
      );
      // A name that matches nobody is locked the same way, with the same words: no user enumeration.
      for (let i = 1; i <= 5; i++)
        assert.equal((await login('nobody', 'x', `198.51.100.${i}`)).statusCode, 531);
      const ghost = await login('nobody', 'x', '198.51.100.98');
      assert.match(ghost.json().loginresponse.errortext, /User nobody in domain ROOT is locked/);
      // Other users are not affected.
      assert.equal((await login('carol', 'carol-pw', '198.51.100.97')).statusCode, 200);
      // The lock ends (its end moved to now rather than waiting 300 s) and the right password then works.
      await s.store.db
        .updateTable('login_failures')
        .set({ locked_until: Date.now() - 1 })
        .execute();
      assert.equal((await login('dave', 'dave-pw', '198.51.100.96')).statusCode, 200);
      for (let i = 1; i <= 4; i++)
        assert.equal((await login('dave', 'wrong', `198.51.100.${i}`)).statusCode, 531);
      assert.equal(
        (await login('dave', 'dave-pw', '198.51.100.95')).statusCode,
        200,
        'four failures do not lock',
      );
    });

    test('concurrent guesses cannot get past the limit', async () => {
      await addUser('erin');
      const rs = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          login('erin', i === 11 ? 'erin-pw' : 'wrong', `203.0.113.${i + 1}`),
        ),
      );
      const wrongAnswers = rs.filter((r) => /Failed to authenticate/.test(r.body)).length;
      assert.ok(wrongAnswers <= 5, `${wrongAnswers} wrong passwords were checked`);
      assert.equal((await login('erin', 'erin-pw', '203.0.113.99')).statusCode, 531, 'locked');
    });

    test('one source address is locked after incorrect.login.attempts.allowed.per.address', async () => {
      await setSetting('incorrect.login.attempts.allowed.per.address', '8');
      for (let i = 0; i < 8; i++) assert.equal((await login(`spray${i}`, 'x', '192.0.2.66')).statusCode, 531);
      const r = await login('carol', 'carol-pw', '192.0.2.66');
      assert.equal(r.statusCode, 531);
      assert.match(r.json().loginresponse.errortext, /Too many incorrect login attempts from this address/);
      assert.equal(
        (await login('carol', 'carol-pw', '192.0.2.67')).statusCode,
        200,
        'other addresses still log in',
      );
    });

    test('signatureversion=3 expires: at most 15 minutes ahead, not past, a date', async () => {
      const at = (ms: number) => signed('listDomains', { expires: formatExpires(Date.now() + ms) });
      assert.equal((await at(14 * 60_000)).statusCode, 200);
      for (const [r, why] of [
        [await at(2 * 3600_000), /at most 15 minutes ahead/],
        [await at(5 * 365 * 86400_000), /at most 15 minutes ahead/],
        [await at(-60_000), /expired/],
        [await signed('listDomains', { expires: 'tomorrow' }), /not a date/],
      ] as const) {
        assert.equal(r.statusCode, 401, r.body);
        assert.match(r.json().listdomainsresponse.errortext, why);
      }
    });

    test('login with a malformed domainId is a 431 naming it, with nothing logged', async () => {
      const before = logged.length;
      for (const id of ['abc', '-1', '1e3', '99999999999999999999', "1' or '1'='1"]) {
        const r = await api(
          `command=login&response=json&username=admin&password=x&domainId=${encodeURIComponent(id)}`,
        );
        assert.equal(r.statusCode, 431, `${id}: ${r.body}`);
        const e = r.json().loginresponse;
        assert.equal(e.cserrorcode, 4350);
        assert.match(e.errortext, /domainId/);
        assert.doesNotMatch(e.errortext, /bigint|syntax|select/i);
      }
      assert.deepEqual(logged.slice(before), []);
      // A well-formed id of no domain is an ordinary failed login; the real one logs in.
      assert.equal(
        (
          await api('command=login&response=json&username=admin&password=admin-pw&domainId=424242', {
            from: '192.0.2.200',
          })
        ).statusCode,
        531,
      );
      const root = await signed('listDomains', { name: 'ROOT' });
      const rootId = root.json().listdomainsresponse.domain[0].id as string;
      const ok = await api(
        `command=login&response=json&username=admin&password=admin-pw&domainId=${rootId}`,
        { from: '192.0.2.201' },
      );
      assert.equal(ok.statusCode, 200, ok.body);
    });
  });
}
