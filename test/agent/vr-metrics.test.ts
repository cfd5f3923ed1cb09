// Issue 17 items 4 and 6 on the router agent: GET /metrics on the control address (behind the router secret),
// parsed; apply counts and durations by applier and result, the generation in force, Degraded with its reason,
// dnsmasq reloads/restarts, the lease count; and the agent's log as JSON lines (one per apply).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { VrLab, type RouterUnderTest } from './vr-lab.js';
import { hasSample, parseExposition, sampleSum } from '../../src/metrics/exposition.js';
import type { Sample } from '../../src/metrics/exposition.js';

const MAC1 = '02:ac:00:00:00:01';
const MAC2 = '02:ac:00:00:00:02';

describe('router agent: metrics and structured logs', () => {
  const lab = new VrLab({ cidr: '10.67.0.0/24' });
  let vr: RouterUnderTest;
  let vm1 = '';

  const scrape = async (): Promise<Sample[]> => {
    const r = await fetch(`http://${vr.control}/metrics`, {
      headers: { authorization: `Bearer ${vr.secret}` },
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseExposition(await r.text());
  };

  before(async () => {
    await lab.setup();
    vr = await lab.router('vr');
    vm1 = await lab.guest('vm1', MAC1);
  });

  after(async () => {
    await lab.cleanup();
  });

  it('GET /metrics needs the router secret, like every control request', async () => {
    assert.equal((await fetch(`http://${vr.control}/metrics`)).status, 401);
    const wrong = await fetch(`http://${vr.control}/metrics`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
  });

  it('applies by applier and result, generation, Degraded, dnsmasq and leases', async () => {
    const m0 = await scrape();
    assert.equal(sampleSum(m0, 'stacknet_agent_generation'), -1);
    const good = lab.state(1, [lab.host(11, MAC1, 'vm1')]);
    const r1 = await vr.push(good);
    assert.ok(r1.ok, `${JSON.stringify(r1)}\n${vr.log()}`);
    const l1 = await lab.net.udhcpc(vm1, 'eth0');
    assert.equal(l1.lease?.ip, lab.ip(11), l1.output);
    // dnsmasq advertises only /64 prefixes: a /56 passes the schema but `dnsmasq --test` refuses it.
    const bad = lab.state(2, [...good.hosts, lab.host(12, MAC2, 'vm2')]);
    bad.network.ipv6Cidr = 'fd00:0:0:100::/56';
    const r2 = await vr.push(bad);
    assert.equal(r2.ok, false);
    const m = await scrape();
    assert.equal(sampleSum(m, 'stacknet_agent_generation'), 1);
    assert.equal(sampleSum(m, 'stacknet_agent_applies_total', { result: 'ok' }), 1);
    assert.equal(sampleSum(m, 'stacknet_agent_applies_total', { result: 'failed' }), 1);
    assert.equal(sampleSum(m, 'stacknet_agent_applier_runs_total', { applier: 'dnsmasq', result: 'ok' }), 1);
    assert.equal(
      sampleSum(m, 'stacknet_agent_applier_runs_total', { applier: 'dnsmasq', result: 'failed' }),
      1,
    );
    assert.ok(sampleSum(m, 'stacknet_agent_applier_duration_seconds_count', { applier: 'dnsmasq' }) === 2);
    assert.ok(hasSample(m, 'stacknet_agent_apply_duration_seconds_bucket', { result: 'ok', le: '+Inf' }));
    const degraded = m.find((s) => s.name === 'stacknet_agent_degraded');
    assert.equal(degraded?.value, 1);
    assert.match(degraded?.labels.reason ?? '', /dnsmasq/i);
    assert.equal(sampleSum(m, 'stacknet_agent_dnsmasq_running'), 1);
    assert.ok(hasSample(m, 'stacknet_agent_dnsmasq_reloads'));
    assert.ok(hasSample(m, 'stacknet_agent_dnsmasq_crash_restarts'));
    assert.equal(sampleSum(m, 'stacknet_agent_dhcp_leases'), 1);
  });

  it('the agent logs JSON lines: one per apply, with generation, result and per-applier time', () => {
    const lines = vr.agent
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.length > 0, vr.agent.output());
    for (const l of lines) {
      assert.equal(l.service, 'stacknet-router-agent');
      assert.equal(typeof l.level, 'string');
      assert.equal(typeof l.msg, 'string');
    }
    const applied = lines.find((l) => l.msg === 'applied' && l.generation === 1);
    assert.ok(applied, JSON.stringify(lines));
    assert.equal(applied.result, 'ok');
    assert.equal(typeof (applied.appliers as Record<string, number>).dnsmasq, 'number');
    const failed = lines.find((l) => l.msg === 'apply failed' && l.generation === 2);
    assert.ok(failed, JSON.stringify(lines));
    assert.equal(failed.level, 'warn');
    assert.match(String(failed.reason), /dnsmasq/i);
  });
});
