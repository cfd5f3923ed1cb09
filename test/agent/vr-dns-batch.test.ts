// The DNS dnsmasq takes a few new names by a hostsdir file (no reload) and a batch by one SIGHUP (dnsmasq reads a
// hostsdir file with a walk of its whole name table per name: a burst of VMs would stall every query; issue 15).
// Real agent, real dnsmasq, real dig from a guest namespace.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { addAddress, dig } from '../../src/netns/index.js';
import type { DesiredState, HostSpec } from '../../src/agent/desired-state.js';
import { VrLab, type RouterUnderTest } from './vr-lab.js';

const mac = (i: number) =>
  `02:dd:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

describe('router agent: DNS names added one by one and in a batch', () => {
  const lab = new VrLab();
  let vr: RouterUnderTest;
  let guest: string;
  let state: DesiredState;
  let gen = 1;
  const hosts: HostSpec[] = [];
  const host = (i: number) => lab.host(10 + i, mac(i), `dn${i}`);

  before(async () => {
    await lab.setup();
    vr = await lab.router('vr');
    guest = await lab.guest('dg', '02:dd:00:00:ff:01');
    await addAddress(guest, 'eth0', `${lab.ip(250)}/24`);
    hosts.push(host(1), host(2));
    state = lab.state(gen, hosts);
    const r = await vr.push(state);
    assert.ok(r.ok, `push failed: ${JSON.stringify(r)}\n${vr.log()}`);
  });

  after(async () => {
    await lab.cleanup();
  });

  const counters = async () => (await vr.status()).counters as Record<string, number>;
  const add = async (hs: HostSpec[]) => {
    const r = await vr.patch({ baseGeneration: gen, generation: gen + 1, hosts: { upsert: hs, remove: [] } });
    assert.ok(r.ok, `patch failed: ${JSON.stringify(r)}\n${vr.log()}`);
    gen++;
    hosts.push(...hs);
  };
  const resolves = async (h: HostSpec) => {
    const d = await dig(guest, `${h.hostname}.${lab.domain}`, lab.ip(1));
    assert.equal(d.status, 'NOERROR', `${h.hostname}: ${JSON.stringify(d)}`);
    assert.deepEqual(d.answers, [h.ipv4]);
  };

  it('one new host: its name file in names.d, no reload, and it resolves', async () => {
    const before = await counters();
    const h = host(3);
    await add([h]);
    const after = await counters();
    assert.equal(after.dnsAdds, before.dnsAdds! + 1);
    assert.equal(after.dnsReloads, before.dnsReloads);
    await resolves(h);
  });

  it('a batch of 40 new hosts: one SIGHUP, no names.d file, and every one resolves (the old ones too)', async () => {
    const before = await counters();
    const batch = Array.from({ length: 40 }, (_, i) => host(100 + i));
    await add(batch);
    const after = await counters();
    assert.equal(after.dnsReloads, before.dnsReloads! + 1);
    assert.equal(after.dnsAdds, before.dnsAdds);
    assert.equal(after.dnsRestarts, before.dnsRestarts);
    for (const h of [...batch, host(1), host(3)]) await resolves(h);
  });
});
