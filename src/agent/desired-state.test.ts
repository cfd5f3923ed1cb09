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
import {
  describeQuarantine,
  heldAfterDelta,
  reported,
  validateDelta,
  validateDesiredState,
} from './validate-desired-state.js';

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

/** The state applied and what was set aside, as `[key, field]` pairs. */
function sieved(doc: unknown, opts?: Parameters<typeof validateDesiredState>[1]) {
  const v = validateDesiredState(doc, opts);
  assert.ok(v.ok, JSON.stringify(v));
  return { value: v.value, held: v.quarantined, q: v.quarantined.map((e) => [e.section, e.key, e.field]) };
}

describe('validateDesiredState', () => {
  it('accepts the fixture', () => {
    const v = validateDesiredState(baseState());
    assert.ok(v.ok);
    assert.deepEqual(v.quarantined, []);
  });
  it('refuses a document that is wrong as a whole, naming the field', () => {
    const s = baseState();
    assert.deepEqual(
      refusal({ ...s, network: { ...s.network, gateway: undefined } }).field,
      '/network/gateway',
    );
    assert.deepEqual(refusal({ ...s, surprise: 1 }).field, '/surprise');
    assert.match(refusal({ ...s, router: { ...s.router, name: 'bad name' } }).message, /"bad name"/);
    assert.deepEqual(refusal({ ...s, generation: -1 }).field, '/generation');
    assert.deepEqual(refusal({ ...s, hosts: {} }).field, '/hosts');
    assert.deepEqual(
      refusal({ ...s, network: { ...s.network, ipv6Cidr: 'fd00::1::2/64' } }).field,
      '/network/ipv6Cidr',
    );
  });
  it('network.dnsmasqOptions is not part of the document: raw dnsmasq lines are refused', () => {
    const s = baseState();
    const r = refusal({ ...s, network: { ...s.network, dnsmasqOptions: ['dhcp-script=/bin/sh'] } });
    assert.equal(r.field, '/network/dnsmasqOptions');
    assert.match(r.message, /not a known field/);
  });
  it('checks what a schema cannot, for the document', () => {
    const s = baseState();
    let r = refusal({ ...s, network: { ...s.network, useExternalDns: true, dnsServers: [] } });
    assert.equal(r.field, '/network/dnsServers');
    r = refusal({ ...s, network: { ...s.network, gateway: '10.9.0.1' } });
    assert.equal(r.field, '/network/gateway');
  });
  it('quarantines a bad entry, naming it and its field, and keeps every other one', () => {
    const s = baseState();
    const h = s.hosts[0]!;
    const cases: [unknown, string, string][] = [
      [{ ...hostFor(5), ipv4: '10.1.0.300' }, hostFor(5).mac, 'ipv4'],
      [{ ...hostFor(5), mac: 'zz' }, 'zz', 'mac'],
      [{ ...hostFor(5), mac: 'not-a-mac' }, 'not-a-mac', 'mac'],
      [{ ...hostFor(5), mac: '02:00:00:00:00:05\n' }, '02:00:00:00:00:05\n', 'mac'],
      [{ ...hostFor(5), mac: 'ff:ff:ff:ff:ff:ff' }, 'ff:ff:ff:ff:ff:ff', 'mac'],
      [{ ...hostFor(5), mac: '01:00:5e:00:00:fb' }, '01:00:5e:00:00:fb', 'mac'],
      [{ ...hostFor(5), mac: '00:00:00:00:00:00' }, '00:00:00:00:00:00', 'mac'],
      [{ ...hostFor(5), hostname: 'bad_name' }, hostFor(5).mac, 'hostname'],
      [{ ...hostFor(5), hostname: 'x\nserver=1.2.3.4' }, hostFor(5).mac, 'hostname'],
      [{ ...hostFor(5), extra: 1 }, hostFor(5).mac, 'extra'],
      [{ ...hostFor(5), ipv6: 'fd00::5' }, hostFor(5).mac, 'ipv6'],
      [{ ...hostFor(5), mac: h.mac.toUpperCase() }, h.mac, 'mac'],
      [{ ...hostFor(5), ipv4: h.ipv4 }, hostFor(5).mac, 'ipv4'],
      [{ ...hostFor(5), ipv4: '10.2.0.5' }, hostFor(5).mac, 'ipv4'],
      [{ ...hostFor(5), hostname: h.hostname }, hostFor(5).mac, 'hostname'],
      [{ ...hostFor(5), ipv4: s.network.gateway }, hostFor(5).mac, 'ipv4'],
      [{ ...hostFor(5), hostname: 'data-server' }, hostFor(5).mac, 'hostname'],
      [7, '', ''],
    ];
    for (const [bad, key, field] of cases) {
      const r = sieved({ ...s, hosts: [...s.hosts, bad, hostFor(6)] });
      assert.deepEqual(r.q, [['hosts', key, field]], JSON.stringify(bad));
      assert.doesNotMatch(r.held[0]!.message, /undefined/);
      assert.deepEqual(
        r.value.hosts.map((x) => x.hostname),
        ['vm1', 'vm2', 'vm6'],
        JSON.stringify(bad),
      );
    }
    let r = sieved({ ...s, metadata: { ...s.metadata, '10.1.0.16': { userData: 'abcde', metaData: {} } } });
    assert.deepEqual(r.q, [['metadata', '10.1.0.16', 'userData']]);
    assert.deepEqual(Object.keys(r.value.metadata).sort(), ['10.1.0.11', '10.1.0.12']);
    r = sieved({ ...s, metadata: { ...s.metadata, '10.1.0.16': { metaData: { 'bad key': 'x' } } } });
    assert.deepEqual(r.q, [['metadata', '10.1.0.16', 'metaData/bad key']]);
    r = sieved({ ...s, passwords: { ...s.passwords, 'not-an-ip': 'x', '10.1.0.12': '' } });
    assert.deepEqual(r.q, [
      ['passwords', 'not-an-ip', ''],
      ['passwords', '10.1.0.12', ''],
    ]);
    assert.deepEqual(r.value.passwords, s.passwords);
    // What was sent is held for a later re-check, never reported as such.
    assert.ok(!/Secr3t|abcde/.test(describeQuarantine(reported(r.held))));
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

describe('quarantine across deltas', () => {
  it('held entries stay out until fixed or removed; one freed by a later change gets in', () => {
    const s = baseState();
    const clash = { ...hostFor(7), ipv4: s.hosts[1]!.ipv4 };
    const notMac = { ...hostFor(8), mac: 'not-a-mac' };
    const first = sieved({ ...s, hosts: [...s.hosts, clash, notMac] });
    assert.equal(first.held.length, 2);
    // A delta adding vm9: it applies, the two stay held.
    const d1 = validateDelta({ baseGeneration: 1, generation: 2, hosts: { upsert: [hostFor(9)] } });
    assert.ok(d1.ok);
    const second = sieved(applyDelta(first.value, d1.value), {
      schema: false,
      retry: heldAfterDelta(first.held, d1.value, d1.quarantined),
    });
    assert.deepEqual(
      second.value.hosts.map((h) => h.hostname),
      ['vm1', 'vm2', 'vm9'],
    );
    assert.deepEqual(second.q, [
      ['hosts', clash.mac, 'ipv4'],
      ['hosts', 'not-a-mac', 'mac'],
    ]);
    // vm2 goes: the clashing host's address is free, so it gets in; the server removes the bad row.
    const d2 = validateDelta({
      baseGeneration: 2,
      generation: 3,
      hosts: { remove: [s.hosts[1]!.mac, 'not-a-mac'] },
    });
    assert.ok(d2.ok);
    const third = sieved(applyDelta(second.value, d2.value), {
      schema: false,
      retry: heldAfterDelta(second.held, d2.value, d2.quarantined),
    });
    assert.deepEqual(
      third.value.hosts.map((h) => h.hostname),
      ['vm1', 'vm9', 'vm7'],
    );
    assert.deepEqual(third.q, []);
  });
  it('validateDelta sets a bad upsert aside and keeps the good ones; a bad shape refuses it', () => {
    const d = validateDelta({
      baseGeneration: 1,
      generation: 2,
      hosts: { upsert: [{ ...hostFor(5), mac: 'ff:ff:ff:ff:ff:ff' }, hostFor(6)], remove: ['not-a-mac'] },
      metadata: {
        upsert: { '10.1.0.16': { metaData: {} }, '10.1.0.17': { userData: 'abcde', metaData: {} } },
      },
      passwords: { upsert: { '10.1.0.16': 'pw', x: 'pw' } },
    });
    assert.ok(d.ok);
    assert.deepEqual(
      d.quarantined.map((e) => [e.section, e.key, e.field]),
      [
        ['hosts', 'ff:ff:ff:ff:ff:ff', 'mac'],
        ['metadata', '10.1.0.17', 'userData'],
        ['passwords', 'x', ''],
      ],
    );
    assert.deepEqual(
      d.value.hosts?.upsert?.map((h) => h.hostname),
      ['vm6'],
    );
    assert.deepEqual(d.value.hosts?.remove, ['not-a-mac']);
    assert.deepEqual(Object.keys(d.value.metadata?.upsert ?? {}), ['10.1.0.16']);
    assert.deepEqual(d.value.passwords?.upsert, { '10.1.0.16': 'pw' });
    const bad = validateDelta({ baseGeneration: 1, generation: 2, hosts: { upsert: {} } });
    assert.ok(!bad.ok && bad.field === '/hosts/upsert');
    const net = validateDelta({ baseGeneration: 1, generation: 2, network: { cidr: 'x' } });
    assert.ok(!net.ok);
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
