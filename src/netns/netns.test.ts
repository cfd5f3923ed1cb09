// The toolkit itself, against a plain dnsmasq in a namespace: real DHCP to udhcpc and dhclient, dig, curl,
// and a cleanup that leaves nothing behind. Budget: well under 30 s.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  DhcpProbe,
  TestNet,
  defaultGateway,
  dig,
  eventually,
  execIn,
  httpGet,
  leaseHistory,
  listLinks,
  listNamespaces,
  readLease,
  resolvConfPath,
  stateDir,
  withHostname,
  type SpawnedProcess,
} from './index.js';

const MAC1 = '02:5e:00:00:00:11';
const MAC2 = '02:5e:00:00:00:12';
const MAC3 = '02:5e:00:00:00:13';
const MACX = '02:5e:00:00:00:99';

describe('netns toolkit with a plain dnsmasq', () => {
  const net = new TestNet();
  let srv = '';
  let dnsmasq: SpawnedProcess | undefined;
  let hostResolv = '';
  let leaseFile = '';
  const guests: Record<string, string> = {};

  before(async () => {
    hostResolv = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
    const br = await net.bridge('br');
    srv = await net.namespace('srv');
    await net.veth({ ns: srv, bridge: br, addresses: ['10.77.0.1/24'] });
    for (const [role, mac] of [
      ['g1', MAC1],
      ['g2', MAC2],
      ['g3', MAC3],
      ['gx', MACX],
    ] as const) {
      guests[role] = await net.namespace(role);
      await net.veth({ ns: guests[role], bridge: br, mac });
    }
    const dir = await net.tempDir('dnsmasq');
    leaseFile = join(dir, 'leases');
    await writeFile(join(dir, 'index.html'), 'hello from srv');
    dnsmasq = net.spawnIn(srv, [
      'dnsmasq',
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      `--pid-file=${dir}/dnsmasq.pid`,
      `--dhcp-leasefile=${dir}/leases`,
      '--user=root',
      '--no-hosts',
      '--no-resolv',
      '--bind-interfaces',
      '--interface=eth0',
      '--except-interface=lo',
      '--dhcp-range=10.77.0.0,static,255.255.255.0,1h',
      '--dhcp-ignore=tag:!known',
      // No names here: the names in the lease file can only come from the clients (option 12).
      `--dhcp-host=${MAC1},10.77.0.11`,
      `--dhcp-host=${MAC2},10.77.0.12`,
      // A secondary NIC: empty router/DNS options, as CloudStack renders non-default NICs.
      `--dhcp-host=${MAC3},set:nodef,10.77.0.13,vm3`,
      '--dhcp-option=tag:nodef,3',
      '--dhcp-option=tag:nodef,6',
      '--dhcp-option=option:router,10.77.0.1',
      '--dhcp-option=option:dns-server,10.77.0.1',
      '--domain=t.internal',
      '--local=/t.internal/',
      '--host-record=vm2.t.internal,vm2,10.77.0.12',
      '--log-facility=-',
    ]);
    // A one-file web server beside dnsmasq so httpGet has something real to fetch.
    net.spawnIn(srv, ['busybox', 'httpd', '-f', '-p', '10.77.0.1:80', '-h', dir]);
    await eventually(
      async () => {
        const r = await dig(srv, 'vm2', '10.77.0.1');
        assert.equal(r.status, 'NOERROR', dnsmasq?.output());
      },
      { what: 'dnsmasq answering DNS' },
    );
  });

  after(async () => {
    await net.cleanup();
  });

  it('udhcpc gets the configured address, router, DNS and domain, and sets only the namespace resolv.conf', async () => {
    const g1 = guests.g1!;
    const r = await net.udhcpc(g1, 'eth0', { hostname: 'vm1' });
    assert.ok(r.lease, r.output);
    assert.equal(r.lease.ip, '10.77.0.11');
    assert.equal(r.lease.mask, '255.255.255.0');
    assert.equal(r.lease.router, '10.77.0.1');
    assert.deepEqual(r.lease.dns, ['10.77.0.1']);
    assert.equal(r.lease.domain, 't.internal');
    assert.equal(r.lease.leaseSeconds, 3600);
    assert.equal(await defaultGateway(g1), '10.77.0.1');
    const resolv = await readFile(resolvConfPath(g1), 'utf8');
    assert.match(resolv, /^search t\.internal$/m);
    assert.match(resolv, /^nameserver 10\.77\.0\.1$/m);
    // inside the namespace /etc/resolv.conf is ours; the host's is untouched
    const inside = await execIn(g1, ['cat', '/etc/resolv.conf']);
    assert.equal(inside.stdout, resolv);
    assert.equal(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''), hostResolv);
    assert.ok((await leaseHistory(g1)).some((l) => l.includes('bound ip=10.77.0.11')));
  });

  it('dhclient gets the configured address, router, DNS and domain', async () => {
    const g2 = guests.g2!;
    const r = await net.dhclient(g2, 'eth0', { hostname: 'vm2' });
    assert.ok(r.lease, r.output);
    assert.equal(r.lease.client, 'dhclient');
    assert.equal(r.lease.ip, '10.77.0.12');
    assert.equal(r.lease.router, '10.77.0.1');
    assert.deepEqual(r.lease.dns, ['10.77.0.1']);
    assert.equal(r.lease.domain, 't.internal');
    assert.equal(await defaultGateway(g2), '10.77.0.1');
    assert.match(await readFile(resolvConfPath(g2), 'utf8'), /^nameserver 10\.77\.0\.1$/m);
    assert.equal(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''), hostResolv);
  });

  it('a NIC with empty router/DNS options gets an address and no default route', async () => {
    const g3 = guests.g3!;
    const r = await net.udhcpc(g3, 'eth0');
    assert.ok(r.lease, r.output);
    assert.equal(r.lease.ip, '10.77.0.13');
    assert.deepEqual(r.lease.routers, []);
    assert.equal(await defaultGateway(g3), undefined);
  });

  it("each guest sends its own hostname, not the host machine's", async () => {
    await eventually(async () => {
      const leases = await readFile(leaseFile, 'utf8');
      assert.match(leases, new RegExp(`${MAC1} 10\\.77\\.0\\.11 vm1 `));
      assert.match(leases, new RegExp(`${MAC2} 10\\.77\\.0\\.12 vm2 `));
    });
    const h = await execIn(guests.g1!, withHostname('vm1', ['hostname']));
    assert.equal(h.stdout.trim(), 'vm1');
  });

  it('an unknown MAC gets no answer', async () => {
    const r = await net.udhcpc(guests.gx!, 'eth0', { discoverAttempts: 1, discoverTimeoutSec: 1 });
    assert.equal(r.lease, undefined);
  });

  it('dig and curl run inside the guest', async () => {
    const g1 = guests.g1!;
    const a = await dig(g1, 'vm2', '10.77.0.1');
    assert.equal(a.status, 'NOERROR');
    assert.deepEqual(a.answers, ['10.77.0.12']);
    const fq = await dig(g1, 'vm2.t.internal'); // through the namespace's resolv.conf
    assert.deepEqual(fq.answers, ['10.77.0.12']);
    const nx = await dig(g1, 'nobody.t.internal', '10.77.0.1');
    assert.equal(nx.status, 'NXDOMAIN');
    const h = await httpGet(g1, 'http://10.77.0.1/index.html');
    assert.equal(h.status, 200);
    assert.equal(h.body, 'hello from srv');
    const missing = await httpGet(g1, 'http://10.77.0.1/nope');
    assert.equal(missing.status, 404);
  });

  it('a kept-running udhcpc is tracked by PID and renews on SIGUSR1', async () => {
    const g1 = guests.g1!;
    const r = await net.udhcpc(g1, 'eth0', { keepRunning: true });
    assert.ok(r.lease && r.process, r.output);
    const before = (await leaseHistory(g1)).length;
    process.kill(r.process.pid, 'SIGUSR1');
    await eventually(async () => {
      const l = await readLease(g1);
      assert.equal(l?.event, 'renew');
      assert.ok((await leaseHistory(g1)).length > before);
    });
    await r.process.stop();
  });

  it('the raw DHCP probe leases many MACs at once and counts DNS answers', async () => {
    const pr = await net.namespace('pr');
    await net.veth({ ns: pr, bridge: net.name('br'), addresses: ['10.77.0.250/24'] });
    const probe = await DhcpProbe.start(pr, { track: (p) => net.trackPid(p.pid) });
    try {
      await probe.dnsStart('10.77.0.1', 'vm2.t.internal', { intervalMs: 5, timeoutMs: 500 });
      const [a, b, x] = await Promise.all([
        probe.lease(MAC1),
        probe.lease(MAC2),
        probe.lease(MACX, { timeoutMs: 300, retryMs: 50 }),
      ]);
      assert.ok(a.ok && b.ok, JSON.stringify([a, b]));
      assert.equal(a.ip, '10.77.0.11');
      assert.equal(b.ip, '10.77.0.12');
      assert.equal(a.router, '10.77.0.1');
      assert.equal(a.domain, 't.internal');
      assert.equal(x.ok, false);
      assert.equal(x.timeout, true);
      const stats = await probe.dnsStop();
      assert.ok(stats.sent > 10, JSON.stringify(stats));
      assert.equal(stats.lost, 0);
      assert.equal(stats.answered, stats.sent);
    } finally {
      await probe.close();
    }
  });

  it('cleanup removes namespaces, links, /etc/netns dirs and state, and stops processes', async () => {
    const t = new TestNet();
    const ns = await t.namespace('c1');
    const br = await t.bridge('br');
    const v = await t.veth({ ns, bridge: br });
    const sleeper = t.spawnIn(ns, ['sleep', '60']);
    assert.ok((await listNamespaces()).includes(ns));
    await t.cleanup();
    assert.ok(sleeper.hasExited());
    assert.ok(!(await listNamespaces()).includes(ns));
    const links = await listLinks();
    assert.ok(!links.includes(br) && !links.includes(v.outerName));
    assert.ok(!existsSync(`/etc/netns/${ns}`));
    assert.ok(!existsSync(stateDir(ns)));
  });
});
