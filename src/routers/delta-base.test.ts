import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { DesiredState, HostSpec, RuleSpec } from '../agent/desired-state.js';
import { diffStates } from '../agent/desired-state.js';
import { baseState, hostFor } from '../agent/testing/fixtures.js';
import { publicState } from '../agent/testing/nat-fixtures.js';
import { StringList, StringTable, baseOf, diffAgainstBase } from './delta-base.js';

const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;

test('diffAgainstBase(baseOf(a), b) is diffStates(a, b) (property)', () => {
  const hostArb = fc.integer({ min: 1, max: 40 }).chain((i) =>
    fc
      .record({ name: fc.constantFrom('a', 'b'), def: fc.boolean(), upper: fc.boolean() })
      .map(({ name, def, upper }): HostSpec => ({
        ...hostFor(i),
        // Case-insensitive MACs: a host re-spelled in upper case is the same host.
        mac: upper ? hostFor(i).mac.toUpperCase() : hostFor(i).mac,
        hostname: `${name}${i}`,
        defaultNic: def,
      })),
  );
  const hostsArb = fc.uniqueArray(hostArb, { selector: (h) => h.mac.toLowerCase(), maxLength: 15 });
  const ipArb = fc.integer({ min: 11, max: 30 }).map((n) => `10.1.0.${n}`);
  const recArb = fc.dictionary(ipArb, fc.string({ minLength: 1, maxLength: 5 }), { maxKeys: 5 });
  const mdArb = fc.dictionary(
    ipArb,
    fc.record({ name: fc.constantFrom('vm-a', 'vm-b') }).map(({ name }) => ({
      metaData: { 'local-hostname': name },
    })),
    { maxKeys: 5 },
  );
  const rulesArb = fc.uniqueArray(
    fc
      .record({ id: fc.constantFrom('r1', 'r2', 'r3', 'r4'), port: fc.constantFrom(22, 80) })
      .map(({ id, port }): RuleSpec => ({
        kind: 'firewall',
        id,
        protocol: 'tcp',
        ports: { start: port, end: port },
        publicIp: '203.0.113.7',
        sourceCidrs: ['0.0.0.0/0'],
      })),
    { selector: (r) => r.id, maxLength: 4 },
  );
  const sideArb = fc.constantFrom<Partial<DesiredState>>({}, { public: publicState().public! });
  const stateArb = (generation: number) =>
    fc
      .tuple(hostsArb, recArb, mdArb, rulesArb, sideArb, fc.boolean(), fc.constantFrom('r-4-VM', 'r-5-VM'))
      .map(([hosts, passwords, metadata, rules, side, fw, name]): DesiredState => ({
        ...baseState({ generation, hosts, passwords, metadata, firewall: { enabled: fw } }),
        router: { name, guestIp: '10.1.0.1' },
        ...(rules.length ? { rules } : {}),
        ...side,
      }));
  fc.assert(
    fc.property(stateArb(3), stateArb(7), (from, to) => {
      assert.deepEqual(plain(diffAgainstBase(baseOf(from), to)), plain(diffStates(from, to)));
    }),
    { numRuns: 300 },
  );
});

test('a base holds digests, not the state: a 2,000-host state leaves no host object behind', () => {
  const hosts = Array.from({ length: 2000 }, (_, i) => hostFor(i + 1));
  const s = baseState({ hosts, metadata: {}, passwords: {} });
  const base = baseOf(s);
  assert.equal(base.hosts.size, 2000);
  // Lower-case MACs, each once: the removal list is the table's keys, no second copy of the MACs.
  assert.equal(base.hostMacs, null);
  // One host changed, one gone, one new: exactly those in the delta.
  const next = baseState({
    generation: 2,
    hosts: [{ ...hosts[0]!, hostname: 'renamed' }, ...hosts.slice(2), hostFor(5000)],
    metadata: {},
    passwords: {},
  });
  const d = diffAgainstBase(base, next);
  assert.deepEqual(
    d.hosts?.upsert?.map((h) => h.hostname),
    ['renamed', 'vm5000'],
  );
  assert.deepEqual(d.hosts?.remove, [hosts[1]!.mac]);
  assert.equal(d.router, undefined);
});

test('a base spells removed MACs as pushed: upper case and a MAC pushed twice', () => {
  const a = hostFor(1);
  const b = hostFor(2);
  const from = baseState({ hosts: [{ ...a, mac: a.mac.toUpperCase() }, b, { ...b, hostname: 'again' }] });
  const base = baseOf(from);
  assert.notEqual(base.hostMacs, null);
  const to = baseState({ generation: 2, hosts: [] });
  assert.deepEqual(plain(diffAgainstBase(base, to)), plain(diffStates(from, to)));
  assert.deepEqual(diffAgainstBase(base, to).hosts?.remove, [a.mac.toUpperCase(), b.mac, b.mac]);
});

test('StringList gives back what it packed, in order (property: any text, shared prefixes, long strings)', () => {
  const text = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.string({
      unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
      maxLength: 3,
    }),
    fc.string({ minLength: 120, maxLength: 400 }),
    fc.constantFrom('', 'é', 'éa', 'éb', '\u{1F600}', '\u{1F601}', '02:00:4c:00:00:0a'),
  );
  // Runs of strings sharing a prefix, as a router's keys come (the prefix may end inside a UTF-8 sequence).
  const list = fc
    .array(fc.tuple(text, fc.array(text, { maxLength: 4 })), { maxLength: 30 })
    .map((runs) => runs.flatMap(([p, tails]) => [p, ...tails.map((t) => p + t)]));
  fc.assert(
    fc.property(list, (xs) => {
      const packed = new StringList(xs);
      assert.equal(packed.length, xs.length);
      assert.deepEqual([...packed], xs);
      assert.deepEqual([...packed], xs, 'a second read gives the same');
    }),
    { numRuns: 500 },
  );
});

test('a base of a 10,000-VM network keeps a few bytes per key beside its digests', () => {
  const hosts = Array.from({ length: 10_000 }, (_, i) => hostFor(i + 1));
  const metadata = Object.fromEntries(
    hosts.map((h) => [h.ipv4, { metaData: { 'local-hostname': h.hostname } }]),
  );
  const passwords = Object.fromEntries(hosts.map((h, i) => [h.ipv4, `pw-${(i * 7919).toString(36)}`]));
  const base = baseOf(baseState({ hosts, metadata, passwords }));
  // The old layout: the MACs twice and the addresses once as text (≥ 17 + 17 + 7 bytes a VM), and the
  // passwords as an object (~60 bytes an entry).
  const keyBytes = (t: { entries(): IterableIterator<string> }) => new StringList(t.entries()).byteLength;
  assert.ok(keyBytes(base.hosts) < 10_000 * 8, `MACs: ${keyBytes(base.hosts)} bytes`);
  assert.ok(keyBytes(base.metadata) < 10_000 * 8, `addresses: ${keyBytes(base.metadata)} bytes`);
  assert.equal(base.passwords.size, 10_000);
  assert.deepEqual(
    base.passwords.pick([hosts[7]!.ipv4, '192.0.2.1']),
    new Map([[hosts[7]!.ipv4, passwords[hosts[7]!.ipv4]]]),
  );
  assert.deepEqual(Object.fromEntries(base.passwords.entries()), passwords);
});

test('StringTable keeps the record order and values', () => {
  const t = new StringTable({ '10.0.0.2': 'b', '10.0.0.10': 'a', x: '' });
  assert.deepEqual(
    [...t.entries()],
    [
      ['10.0.0.2', 'b'],
      ['10.0.0.10', 'a'],
      ['x', ''],
    ],
  );
  assert.deepEqual(t.pick([]), new Map());
});
