/**
 * The core's contract with its appliers, with services that only record what they are asked to do (the real ones
 * are exercised end to end by agent-process.test.ts and test/agent/): every check before any apply, a refused
 * check leaves the last good state everywhere and the router Degraded with the reason, an unchanged hash applies
 * nothing, a failure after the services that serve guests is reported against the generation in force and
 * retried when the service says it may heal, a service's own observation shows in the conditions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { eventually } from '../netns/eventually.js';
import { RouterAgent } from './agent.js';
import type { Applier, Observed, Renderer, ServiceStatus, Step } from './appliers/applier.js';
import { ApplyFailure } from './appliers/applier.js';
import type { DesiredState } from './desired-state.js';
import type { AgentStatus } from './status.js';
import { baseState, hostFor } from './testing/fixtures.js';

type Call = `${'check' | 'apply' | 'stop'} ${string} ${number}`;

/** A service whose render is the host names; it fails its check or apply when told to. */
class RecordingApplier implements Applier<string> {
  readonly renderer: Renderer<string>;
  refuseCheck: ((s: DesiredState) => boolean) | null = null;
  failApply: { reason: string; retry: boolean; times: number } | null = null;
  /** While set, apply waits for it (a slow service). */
  gate: Promise<void> | null = null;
  observed: { down?: Observed; degraded?: Observed } = {};
  readonly observedReasons = ['Unwell'];

  constructor(
    readonly name: string,
    readonly servesGuests: boolean,
    private readonly calls: Call[],
  ) {
    this.renderer = {
      name,
      consumes: ['hosts'],
      render: (s) => s.hosts.map((h) => h.hostname).join(','),
      digest: (out) => [out],
    };
  }

  async start(): Promise<void> {}

  async check(next: Step<string>): Promise<void> {
    this.calls.push(`check ${this.name} ${next.state.generation}`);
    if (this.refuseCheck?.(next.state))
      throw new ApplyFailure(`${this.name}Rejected`, `${this.name} refuses it`);
  }

  async apply(next: Step<string>): Promise<void> {
    this.calls.push(`apply ${this.name} ${next.state.generation}`);
    if (this.gate) await this.gate;
    const f = this.failApply;
    if (f && f.times-- > 0) throw new ApplyFailure(f.reason, `${this.name} would not take it`, f.retry);
  }

  status(): ServiceStatus {
    return { ...this.observed, report: {} };
  }

  async stop(): Promise<void> {
    this.calls.push(`stop ${this.name} 0`);
  }
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function agentWith(calls: Call[]) {
  const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-seq-'));
  dirs.push(dataDir);
  const services = {
    addresses: new RecordingApplier('addresses', true, calls),
    dhcp: new RecordingApplier('dhcp', true, calls),
    firewall: new RecordingApplier('firewall', false, calls),
  };
  const agent = new RouterAgent({
    dataDir,
    leaseDir: dataDir,
    guestInterface: 'lo',
    controlAddress: '127.0.0.1',
    controlPort: 3922,
    metadataPort: 0,
    passwordPort: 0,
    dnsmasqBinary: 'dnsmasq',
    keepalivedBinary: 'keepalived',
    firewall: false,
    appliers: () => Object.values(services),
    log: (m) => console.error('LOG', m),
  });
  return { agent, services };
}

const cond = (s: AgentStatus, type: string) => s.conditions.find((c) => c.type === type)!;
const withHost = (generation: number, i: number): DesiredState => ({
  ...baseState({ generation }),
  hosts: [...baseState().hosts, hostFor(i)],
});

describe('agent core: sequencing appliers', () => {
  it('checks every service before applying any; a refused check leaves the last good state, Degraded with the reason', async () => {
    const calls: Call[] = [];
    const { agent, services } = agentWith(calls);
    await agent.start();
    assert.equal((await agent.submitFull(baseState())).ok, true);
    assert.deepEqual(calls.splice(0), [
      'check addresses 1',
      'check dhcp 1',
      'check firewall 1',
      'apply addresses 1',
      'apply dhcp 1',
      'apply firewall 1',
    ]);
    const good = agent.status(false);

    services.firewall.refuseCheck = (s) => s.hosts.some((h) => h.hostname === 'vm7');
    const r = await agent.submitFull(withHost(2, 7));
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.httpStatus === 422 && r.error === 'firewallRejected');
    assert.deepEqual(
      calls.splice(0),
      ['check addresses 2', 'check dhcp 2', 'check firewall 2'],
      'nothing applied',
    );
    const st = agent.status(false);
    assert.equal(st.generation, 1);
    assert.equal(st.hash, good.hash);
    assert.equal(agent.appliedState?.generation, 1);
    assert.deepEqual(st.lastFailure, {
      generation: 2,
      reason: 'firewallRejected',
      message: 'firewall refuses it',
    });
    assert.equal(cond(st, 'Degraded').status, true);
    assert.equal(cond(st, 'Degraded').reason, 'firewallRejected');
    assert.match(cond(st, 'Degraded').message, /generation 2 not applied.*generation 1 keeps serving/);

    const ok = await agent.submitFull(withHost(3, 8));
    assert.equal(ok.ok, true);
    const healed = agent.status(false);
    assert.equal(healed.generation, 3);
    assert.equal(healed.lastFailure, null);
    assert.equal(cond(healed, 'Degraded').status, false);
    await agent.stop();
    assert.deepEqual(
      calls.slice(-3),
      ['stop firewall 0', 'stop dhcp 0', 'stop addresses 0'],
      'reverse order',
    );
  });

  it('states arriving while an apply runs are merged: only the newest is applied next', async () => {
    const calls: Call[] = [];
    const { agent, services } = agentWith(calls);
    await agent.start();
    await agent.submitFull(baseState());
    let open!: () => void;
    services.dhcp.gate = new Promise<void>((r) => (open = r));
    void agent.submitFull(withHost(2, 102), false);
    await eventually(async () => assert.ok(calls.includes('apply dhcp 2')), {
      what: 'generation 2 applying',
    });
    // Thirty more arrive while generation 2 is still being applied.
    for (let g = 3; g <= 32; g++) void agent.submitFull(withHost(g, 100 + g), false);
    services.dhcp.gate = null;
    open();
    await eventually(async () => assert.equal(agent.status(false).generation, 32), { what: 'generation 32' });
    assert.deepEqual(
      calls.filter((c) => c.startsWith('apply dhcp')),
      ['apply dhcp 1', 'apply dhcp 2', 'apply dhcp 32'],
    );
    await agent.stop();
  });

  it('an unchanged render applies nothing: a new generation with the same content is only recorded', async () => {
    const calls: Call[] = [];
    const { agent } = agentWith(calls);
    await agent.start();
    await agent.submitFull(baseState());
    const before = agent.status(false);
    calls.length = 0;
    const r = await agent.submitFull(baseState({ generation: 5 }));
    assert.equal(r.ok, true);
    assert.deepEqual(calls, []);
    const st = agent.status(false);
    assert.equal(st.generation, 5);
    assert.equal(st.hash, before.hash);
    assert.equal(st.counters.applies, before.counters.applies);
    await agent.stop();
  });

  it('a failure after the services serving guests: that generation is in force, Degraded, and retried when the service may heal', async () => {
    const calls: Call[] = [];
    const { agent, services } = agentWith(calls);
    await agent.start();
    await agent.submitFull(baseState());
    services.firewall.failApply = { reason: 'FirewallStartFailed', retry: true, times: 1 };
    calls.length = 0;
    const r = await agent.submitFull(withHost(2, 7));
    assert.ok(!r.ok && r.httpStatus === 422 && r.error === 'FirewallStartFailed');
    const st = agent.status(false);
    assert.equal(st.generation, 2, 'the services serving guests took it');
    assert.equal(cond(st, 'Degraded').reason, 'FirewallStartFailed');
    // The retry (after 1 s) applies the same state again, forced: every service, even with an unchanged hash.
    await eventually(
      () => {
        assert.equal(cond(agent.status(false), 'Degraded').status, false);
      },
      { timeoutMs: 5000 },
    );
    assert.deepEqual(calls.slice(-3), ['apply addresses 2', 'apply dhcp 2', 'apply firewall 2']);
    assert.equal(agent.status(false).lastFailure, null);

    await agent.stop();
  });

  it('what a service observes by itself shows in the conditions while it lasts', async () => {
    const calls: Call[] = [];
    const { agent, services } = agentWith(calls);
    await agent.start();
    await agent.submitFull(baseState());
    services.dhcp.observed = {
      down: { reason: 'DhcpDown', message: 'not running' },
      degraded: { reason: 'Unwell', message: 'died 3 times' },
    };
    let st = agent.status(false);
    assert.deepEqual(
      [cond(st, 'Available').status, cond(st, 'Available').reason, cond(st, 'Degraded').reason],
      [false, 'DhcpDown', 'Unwell'],
    );
    services.dhcp.observed = {};
    st = agent.status(false);
    assert.deepEqual(
      [cond(st, 'Available').reason, cond(st, 'Degraded').status, cond(st, 'Degraded').reason],
      ['Serving', false, 'AsExpected'],
    );
    await agent.stop();
  });
});
