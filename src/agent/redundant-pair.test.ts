/**
 * Two agents for one network as a keepalived pair: the gateway is the VIP, only its holder runs dnsmasq and
 * answers metadata; stopping the primary's agent (which stops its keepalived) moves everything to the backup.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { leaseDirFor } from './lease-dir.js';
import { getStatus, pushFull } from './control-client.js';
import type { DesiredState } from './desired-state.js';
import { baseState, hostFor } from './testing/fixtures.js';
import { spawnTestAgent } from './testing/spawn-agent.js';
import type { SpawnedProcess } from '../netns/index.js';
import { TestNet, dig, eventually, execIn } from '../netns/index.js';

const secret = 'pair-' + Math.random().toString(36).slice(2);

interface Vr {
  ns: string;
  control: string;
  dataDir: string;
  agent: SpawnedProcess;
}

describe('redundant pair', { timeout: 60_000 }, () => {
  const net = new TestNet();
  const vrs: Vr[] = [];
  let guest = '';

  const stateFor = (guestIp: string, priority: number): DesiredState =>
    baseState({
      router: {
        name: 'r-9-VM',
        guestIp,
        redundant: { priority, vrrpIntervalSeconds: 1, virtualRouterId: 9, authPass: 'pairpw' },
      },
    });

  const spawnAgent = (ns: string, control: string, dataDir: string) =>
    spawnTestAgent(net, ns, { control, dataDir, secret });

  before(async () => {
    const br = await net.bridge('br');
    guest = await net.namespace('g');
    await net.veth({
      ns: guest,
      ifname: 'eth0',
      bridge: br,
      mac: hostFor(1).mac,
      addresses: ['10.1.0.11/16'],
    });
    for (const role of ['a', 'b']) {
      const ns = await net.namespace(role);
      await net.veth({ ns, ifname: 'eth0', bridge: br });
      const link = await net.hostLink(ns, 'ctl0');
      const dataDir = await net.tempDir(role);
      net.removeOnCleanup(leaseDirFor(resolve(dataDir)));
      const control = `${link.nsAddress}:3922`;
      const agent = spawnAgent(ns, control, dataDir);
      vrs.push({ ns, control, dataDir, agent });
    }
    for (const v of vrs)
      await eventually(
        async () => {
          if (v.agent.hasExited()) throw new Error(v.agent.output());
          assert.equal((await fetch(`http://${v.control}/healthz`)).status, 200);
        },
        { timeoutMs: 20_000 },
      );
  });

  after(async () => {
    await net.cleanup();
  });

  it('the higher priority takes the VIP and serves; the backup runs no dnsmasq', async () => {
    const [a, b] = vrs as [Vr, Vr];
    const ra = await pushFull(a.control, secret, stateFor('10.1.0.2', 200));
    const rb = await pushFull(b.control, secret, stateFor('10.1.0.3', 100));
    assert.ok(ra.ok && rb.ok, JSON.stringify([ra, rb]));
    await eventually(
      async () => {
        const sa = await getStatus(a.control, secret);
        const sb = await getStatus(b.control, secret);
        assert.equal(sa.role, 'primary');
        assert.equal(sa.dnsmasq.running, true);
        assert.equal(sa.keepalived?.running, true);
        assert.equal(sb.role, 'backup');
        assert.equal(sb.dnsmasq.running, false);
        assert.equal(sb.keepalived?.running, true);
      },
      { timeoutMs: 10_000, what: 'a primary, b backup' },
    );
    assert.deepEqual((await dig(guest, 'vm1', '10.1.0.1')).answers, ['10.1.0.11']);
    const md = await execIn(guest, [
      'curl',
      '-s',
      '--max-time',
      '2',
      'http://10.1.0.1/latest/meta-data/local-ipv4',
    ]);
    assert.equal(md.stdout, '10.1.0.11');
    // The VIP is the first address, so dnsmasq's server identifier (what guests renew against) is the VIP.
    assert.deepEqual(await ipv4s(a.ns), ['10.1.0.1/16']);
    assert.deepEqual(await ipv4s(b.ns), []);
    const dhcp = await net.udhcpc(guest, 'eth0');
    assert.equal(dhcp.lease?.ip, '10.1.0.11', dhcp.output);
    assert.equal(dhcp.lease?.serverId, '10.1.0.1', 'guests renew against the VIP, not a router of the pair');
    assert.equal(dhcp.lease?.router, '10.1.0.1');
  });

  it('a killed primary agent leaves keepalived and dnsmasq serving; a new one adopts both', async () => {
    const a = vrs[0]!;
    const before = await getStatus(a.control, secret);
    a.agent.child.kill('SIGKILL');
    await a.agent.exited;
    assert.deepEqual((await dig(guest, 'vm1', '10.1.0.1')).answers, ['10.1.0.11'], 'still served');
    a.agent = spawnAgent(a.ns, a.control, a.dataDir);
    await eventually(async () => assert.equal((await fetch(`http://${a.control}/healthz`)).status, 200), {
      timeoutMs: 20_000,
    });
    const after = await eventually(async () => {
      const s = await getStatus(a.control, secret);
      assert.equal(s.generation, before.generation);
      assert.equal(s.conditions.find((c) => c.type === 'Progressing')?.status, false);
      return s;
    });
    assert.equal(after.role, 'primary');
    assert.equal(after.hash, before.hash);
    assert.equal(after.dnsmasq.pid, before.dnsmasq.pid);
    assert.equal(after.keepalived?.pid, before.keepalived?.pid);
    assert.equal((await getStatus(vrs[1]!.control, secret)).role, 'backup');
  });

  it('stopping the primary agent moves the VIP, DNS and metadata to the backup', async () => {
    const [a, b] = vrs as [Vr, Vr];
    await a.agent.stop(5000);
    await eventually(
      async () => {
        const sb = await getStatus(b.control, secret);
        assert.equal(sb.role, 'primary');
        assert.equal(sb.dnsmasq.running, true);
        assert.deepEqual((await dig(guest, 'vm1', '10.1.0.1')).answers, ['10.1.0.11']);
      },
      { timeoutMs: 10_000, what: 'b takes over' },
    );
    const md = await execIn(guest, [
      'curl',
      '-s',
      '--max-time',
      '2',
      'http://10.1.0.1/latest/meta-data/local-ipv4',
    ]);
    assert.equal(md.stdout, '10.1.0.11');
    await eventually(async () => assert.deepEqual(await ipv4s(b.ns), ['10.1.0.1/16']));
    assert.equal((await getStatus(b.control, secret)).role, 'primary');
  });
});

async function ipv4s(ns: string): Promise<string[]> {
  const r = await execIn(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(/\s+/)[3]!);
}
