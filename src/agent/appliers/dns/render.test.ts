import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { golden, goldenCases, goldenCtx } from '../../testing/golden.js';
import { dnsRenderer } from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

describe('dns render: golden files', () => {
  for (const [name, make] of Object.entries(goldenCases)) {
    it(name, () => {
      const r = dnsRenderer.render(make(), goldenCtx);
      golden(testdata, `${name}.dns.conf`, r.conf ?? '(no DNS: useExternalDns)\n');
      golden(testdata, `${name}.names`, r.names);
    });
  }
  it('answers no DNS with useExternalDns, and serves no DHCP', () => {
    assert.equal(dnsRenderer.render(goldenCases['external-dns']!(), goldenCtx).conf, null);
    const conf = dnsRenderer.render(goldenCases.basic!(), goldenCtx).conf!;
    assert.doesNotMatch(conf, /dhcp-/);
  });
});
