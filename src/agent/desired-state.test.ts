import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import type { DesiredState, HostSpec } from './desired-state.js';
import { applyDelta, diffStates } from './desired-state.js';
import { schemaFiles } from './desired-state-schema.js';
import { baseState, hostFor } from './testing/fixtures.js';
import { validateDelta, validateDesiredState } from './validate-desired-state.js';

const docs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs');

describe('docs/ schemas', () => {
  for (const [file, schema] of Object.entries(schemaFiles)) {
    it(`${file} matches desired-state-schema.ts`, () => {
      const text = JSON.stringify(schema, null, 2) + '\n';
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(join(docs, file), text);
      assert.deepEqual(
        JSON.parse(readFileSync(join(docs, file), 'utf8')),
        schema,
        `regenerate with UPDATE_GOLDEN=1`,
      );
    });
  }
});

function refusal(doc: unknown): { field: string; message: string } {
  const v = validateDesiredState(doc);
  assert.equal(v.ok, false, 'expected a refusal');
  return v as { field: string; message: string };
}

describe('validateDesiredState', () => {
  it('accepts the fixture', () => {
    assert.equal(validateDesiredState(baseState()).ok, true);
  });
  it('names the field that is wrong', () => {
    const s = baseState();
    assert.deepEqual(
      refusal({ ...s, hosts: [{ ...s.hosts[0]!, ipv4: '10.1.0.300' }] }).field,
      '/hosts/0/ipv4',
    );
    assert.deepEqual(refusal({ ...s, hosts: [{ ...s.hosts[0]!, mac: 'zz' }] }).field, '/hosts/0/mac');
    assert.deepEqual(
      refusal({ ...s, network: { ...s.network, gateway: undefined } }).field,
      '/network/gateway',
    );
    assert.deepEqual(refusal({ ...s, surprise: 1 }).field, '/surprise');
    assert.deepEqual(
      refusal({ ...s, hosts: [{ ...s.hosts[0]!, hostname: 'bad_name' }] }).field,
      '/hosts/0/hostname',
    );
    assert.deepEqual(refusal({ ...s, generation: -1 }).field, '/generation');
    assert.deepEqual(refusal({ ...s, passwords: { 'not-an-ip': 'x' } }).field, '/passwords/not-an-ip');
  });
  it('checks what a schema cannot', () => {
    const s = baseState();
    const h = s.hosts[0]!;
    let r = refusal({ ...s, hosts: [h, { ...hostFor(5), mac: h.mac.toUpperCase() }] });
    assert.equal(r.field, '/hosts/1/mac');
    r = refusal({ ...s, hosts: [h, { ...hostFor(5), ipv4: h.ipv4 }] });
    assert.equal(r.field, '/hosts/1/ipv4');
    assert.match(r.message, /also used by \/hosts\/0/);
    r = refusal({ ...s, hosts: [{ ...h, ipv4: '10.2.0.5' }] });
    assert.equal(r.field, '/hosts/0/ipv4');
    assert.match(r.message, /not inside 10.1.0.0\/16/);
    r = refusal({ ...s, hosts: [h, { ...hostFor(5), hostname: h.hostname }] });
    assert.equal(r.field, '/hosts/1/hostname');
    r = refusal({ ...s, hosts: [{ ...h, ipv4: s.network.gateway }] });
    assert.match(r.message, /router's own address/);
    r = refusal({ ...s, network: { ...s.network, useExternalDns: true, dnsServers: [] } });
    assert.equal(r.field, '/network/dnsServers');
    r = refusal({ ...s, network: { ...s.network, gateway: '10.9.0.1' } });
    assert.equal(r.field, '/network/gateway');
    r = refusal({ ...s, metadata: { '10.1.0.11': { userData: 'abcde', metaData: {} } } });
    assert.equal(r.field, '/metadata/10.1.0.11/userData');
  });
  it('a redundant router needs its own address besides the VIP', () => {
    const s = baseState({
      router: {
        name: 'r',
        guestIp: '10.1.0.1',
        redundant: { priority: 100, vrrpIntervalSeconds: 1, virtualRouterId: 1, authPass: 'x' },
      },
    });
    assert.equal(refusal(s).field, '/router/guestIp');
  });
});

describe('deltas', () => {
  it('validateDelta refuses a generation not after its base', () => {
    const v = validateDelta({ baseGeneration: 4, generation: 4 });
    assert.equal(v.ok, false);
    assert.equal((v as { field: string }).field, '/generation');
  });

  const sortHosts = (s: DesiredState) => ({
    ...s,
    hosts: [...s.hosts].sort((a, b) => (a.mac < b.mac ? -1 : 1)),
  });

  it('applyDelta(from, diffStates(from, to)) == to (property)', () => {
    const hostArb = fc
      .integer({ min: 1, max: 40 })
      .chain((i) =>
        fc
          .record({ name: fc.constantFrom('a', 'b'), def: fc.boolean() })
          .map(({ name, def }): HostSpec => ({ ...hostFor(i), hostname: `${name}${i}`, defaultNic: def })),
      );
    const hostsArb = fc.uniqueArray(hostArb, { selector: (h) => h.mac, maxLength: 15 });
    const recArb = fc.dictionary(
      fc.integer({ min: 11, max: 30 }).map((n) => `10.1.0.${n}`),
      fc.string({ minLength: 1, maxLength: 5 }),
      { maxKeys: 5 },
    );
    fc.assert(
      fc.property(hostsArb, hostsArb, recArb, recArb, fc.boolean(), (h1, h2, p1, p2, fw) => {
        const from = baseState({ generation: 3, hosts: h1, passwords: p1 });
        const to = baseState({ generation: 7, hosts: h2, passwords: p2, firewall: { enabled: fw } });
        const delta = diffStates(from, to);
        assert.equal(delta.baseGeneration, 3);
        const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;
        assert.deepEqual(plain(sortHosts(applyDelta(from, delta))), plain(sortHosts(to)));
        assert.equal(validateDelta(JSON.parse(JSON.stringify(delta))).ok, true);
      }),
      { numRuns: 200 },
    );
  });

  it('host upserts replace by MAC (case-insensitive), removals by MAC', () => {
    const s = baseState();
    const next = applyDelta(s, {
      baseGeneration: 1,
      generation: 2,
      hosts: {
        upsert: [{ ...s.hosts[0]!, mac: s.hosts[0]!.mac.toUpperCase(), ipv4: '10.1.0.77' }],
        remove: [s.hosts[1]!.mac],
      },
      metadata: { remove: ['10.1.0.12'] },
    });
    assert.equal(next.generation, 2);
    assert.deepEqual(
      next.hosts.map((h) => h.ipv4),
      ['10.1.0.77'],
    );
    assert.deepEqual(Object.keys(next.metadata), ['10.1.0.11']);
    assert.deepEqual(s.hosts.length, 2, 'the input is not modified');
  });
});
