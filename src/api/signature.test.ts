import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { canonicalString, javaUrlEncode, signParams, verifySignature } from './signature.js';

test('javaUrlEncode matches java.net.URLEncoder with + as %20', () => {
  assert.equal(javaUrlEncode("a b~!'()*._-"), 'a%20b%7E%21%27%28%29*._-');
  assert.equal(javaUrlEncode('é/='), '%C3%A9%2F%3D');
});

test('canonical string sorts names case-sensitively and lower-cases everything', () => {
  const s = canonicalString([
    ['response', 'json'],
    ['command', 'listAccounts'],
    ['apiKey', 'ABC'],
    ['signature', 'ignored'],
  ]);
  assert.equal(s, 'apikey=abc&command=listaccounts&response=json');
});

test('a signature made by python-cs (literal ~) and by Java (%7E) both verify', () => {
  const params = new Map([
    ['command', 'listAccounts'],
    ['name', 'a~b c'],
    ['apiKey', 'key'],
  ]);
  const secret = 'sEcReT';
  const java = signParams(params, secret);
  assert.ok(verifySignature(params, secret, java));
  const py = execFileSync('/usr/bin/python3', [
    '-c',
    `import sys, cs.client as c
p={'command':'listAccounts','name':'a~b c','apiKey':'key'}
c.CloudStack('http://x','key','sEcReT')._sign(p); print(p['signature'])`,
  ])
    .toString()
    .trim();
  assert.notEqual(py, java);
  assert.ok(verifySignature(params, secret, py));
  assert.ok(!verifySignature(params, 'other', py));
});

test('any parameter change breaks the signature (property)', () => {
  fc.assert(
    fc.property(fc.string(), fc.string({ minLength: 1 }), (v, extra) => {
      const p = new Map([
        ['command', 'listDomains'],
        ['name', v],
      ]);
      const sig = signParams(p, 's');
      assert.ok(verifySignature(p, 's', sig));
      const q = new Map(p);
      q.set('name', v + extra);
      return !verifySignature(q, 's', sig) || canonicalString(q) === canonicalString(p);
    }),
  );
});

test('the canonical string is the plain definition, for any names and values (property)', () => {
  // The definition as first written: filter, sort, encode, join, lower-case.
  const reference = (entries: [string, string][], tilde: boolean): string =>
    entries
      .filter(([k]) => k.toLowerCase() !== 'signature')
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([k, v]) => {
        const enc = encodeURIComponent(v).replace(
          /[!'()~]/g,
          (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
        );
        return `${k}=${tilde ? enc.replace(/%7E/g, '~') : enc}`;
      })
      .join('&')
      .toLowerCase();
  const text = fc.string({
    unit: fc.constantFrom('a', 'B', '~', '!', "'", '(', ')', '*', ' ', 'é', '%', '&'),
  });
  const name = fc.oneof(text, fc.constantFrom('signature', 'Signature', 'apiKey', 'command'));
  fc.assert(
    fc.property(fc.array(fc.tuple(name, fc.oneof(text, fc.string()))), fc.boolean(), (entries, tilde) => {
      assert.equal(canonicalString(entries, tilde), reference(entries, tilde));
    }),
  );
});
