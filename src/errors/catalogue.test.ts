import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { errorKinds, invalidParameter, CloudStackError } from './catalogue.js';

test('docs/errors.md lists every error of the catalogue with its codes', () => {
  // Prettier pads the table columns: compare with runs of spaces collapsed.
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8').replace(/ {2,}/g, ' ');
  for (const [name, k] of Object.entries(errorKinds)) {
    const row = `| ${name} | ${k.httpCode} | ${k.csErrorCode} | ${k.summary} |`;
    assert.ok(doc.includes(row), `docs/errors.md lacks the row: ${row}`);
  }
});

test('invalidParameter names the parameter and the value', () => {
  const e = invalidParameter('startip', '10.0.0.300', 'not an IPv4 address');
  assert.ok(e instanceof CloudStackError);
  assert.equal(e.httpCode, 431);
  assert.equal(e.csErrorCode, 4350);
  assert.match(e.message, /startip/);
  assert.match(e.message, /10\.0\.0\.300/);
});
