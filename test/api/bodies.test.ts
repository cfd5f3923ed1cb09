/**
 * Every body is what its content type says, whatever the input: XML 1.0 (no control characters, U+FFFE,
 * U+FFFF or lone surrogates, even when echoed from a parameter or a command name), valid JSON; and an
 * unexpected driver error reaches the caller as a 530 in words, never as SQL.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestServer } from '../../src/server/testing/test-server.js';
import type { BuiltServer } from '../../src/server/build-server.js';
import { signedQuery } from '../../src/api/client.js';
import { serialize } from '../../src/api/envelope.js';
import { internalError } from '../../src/errors/catalogue.js';
import { assertWellFormedXml } from './well-formed.js';

let dir: string;
let s: BuiltServer;
const keys = { url: '', apiKey: 'bodies-key', secretKey: 'bodies-secret' };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stacknet-bodies-'));
  s = await buildTestServer({
    dataDir: dir,
    dbUrl: `sqlite:${join(dir, 'db.sqlite')}`,
    adminPassword: 'bodies-password',
    keys,
  });
});

after(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

const nasty = [
  'a\u0001b\u0002c\u001fd\u007f',
  '\u000b\u000c\u0008\u0000',
  'x\uffffy\ufffez',
  '<&>"\']]>',
  '\ud83d\ude00'.repeat(60),
  `${'é'.repeat(99)}\ud83d\ude00`,
];

test('serialize: any string value gives well-formed XML and valid JSON', () => {
  for (const v of [...nasty, '\ud800', 'a\udc00b', '\ud83d']) {
    const body = { errortext: v, list: [{ name: v }], [`key ${v}`]: v, '1x': v };
    assertWellFormedXml(serialize('listfooresponse', body, 'xml').body);
    assert.doesNotThrow(() => JSON.parse(serialize('listfooresponse', body, 'json').body));
  }
});

test('an unknown command, a bad value or a long value echoed in an XML error stays XML', async () => {
  for (const v of nasty) {
    const unknown = await s.app.inject({ url: `/client/api?${signedQuery(keys, v, { response: 'xml' })}` });
    assert.equal(unknown.statusCode, 432);
    assertWellFormedXml(unknown.body);
    for (const [command, param] of [
      ['listZones', 'id'],
      ['listZones', 'name'],
      ['createDomain', 'name'],
    ] as const) {
      for (const value of [v, v.repeat(300)]) {
        const r = await s.app.inject({
          method: 'POST',
          url: '/client/api',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: signedQuery(keys, command, { response: 'xml', [param]: value }),
        });
        assertWellFormedXml(r.body);
        // An error quotes a long value shortened; a success (createDomain of a long name) answers the object.
        if (r.statusCode !== 200)
          assert.ok(
            r.body.length < 2000,
            `a ${value.length}-character value is echoed in full: ${r.body.length}`,
          );
      }
    }
  }
});

test('a body over the limit or a malformed cookie is a CloudStack error, not a framework one', async () => {
  const big = await s.app.inject({
    method: 'POST',
    url: '/client/api?response=json',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: `command=listZones&name=${'a'.repeat(9 * 1024 * 1024)}`,
  });
  assert.equal(big.statusCode, 431);
  const e = big.json().errorresponse;
  assert.equal(e.errorcode, 431);
  assert.equal(e.cserrorcode, 4350);
  assert.match(e.errortext, /larger than 8 MB/);
  const cookie = await s.app.inject({
    url: '/client/api?command=listZones&response=json',
    headers: { cookie: 'sessionkey=%E0%A4%A' },
  });
  assert.equal(cookie.statusCode, 401);
});

test('an unexpected driver error is a 530 in words; the driver text and SQL only in the log', () => {
  const driver = Object.assign(new Error('near "offset": syntax error in select * from zones offset ?'), {
    code: 'SQLITE_ERROR',
  });
  const e = internalError('running listZones', driver);
  assert.equal(e.httpCode, 530);
  assert.equal(e.csErrorCode, 4250);
  assert.equal(e.message, 'Internal error while running listZones (the server log has the details)');
  assert.match(e.stack ?? '', /Caused by: Error: near "offset": syntax error/);
  const lost = internalError(
    'running listZones',
    Object.assign(new Error('terminating connection'), { code: '57P01' }),
  );
  assert.match(lost.message, /database connection failed; retry/);
  assert.doesNotMatch(lost.message, /terminating/);
});
