import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { DesiredState, HostSpec, RuleSpec } from '../agent/desired-state.js';
import { diffStates } from '../agent/desired-state.js';
import { baseState, hostFor } from '../agent/testing/fixtures.js';
import { publicState } from '../agent/testing/nat-fixtures.js';
import { baseOf, diffAgainstBase } from './delta-base.js';

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
  assert.equal(typeof base.hostMacs, 'string');
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
