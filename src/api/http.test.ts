/** The HTTP layer through Fastify's inject(): sessions and cookies, form POST, defaults, error headers. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer } from '../server/build-server.js';
import { buildTestServer } from '../server/testing/test-server.js';
import type { BuiltServer } from '../server/build-server.js';
import { signedQuery } from './client.js';

let dir: string;
let s: BuiltServer;
const keys = { url: '', apiKey: 'http-key', secretKey: 'http-secret' };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stacknet-http-'));
  s = await buildTestServer({
    dataDir: dir,
    dbUrl: `sqlite:${join(dir, 'db.sqlite')}`,
    adminPassword: 'pa ss+word~',
    keys,
  });
});

after(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

test('health, missing command, unauthenticated calls', async () => {
  assert.equal((await s.app.inject({ url: '/healthz' })).statusCode, 200);
  const none = await s.app.inject({ url: '/client/api' });
  assert.equal(none.statusCode, 432);
  assert.match(none.body, /^<\?xml .*<errorresponse .*<errorcode>432<\/errorcode>/);
  const anon = await s.app.inject({ url: '/client/api?command=listDomains&response=json' });
  assert.equal(anon.statusCode, 401);
  assert.equal(anon.headers['x-description'], 'unable to verify user credentials and/or request signature');
  assert.deepEqual(Object.keys(anon.json()), ['listdomainsresponse']);
});

test('login by form POST, session by cookie and parameter together, logout', async () => {
  const login = await s.app.inject({
    method: 'POST',
    url: '/client/api',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'command=login&username=admin&password=pa+ss%2Bword%7E&domain=%2F&response=json',
  });
  assert.equal(login.statusCode, 200, login.body);
  const key = login.json().loginresponse.sessionkey as string;
  const cookies = login.cookies.map((c) => c.name).sort();
  assert.deepEqual(cookies, ['JSESSIONID', 'sessionkey']);
  const both = await s.app.inject({
    url: `/client/api?command=listDomains&response=json&sessionkey=${encodeURIComponent(key)}`,
    cookies: { sessionkey: key },
  });
  assert.equal(both.statusCode, 200, both.body);
  // Either one alone is refused (CloudStack's CSRF defence; test/api/sessions.test.ts covers the rest).
  const byCookie = await s.app.inject({
    url: '/client/api?command=listDomains&response=json',
    cookies: { sessionkey: key },
  });
  assert.equal(byCookie.statusCode, 401, byCookie.body);
  const mismatch = await s.app.inject({
    url: '/client/api?command=listDomains&response=json&sessionkey=other',
    cookies: { sessionkey: key },
  });
  assert.equal(mismatch.statusCode, 401);
  const out = await s.app.inject({
    url: `/client/api?command=logout&response=json&sessionkey=${encodeURIComponent(key)}`,
    cookies: { sessionkey: key },
  });
  assert.deepEqual(out.json(), { logoutresponse: { description: 'success' } });
  const after = await s.app.inject({
    url: `/client/api?command=listDomains&response=json&sessionkey=${encodeURIComponent(key)}`,
    cookies: { sessionkey: key },
  });
  assert.equal(after.statusCode, 401);
  const wrong = await s.app.inject({
    url: '/client/api?command=login&username=admin&password=nope&response=json',
  });
  assert.equal(wrong.statusCode, 531);
});

test('signed form POST, control characters refused, async answer is a string jobid', async () => {
  const post = await s.app.inject({
    method: 'POST',
    url: '/client/api',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: signedQuery(keys, 'createDomain', { name: 'posted' }),
  });
  assert.equal(post.statusCode, 200, post.body);
  const id = post.json().createdomainresponse.domain.id as string;
  const ctl = await s.app.inject({
    url: `/client/api?${signedQuery(keys, 'createDomain', { name: 'a\u0001b' })}`,
  });
  assert.equal(ctl.statusCode, 431);
  assert.match(ctl.json().createdomainresponse.errortext, /name/);
  const del = await s.app.inject({ url: `/client/api?${signedQuery(keys, 'deleteDomain', { id })}` });
  assert.equal(typeof del.json().deletedomainresponse.jobid, 'string');
});

test('an answer is sent as UTF-8: its Content-Length counts bytes, not characters, in JSON and in XML', async () => {
  const name = 'Zürich-東京-\u{1f310}';
  const made = await s.app.inject({ url: `/client/api?${signedQuery(keys, 'createDomain', { name })}` });
  assert.equal(made.statusCode, 200, made.body);
  for (const response of ['json', 'xml']) {
    const r = await s.app.inject({
      url: `/client/api?${signedQuery(keys, 'listDomains', { name, response })}`,
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(
      r.headers['content-type'],
      response === 'json' ? 'application/json; charset=UTF-8' : 'text/xml; charset=UTF-8',
    );
    assert.equal(Number(r.headers['content-length']), r.rawPayload.length);
    assert.ok(r.rawPayload.length > r.body.length);
    assert.ok(r.body.includes(name), r.body);
  }
  const id = made.json().createdomainresponse.domain.id as string;
  await s.app.inject({ url: `/client/api?${signedQuery(keys, 'deleteDomain', { id })}` });
});

/** One request on its own connection, the answer's bytes as they came (HTTP/1.1, keep-alive asked as clients do). */
async function rawExchange(port: number, request: string): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(request));
    let got = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)\r\n/i.exec(got.subarray(0, end).toString('latin1'));
      if (end >= 0 && length && got.length >= end + 4 + Number(length[1])) {
        sock.destroy();
        resolve(got.toString('latin1'));
      }
    });
    sock.on('error', reject);
  });
}

test('a GET of /client/api (the fast path) answers the same bytes as the route does the same request by POST', async () => {
  await s.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = s.app.server.address() as { port: number };
  const get = (path: string, query: string) =>
    rawExchange(port, `GET ${path}?${query} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`);
  const post = (path: string, query: string) =>
    rawExchange(
      port,
      `POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n` +
        `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${Buffer.byteLength(query)}\r\n\r\n${query}`,
    );
  // The Date header is the second's; the session key and JSESSIONID of a login are new each time.
  const stable = (raw: string) =>
    raw
      .replace(/\r\nDate: [^\r]*/, '\r\nDate: -')
      .replace(/(sessionkey|JSESSIONID)=[^;]+/g, '$1=-')
      .replace(/("sessionkey":")[^"]+/, '$1-');
  const queries = [
    signedQuery(keys, 'listZones', {}),
    signedQuery(keys, 'listDomains', { name: 'Zürich-東京', response: 'xml' }),
    signedQuery(keys, 'listDomains', { id: 'nope' }),
    'command=listDomains&response=json',
    'response=json',
    '',
    'command=login&username=admin&password=pa+ss%2Bword%7E&domain=%2F&response=json',
    'command=login&username=admin&password=wrong&response=xml',
  ];
  for (const path of ['/client/api', '/client/api/'])
    for (const q of queries) {
      const viaGet = stable(await get(path, q));
      assert.equal(viaGet, stable(await post(path, q)), `${path}?${q}`);
      assert.match(viaGet, /^HTTP\/1\.1 \d{3} /);
    }
});

test('signed GETs arriving together on SQLite: one server sees a user locked, re-enabled and re-keyed through another at the next GET', async () => {
  // Two servers on one SQLite file (two connections): b's changes reach a only through PRAGMA data_version, which a
  // reads once per turn of its event loop for the GETs that arrived in it (http.ts, caller-check.ts).
  const file = `sqlite:${join(dir, 'two.sqlite')}`;
  const k = { url: '', apiKey: 'two-admin-key', secretKey: 'two-admin-secret' };
  const a = await buildTestServer({ dataDir: join(dir, 'two'), dbUrl: file, keys: k });
  const b = await buildTestServer({ dataDir: join(dir, 'two'), dbUrl: file, keys: k });
  try {
    await a.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = a.app.server.address() as { port: number };
    const viaB = async (command: string, params: Record<string, string>) => {
      const r = await b.app.inject({
        url: `/client/api?${signedQuery(k, command, { response: 'json', ...params })}`,
      });
      assert.equal(r.statusCode, 200, r.body);
      return r.json() as Record<string, Record<string, unknown>>;
    };
    const acct = await viaB('createAccount', {
      accounttype: '0',
      username: 'twouser',
      password: 'two-user-pw',
      email: 'two@example.com',
      firstname: 'two',
      lastname: 'user',
    });
    const userId = (acct.createaccountresponse!.account as { user: { id: string }[] }).user[0]!.id;
    const register = async () => {
      const r = (await viaB('registerUserKeys', { id: userId })).registeruserkeysresponse!.userkeys as {
        apikey: string;
        secretkey: string;
      };
      return { url: '', apiKey: r.apikey, secretKey: r.secretkey };
    };
    // Eight GETs on eight connections at once, each to a over its socket (the listener's path, not inject()).
    const eight = async (user: typeof k) =>
      Promise.all(
        Array.from({ length: 8 }, () =>
          rawExchange(
            port,
            `GET /client/api?${signedQuery(user, 'listAccounts', {})} HTTP/1.1\r\nHost: x\r\n\r\n`,
          ),
        ),
      ).then((answers) => answers.map((r) => Number(/^HTTP\/1\.1 (\d{3})/.exec(r)![1])));
    const first = await register();
    assert.deepEqual(await eight(first), Array(8).fill(200));
    await viaB('lockUser', { id: userId });
    assert.deepEqual(await eight(first), Array(8).fill(401), 'locked through b');
    await viaB('enableUser', { id: userId });
    assert.deepEqual(await eight(first), Array(8).fill(200), 're-enabled through b');
    const second = await register();
    assert.deepEqual(await eight(first), Array(8).fill(401), 'the key b replaced');
    assert.deepEqual(await eight(second), Array(8).fill(200), 'the new key');
  } finally {
    await a.close();
    await b.close();
  }
});

test('integration.api.port: off by default; when set, requests need no signature and act as the admin', async () => {
  assert.equal(s.integration, undefined);
  const set = await s.app.inject({
    url: `/client/api?${signedQuery(keys, 'updateConfiguration', { name: 'integration.api.port', value: '18096' })}`,
  });
  assert.equal(set.statusCode, 200, set.body);
  await s.close();
  s = await buildServer({ ...s.config });
  assert.equal(s.integration?.port, 18096);
  const r = await s.integration!.app.inject({ url: '/client/api?command=listAccounts&response=json' });
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(r.json().listaccountsresponse.account[0].name, 'admin');
  const main = await s.app.inject({ url: '/client/api?command=listAccounts&response=json' });
  assert.equal(main.statusCode, 401);
});

test('api.throttling: read at start; a user over api.throttling.max per interval gets 429, root admins do not', async () => {
  const q = (k: typeof keys, command: string, params: Record<string, string> = {}) =>
    s.app.inject({ url: `/client/api?${signedQuery(k, command, params)}` });
  const acct = await q(keys, 'createAccount', {
    username: 'throttled',
    password: 'pw',
    email: 't@example.org',
    firstname: 'T',
    lastname: 'T',
  });
  assert.equal(acct.statusCode, 200, acct.body);
  const userId = acct.json().createaccountresponse.account.user[0].id as string;
  const reg = await q(keys, 'registerUserKeys', { id: userId });
  const uk = reg.json().registeruserkeysresponse.userkeys as { apikey: string; secretkey: string };
  const user = { url: '', apiKey: uk.apikey, secretKey: uk.secretkey };
  for (const [name, value] of [
    ['api.throttling.enabled', 'true'],
    ['api.throttling.max', '3'],
    ['api.throttling.interval', '60'],
  ]) {
    assert.equal((await q(keys, 'updateConfiguration', { name: name!, value: value! })).statusCode, 200);
  }
  assert.equal((await q(user, 'listAccounts')).statusCode, 200, 'settings apply only after a restart');
  await s.close();
  s = await buildServer({ ...s.config });
  for (let i = 0; i < 3; i++) assert.equal((await q(user, 'listAccounts')).statusCode, 200);
  const over = await q(user, 'listAccounts', { response: 'json' });
  assert.equal(over.statusCode, 429);
  assert.equal(over.json().listaccountsresponse.cserrorcode, 4545);
  for (let i = 0; i < 5; i++) assert.equal((await q(keys, 'listAccounts')).statusCode, 200);
});

test('a signed request reads its user every time: regenerated keys, a locked and a deleted user take effect at once', async () => {
  const call = (
    k: { apiKey: string; secretKey: string },
    command: string,
    params: Record<string, string> = {},
  ) =>
    s.app.inject({
      url: `/client/api?${signedQuery({ url: '', ...k }, command, { response: 'json', ...params })}`,
    });
  const acct = await call(keys, 'createAccount', {
    accounttype: '0',
    username: 'keyuser',
    password: 'key-user-pw',
    email: 'keyuser@example.com',
    firstname: 'key',
    lastname: 'user',
  });
  assert.equal(acct.statusCode, 200, acct.body);
  const userId = acct.json().createaccountresponse.account.user[0].id as string;
  const register = async () => {
    const r = await call(keys, 'registerUserKeys', { id: userId });
    assert.equal(r.statusCode, 200, r.body);
    const k = r.json().registeruserkeysresponse.userkeys;
    return { apiKey: k.apikey as string, secretKey: k.secretkey as string };
  };
  const first = await register();
  // Twice: the second request finds the key's secret already opened (accounts/repository.ts openSecretKey).
  for (let i = 0; i < 2; i++) assert.equal((await call(first, 'listAccounts')).statusCode, 200);
  const second = await register();
  assert.equal((await call(first, 'listAccounts')).statusCode, 401, 'the replaced key');
  assert.equal((await call(second, 'listAccounts')).statusCode, 200);
  // The old secret with the new key (a client that kept it) is refused too.
  assert.equal((await call({ ...second, secretKey: first.secretKey }, 'listAccounts')).statusCode, 401);
  const lock = await call(keys, 'lockUser', { id: userId });
  assert.equal(lock.statusCode, 200, lock.body);
  assert.equal((await call(second, 'listAccounts')).statusCode, 401, 'a locked user');
  const del = await call(keys, 'deleteUser', { id: userId });
  assert.equal(del.statusCode, 200, del.body);
  assert.equal((await call(second, 'listAccounts')).statusCode, 401, 'a deleted user');
});
