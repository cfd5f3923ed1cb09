/** Validation of the public side, rules and VPC section: bad rules and static NATs are set aside, not refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DesiredState, RuleSpec } from './desired-state.js';
import { applyDelta } from './desired-state.js';
import { publicState, vpcEdgeState } from './testing/nat-fixtures.js';
import { heldAfterDelta, validateDelta, validateDesiredState } from './validate-desired-state.js';

function sieved(doc: unknown, opts?: Parameters<typeof validateDesiredState>[1]) {
  const v = validateDesiredState(doc, opts);
  assert.ok(v.ok, JSON.stringify(v));
  return { value: v.value, held: v.quarantined, q: v.quarantined.map((e) => [e.section, e.key, e.field]) };
}

const pf = (id: string, extra: Partial<Extract<RuleSpec, { kind: 'portForward' }>> = {}): RuleSpec => ({
  kind: 'portForward',
  id,
  protocol: 'tcp',
  publicIp: '203.0.113.12',
  publicPorts: { start: 22, end: 22 },
  guestIp: '10.1.0.12',
  privatePorts: { start: 22, end: 22 },
  sourceCidrs: ['0.0.0.0/0'],
  ...extra,
});

describe('the public side and rules', () => {
  it('accepts the fixtures as they are', () => {
    for (const s of [publicState(), vpcEdgeState()]) {
      const r = sieved(s);
      assert.deepEqual(r.q, []);
      assert.deepEqual(r.value, s);
    }
  });

  it('quarantines a bad rule, naming it and its field; every other rule applies', () => {
    const s = publicState();
    const cases: [unknown, string, string][] = [
      [pf('x', { publicIp: '203.0.113.99' }), 'x', 'publicIp'],
      [pf('x', { guestIp: '10.9.0.5' }), 'x', 'guestIp'],
      [pf('x', { publicIp: '203.0.113.11' }), 'x', 'publicIp'],
      [pf('x', { publicPorts: { start: 70, end: 85 } }), 'x', 'publicPorts'],
      [pf('x', { publicPorts: { start: 30, end: 20 } }), 'x', 'publicPorts'],
      [
        pf('x', { publicPorts: { start: 20, end: 30 }, privatePorts: { start: 20, end: 25 } }),
        'x',
        'privatePorts',
      ],
      [pf('x', { sourceCidrs: ['10.0.0.0/33'] }), 'x', 'sourceCidrs/0'],
      [{ ...pf('x'), extra: 1 }, 'x', 'extra'],
      [{ kind: 'nat', id: 'x' }, 'x', 'kind'],
      [
        {
          kind: 'firewall',
          id: 'x',
          protocol: 'icmp',
          publicIp: '203.0.113.12',
          ports: { start: 1, end: 2 },
          sourceCidrs: [],
        },
        'x',
        'ports',
      ],
      [
        { kind: 'firewall', id: 'x', protocol: '47', publicIp: '203.0.113.12', sourceCidrs: [] },
        'x',
        'protocol',
      ],
      [
        { kind: 'egress', id: 'x', protocol: 'tcp', icmpType: 8, sourceCidrs: [], destCidrs: [] },
        'x',
        'icmpType',
      ],
      [
        { kind: 'acl', id: 'x', protocol: 'all', number: 1, action: 'allow', traffic: 'ingress', cidrs: [] },
        'x',
        'kind',
      ],
    ];
    for (const [bad, key, field] of cases) {
      const r = sieved({ ...s, rules: [...s.rules!, bad, pf('zz')] });
      assert.deepEqual(r.q, [['rules', key, field]], JSON.stringify(bad));
      assert.deepEqual(
        r.value.rules!.map((x) => x.id),
        [...s.rules!.map((x) => x.id), 'zz'].sort(),
      );
    }
  });

  it('a VPC edge forwards to the whole VPC; a tier router takes ACL items', () => {
    const s = vpcEdgeState();
    const r = sieved({ ...s, rules: [...s.rules!, pf('to-other-tier', { guestIp: '10.1.1.5' })] });
    assert.deepEqual(r.q, []);
  });

  it('quarantines a static NAT it cannot apply, keeps the rest of the public side', () => {
    const s = publicState();
    const pub = s.public!;
    const r = sieved({
      ...s,
      public: {
        ...pub,
        staticNats: [
          ...pub.staticNats,
          { publicIp: '203.0.113.10', guestIp: '10.1.0.13' },
          { publicIp: '203.0.113.99', guestIp: '10.1.0.14' },
        ],
      },
    });
    assert.deepEqual(r.q, [
      ['staticNats', '203.0.113.10', 'publicIp'],
      ['staticNats', '203.0.113.99', 'publicIp'],
    ]);
    assert.deepEqual(r.value.public, pub);
  });

  it('refuses a public side that is wrong as a whole', () => {
    const s = publicState();
    for (const [pub, field] of [
      [{ ...s.public!, sourceNatIp: '203.0.113.99' }, '/public/sourceNatIp'],
      [{ ...s.public!, nics: [...s.public!.nics, s.public!.nics[0]!] }, '/public/nics/1/interface'],
      [{ ...s.public!, nics: [{ ...s.public!.nics[0]!, vlan: 'x' }] }, '/public/nics/0/vlan'],
    ] as const) {
      const v = validateDesiredState({ ...s, public: pub });
      assert.ok(!v.ok && v.field === field, JSON.stringify(v));
    }
  });

  it('deltas: a bad rule upsert is set aside; a rule held for a missing address gets in once the address comes', () => {
    const s = publicState();
    const late = pf('late', { publicIp: '203.0.113.13' });
    const d1 = validateDelta({
      baseGeneration: 1,
      generation: 2,
      rules: { upsert: [late, { ...pf('bad'), protocol: 'icmp' }], remove: ['fw-1'] },
    });
    assert.ok(d1.ok);
    assert.deepEqual(
      d1.quarantined.map((e) => [e.section, e.key, e.field]),
      [['rules', 'bad', 'protocol']],
    );
    const second = sieved(applyDelta(s, d1.value), {
      schema: false,
      retry: heldAfterDelta([], d1.value, d1.quarantined),
    });
    assert.deepEqual(second.q, [
      ['rules', 'late', 'publicIp'],
      ['rules', 'bad', 'protocol'],
    ]);
    assert.ok(!second.value.rules!.some((r) => r.id === 'fw-1' || r.id === 'late'));
    const nic = s.public!.nics[0]!;
    const pub = { ...s.public!, nics: [{ ...nic, addresses: [...nic.addresses, '203.0.113.13'] }] };
    const d2 = validateDelta({ baseGeneration: 2, generation: 3, public: pub, rules: { remove: ['bad'] } });
    assert.ok(d2.ok);
    const third = sieved(applyDelta(second.value, d2.value), {
      schema: false,
      retry: heldAfterDelta(second.held, d2.value, d2.quarantined),
    });
    assert.deepEqual(third.q, []);
    assert.ok(third.value.rules!.some((r) => r.id === 'late'));
    const gone = validateDelta({ baseGeneration: 3, generation: 4, public: null, vpc: null });
    assert.ok(gone.ok);
    const fourth = sieved(applyDelta(third.value, gone.value), { schema: false });
    assert.equal((fourth.value as DesiredState).public, undefined);
    assert.ok(
      fourth.q.every(([section]) => section === 'rules'),
      'forwards and firewall rules wait for their address',
    );
  });
});
