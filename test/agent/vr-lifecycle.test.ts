// Issue 5, "What it must show": a config dnsmasq rejects is never applied (old config keeps serving, status
// Degraded with why); dnsmasq killed → the agent brings it back; the agent killed and restarted → same rendered
// hash, same dnsmasq process when nothing changed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dig, eventually, pidAlive } from '../../src/netns/index.js';
import type { DesiredState } from '../../src/agent/desired-state.js';
import { VrLab, condition, type RouterUnderTest } from './vr-lab.js';

const MAC1 = '02:ab:00:00:00:01';
const MAC2 = '02:ab:00:00:00:02';
const MAC5 = '02:ab:00:00:00:05';
const MAC6 = '02:ab:00:00:00:06';

describe('router agent: validation, supervision and restart', () => {
  const lab = new VrLab({ cidr: '10.61.0.0/24' });
  let vr: RouterUnderTest;
  let good: DesiredState;
  const g: Record<string, string> = {};

  before(async () => {
    await lab.setup();
    vr = await lab.router('vr');
    g.vm1 = await lab.guest('vm1', MAC1);
    g.vm2 = await lab.guest('vm2', MAC2);
    g.vm5 = await lab.guest('vm5', MAC5);
    good = lab.state(1, [lab.host(11, MAC1, 'vm1'), lab.host(12, MAC2, 'vm2')]);
    const r = await vr.push(good);
    assert.ok(r.ok, `push failed: ${JSON.stringify(r)}\n${vr.log()}`);
  });

  after(async () => {
    await lab.cleanup();
  });

  it('the control API refuses unauthenticated requests, stale generations, deltas on another base and bad documents', async () => {
    const wrong = await fetch(`http://${vr.control}/v1/status`, {
      headers: { authorization: 'Bearer not-the-secret' },
    });
    assert.equal(wrong.status, 401);
    const none = await fetch(`http://${vr.control}/v1/desired-state`, {
      method: 'PUT',
      body: JSON.stringify(good),
    });
    assert.equal(none.status, 401);
    const stale = await vr.push({ ...good, generation: 0 });
    assert.equal(stale.ok, false);
    assert.equal(stale.httpStatus, 409, JSON.stringify(stale));
    const base = await vr.patch({
      baseGeneration: 7,
      generation: 8,
      hosts: { upsert: [lab.host(17, MAC5, 'vm5')] },
    });
    assert.equal(base.ok, false);
    assert.equal(base.httpStatus, 409);
    assert.ok(
      !base.ok && base.sendFull,
      `a delta on the wrong base must ask for the full state: ${JSON.stringify(base)}`,
    );
    // Wrong as a whole (one bad entry only sets that entry aside: see the last test).
    const badDoc = await vr.push({
      ...good,
      generation: 2,
      network: { ...good.network, gateway: '10.62.0.1' },
    });
    assert.equal(badDoc.ok, false);
    assert.equal(badDoc.httpStatus, 400);
    assert.ok(
      !badDoc.ok && /network\/gateway/.test(`${badDoc.field} ${badDoc.message}`),
      JSON.stringify(badDoc),
    );
    const st = await vr.status();
    assert.equal(st.generation, 1, 'nothing was applied');
  });

  it('a desired state dnsmasq rejects is not applied; the old config keeps serving; status is Degraded with why', async () => {
    const before = await vr.status();
    assert.equal(before.generation, 1);
    const bad = lab.state(2, [...good.hosts, lab.host(15, MAC5, 'vm5')]);
    // dnsmasq advertises only /64 prefixes (SLAAC): a /56 passes the schema but `dnsmasq --test` refuses it.
    bad.network.ipv6Cidr = 'fd00:0:0:100::/56';
    const r = await vr.push(bad);
    assert.equal(r.ok, false, `a config dnsmasq rejects was accepted: ${JSON.stringify(r)}`);
    const st = await vr.status();
    assert.equal(st.generation, 1, 'the rejected generation must not be in force');
    assert.equal(st.hash, before.hash, 'the rendered hash must stay the last good one');
    const degraded = condition(st, 'Degraded');
    assert.equal(degraded.status, true);
    assert.match(`${degraded.reason} ${degraded.message}`, /dnsmasq/i);
    assert.match(degraded.message, /prefix length/i, `Degraded says why: ${degraded.message}`);
    assert.equal(st.dnsmasq.pid, before.dnsmasq.pid, 'dnsmasq was not restarted onto a bad config');
    // the old configuration keeps serving: vm1 gets its address, vm5 (only in the rejected state) does not
    const l1 = await lab.net.udhcpc(g.vm1!, 'eth0');
    assert.equal(l1.lease?.ip, lab.ip(11), l1.output);
    const l5 = await lab.net.udhcpc(g.vm5!, 'eth0', { discoverAttempts: 1, discoverTimeoutSec: 1 });
    assert.equal(l5.lease, undefined);
    // the next good state clears it
    const fixed = lab.state(3, bad.hosts);
    const r3 = await vr.push(fixed);
    assert.ok(r3.ok, JSON.stringify(r3));
    const st3 = await vr.status();
    assert.equal(st3.generation, 3);
    assert.equal(condition(st3, 'Degraded').status, false);
    good = fixed;
    const l5b = await lab.net.udhcpc(g.vm5!, 'eth0');
    assert.equal(l5b.lease?.ip, lab.ip(15), l5b.output);
  });

  it('killing dnsmasq: the agent brings it back', async () => {
    const st = await vr.status();
    const pid = st.dnsmasq.pid;
    assert.ok(pid, `dnsmasq not running: ${JSON.stringify(st.dnsmasq)}`);
    process.kill(pid, 'SIGKILL');
    const back = await eventually(
      async () => {
        const s = await vr.status();
        assert.ok(s.dnsmasq.running && s.dnsmasq.pid && s.dnsmasq.pid !== pid, JSON.stringify(s.dnsmasq));
        return s;
      },
      { timeoutMs: 10_000, what: 'dnsmasq restarted by the agent' },
    );
    assert.ok(await pidAlive(back.dnsmasq.pid!));
    const l = await lab.net.udhcpc(g.vm2!, 'eth0');
    assert.equal(l.lease?.ip, lab.ip(12), `${l.output}\n${vr.log()}`);
    const d = await dig(g.vm2!, 'vm1', lab.ip(1));
    assert.deepEqual(d.answers, [lab.ip(11)]);
  });

  it('killing the agent and starting it again: same rendered hash, same dnsmasq process', async () => {
    const st = await vr.status();
    assert.ok(st.hash && st.dnsmasq.pid);
    vr.agent.child.kill('SIGKILL');
    await vr.agent.exited;
    // dnsmasq keeps serving while the agent is away
    assert.ok(await pidAlive(st.dnsmasq.pid));
    await vr.restart();
    const after = await eventually(
      async () => {
        const s = await vr.status();
        assert.equal(s.generation, st.generation);
        assert.equal(condition(s, 'Progressing').status, false);
        return s;
      },
      { timeoutMs: 10_000, what: 'restarted agent converged' },
    );
    assert.equal(after.hash, st.hash);
    assert.equal(after.dnsmasq.pid, st.dnsmasq.pid, `dnsmasq was restarted:\n${vr.log()}`);
    assert.ok(await pidAlive(st.dnsmasq.pid));
    // pushing the same state again changes nothing either
    const again = await vr.push(good);
    assert.ok(again.ok, JSON.stringify(again));
    const s2 = await vr.status();
    assert.equal(s2.hash, st.hash);
    assert.equal(s2.dnsmasq.pid, st.dnsmasq.pid);
    const l = await lab.net.udhcpc(g.vm1!, 'eth0');
    assert.equal(l.lease?.ip, lab.ip(11), l.output);
  });

  it('a bad MAC entry is set aside and named in the status; the rest of that generation and the next one serve DHCP', async () => {
    const gen = (await vr.status()).generation!;
    // A row that bypassed the API's checks (not a MAC at all) next to a new VM.
    const bad = lab.host(13, 'not-a-mac', 'vmbad');
    g.vm6 = await lab.guest('vm6', MAC6);
    const withBad = lab.state(gen + 1, [...good.hosts, bad, lab.host(16, MAC6, 'vm6')]);
    const r = await vr.push(withBad);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.status.generation, gen + 1);
    assert.deepEqual(
      r.status.quarantined?.map((q) => [q.key, q.field]),
      [['not-a-mac', 'mac']],
    );
    const degraded = condition(r.status, 'Degraded');
    assert.equal(degraded.reason, 'EntriesQuarantined');
    assert.match(degraded.message, /not-a-mac/);
    const l6 = await lab.net.udhcpc(g.vm6!, 'eth0');
    assert.equal(l6.lease?.ip, lab.ip(16), `${l6.output}\n${vr.log().slice(-2000)}`);
    // The next generation (a delta, as the server sends for the next VM change) applies at once too.
    const d = await vr.patch({
      baseGeneration: gen + 1,
      generation: gen + 2,
      hosts: { upsert: [{ ...good.hosts[1]!, hostname: 'vm2b' }] },
    });
    assert.ok(d.ok, JSON.stringify(d));
    assert.equal(d.status.generation, gen + 2);
    assert.deepEqual(
      d.status.quarantined?.map((q) => q.key),
      ['not-a-mac'],
    );
    await eventually(
      async () => assert.deepEqual((await dig(g.vm6!, 'vm2b', lab.ip(1))).answers, [lab.ip(12)]),
      { timeoutMs: 5000, what: 'vm2b to resolve' },
    );
  });
});
