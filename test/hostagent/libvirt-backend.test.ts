// Issue 19: the libvirt VM backend with real parts. A network namespace stands for a hypervisor host: its own
// libvirtd (the backend's), a bridge with an uplink to the lab's guest segment, where a real `stacknet
// router-agent` (test/agent/vr-lab.ts) serves DHCP, DNS, metadata and the password server. The VMs boot the
// project's test template (QEMU emulation unless /dev/kvm works) and report on their serial console what they got.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostVmSpec } from '../../src/hosts/protocol.js';
import { LibvirtBackend, type LibvirtBackendOptions } from '../../src/hostagent/libvirt/index.js';
import { parseGuestConsole, type GuestReport } from '../../src/hostagent/libvirt/guest-console.js';
import { runningLibvirtd, libvirtdPaths } from '../../src/hostagent/libvirt/libvirtd.js';
import { buildTestTemplate, type TestTemplate } from '../../src/hostagent/libvirt/test-template.js';
import { eventually, execIn, listLinks, run } from '../../src/netns/index.js';
import { VrLab, type RouterUnderTest } from '../agent/vr-lab.js';

const NETWORK = 7;
const mac = (n: number) => `02:5b:00:00:00:${n.toString(16).padStart(2, '0')}`;
const uuid = (n: number) => `5b5b0000-0000-4000-8000-0000000000${String(n).padStart(2, '0')}`;
// The backend's log, kept for the assertions that depend on what it did (a restarted daemon says why).
const logged: string[] = [];
const log = (m: string) => {
  logged.push(m);
  if (process.env.STACKNET_TEST_VERBOSE) console.error(m);
};

describe('libvirt backend: VMs of the test template on a host namespace, served by a real router agent', () => {
  const lab = new VrLab({ cidr: '10.62.0.0/24', domain: 'lv.internal' });
  let vr: RouterUnderTest;
  let template: TestTemplate;
  let hostNs = '';
  let opts: LibvirtBackendOptions;
  let backend: LibvirtBackend;
  const bridges = new Map<number, string>();
  const figures: Record<string, unknown> = {};

  const vmSpec = (n: number, state: 'Running' | 'Stopped' = 'Running'): HostVmSpec => ({
    id: n,
    uuid: uuid(n),
    instanceName: `i-2-${n}-VM`,
    hostname: `vm${n}`,
    state,
    backend: 'libvirt',
    cpus: 1,
    memoryMiB: 128,
    template: {
      id: 201,
      name: 'stacknet-test',
      url: template.url,
      format: 'kernel-initrd',
      checksum: template.checksum,
    },
    nics: [
      {
        id: 100 + n,
        mac: mac(n),
        ipv4s: [lab.ip(10 + n)],
        ipv6: null,
        networkId: NETWORK,
        deviceId: 0,
        isDefault: true,
      },
    ],
  });

  /** Waits for the guest's report to satisfy `done`; fails with its console when it does not in time. */
  const report = async (vm: HostVmSpec, done: (r: GuestReport) => boolean, timeoutMs = 60_000) => {
    let last = '';
    return eventually(
      async () => {
        last = (await backend.console(vm.instanceName)) ?? '';
        const r = parseGuestConsole(last);
        if (!done(r)) throw new Error('not yet');
        return r;
      },
      { timeoutMs, intervalMs: 50, what: `${vm.instanceName}'s console` },
    ).catch((e: unknown) => {
      throw new Error(
        `${String(e)}\n--- console of ${vm.instanceName}\n${last.slice(-4000)}\n${vr.log().slice(-2000)}`,
      );
    });
  };

  /** ensure() → the STACKNET-LEASE line, in ms, and the guest's own uptime at its lease. */
  const bootTimed = async (vm: HostVmSpec) => {
    const t0 = Date.now();
    await backend.ensure(vm, bridges);
    const ensured = Date.now() - t0;
    const r = await report(vm, (x) => x.lease !== undefined && x.leaseUptime !== undefined);
    return { ensureMs: ensured, leaseMs: Date.now() - t0, guestLeaseUptime: r.leaseUptime!, report: r };
  };

  const rssMiB = async (vm: HostVmSpec) => {
    const pid = await backend.qemuPid(vm.instanceName);
    assert.ok(pid, `no qemu pid for ${vm.instanceName}`);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024);
  };

  before(async () => {
    // The template build (apt-get download, cached in /var/cache/stacknet) and the libvirtd start (a cold one
    // probes QEMU for seconds) run while the lab comes up.
    const built = buildTestTemplate({ log });
    built.catch(() => {}); // awaited below; never an unhandled rejection if the lab fails first
    await lab.setup();
    hostNs = await lab.net.namespace('host');
    const bridge = await lab.net.bridge('hbr', { ns: hostNs });
    await lab.net.veth({ ns: hostNs, ifname: 'uplink', bridge: lab.bridge });
    await run(['ip', '-n', hostNs, 'link', 'set', 'uplink', 'master', bridge, 'up']);
    bridges.set(NETWORK, bridge);
    // Short: the libvirt socket path must fit a unix socket address.
    const dataDir = await lab.net.tempDir('lv');
    opts = { dataDir, prefix: `${lab.net.prefix}-`, kvm: false, netns: hostNs, log };
    backend = new LibvirtBackend(opts);
    const t0 = Date.now();
    const started = backend.start().then(() => {
      figures.libvirtdStartMs = Date.now() - t0;
    });
    started.catch(() => {});
    vr = await lab.router('vr');
    const state = lab.state(
      1,
      [1].map((n) => lab.host(10 + n, mac(n), `vm${n}`)),
    );
    state.metadata = Object.fromEntries(
      [1].map((n) => [
        lab.ip(10 + n),
        {
          userData: Buffer.from(`#cloud-config\n# vm${n}'s own user data\n`).toString('base64'),
          metaData: {
            'instance-id': uuid(n),
            'local-hostname': `vm${n}`,
            'local-ipv4': lab.ip(10 + n),
            'public-keys': `ssh-ed25519 AAAAkey${n} one\nssh-ed25519 AAAAkey${n} two`,
          },
        },
      ]),
    );
    state.passwords = { [lab.ip(11)]: 'pw-of-vm1' };
    const pushed = await vr.push(state);
    assert.ok(pushed.ok, `push: ${JSON.stringify(pushed)}\n${vr.log()}`);
    template = await built;
    await started;
  });

  after(async () => {
    // Domains first (their qemu processes), then the daemon; the namespace teardown kills anything left.
    try {
      if (backend) {
        for (const vm of await backend.list()) await backend.destroy(vm.instanceName);
        await backend.close();
      }
    } finally {
      await lab.cleanup();
    }
    if (Object.keys(figures).length) console.log(JSON.stringify({ bench: 'libvirt-backend', ...figures }));
  });

  it('boots a VM whose console shows the address, gateway, DNS and hostname the router has for its MAC, its metadata, user-data and password', async () => {
    const vm = vmSpec(1);
    const t = await bootTimed(vm);
    const r = await report(vm, (x) => x.readyUptime !== undefined);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.lease, {
      ip: lab.ip(11),
      mask: '255.255.255.0',
      router: lab.ip(1),
      dns: [lab.ip(1)],
      hostname: 'vm1',
    });
    assert.equal(r.meta['instance-id'], vm.uuid);
    assert.equal(r.meta['local-hostname'], 'vm1');
    assert.equal(r.meta['local-ipv4'], lab.ip(11));
    assert.equal(r.meta['public-keys'], 'ssh-ed25519 AAAAkey1 one\nssh-ed25519 AAAAkey1 two');
    assert.equal(r.userData, "#cloud-config\n# vm1's own user data\n");
    assert.equal(r.password, 'pw-of-vm1');
    // The guest acknowledged it, as cloud-init does: the router will not hand it out again.
    assert.deepEqual((await vr.status()).savedPasswords, [lab.ip(11)]);
    // It answers ping from the router, over the host's bridge and uplink.
    const ping = await execIn(vr.ns, ['ping', '-c', '1', '-W', '5', lab.ip(11)]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    // The port is named after the NIC and sits on the host's bridge.
    const port = await execIn(hostNs, ['ip', '-o', 'link', 'show', 'dev', 'vn101']);
    assert.match(port.stdout, new RegExp(`master ${bridges.get(NETWORK)}`));
    assert.deepEqual(await backend.list(), [{ instanceName: vm.instanceName, state: 'Running' }]);
    figures.oneVm = {
      ensureMs: t.ensureMs,
      ensureToLeaseMs: t.leaseMs,
      guestUptimeAtInit: r.initUptime,
      guestUptimeAtLease: t.guestLeaseUptime,
      guestUptimeReady: r.readyUptime,
      rssMiB: await rssMiB(vm),
    };
  });

  it('a backend restarted on the same data dir reuses its libvirtd and leaves the running domain untouched', async () => {
    const vm = vmSpec(1);
    const daemonPid = await runningLibvirtd(libvirtdPaths(opts.dataDir));
    const qemuPid = await backend.qemuPid(vm.instanceName);
    const consoleBefore = await backend.console(vm.instanceName);
    assert.ok(daemonPid && qemuPid);
    const from = logged.length;
    backend = new LibvirtBackend(opts);
    await backend.start();
    assert.equal(
      await runningLibvirtd(libvirtdPaths(opts.dataDir)),
      daemonPid,
      `the daemon was not reused; the backend's log before and during its restart:\n${logged.join('\n')}\n(restart from line ${from})`,
    );
    assert.deepEqual(await backend.list(), [{ instanceName: vm.instanceName, state: 'Running' }]);
    await backend.ensure(vm, bridges);
    // A changed offering is defined for the next start; the running guest is not restarted for it.
    await backend.ensure({ ...vm, memoryMiB: 160 }, bridges);
    assert.equal(await backend.qemuPid(vm.instanceName), qemuPid);
    assert.equal(await backend.console(vm.instanceName), consoleBefore);
    const inactive = await backend.virsh.run(['dumpxml', '--inactive', backend.domainName(vm.instanceName)]);
    assert.match(inactive, /<memory unit='KiB'>163840<\/memory>/);
    const live = await backend.virsh.run(['dumpxml', backend.domainName(vm.instanceName)]);
    assert.match(live, /<memory unit='KiB'>131072<\/memory>/);
  });

  it('Stopped shuts the domain off; Running again starts it again', async () => {
    const vm = vmSpec(1);
    await backend.ensure({ ...vm, state: 'Stopped' }, bridges);
    assert.equal(await backend.virsh.domstate(backend.domainName(vm.instanceName)), 'shut off');
    assert.deepEqual(await backend.list(), [{ instanceName: vm.instanceName, state: 'Stopped' }]);
    assert.equal(await backend.qemuPid(vm.instanceName), null);
    // Idempotent: a second Stopped changes nothing.
    await backend.ensure({ ...vm, state: 'Stopped' }, bridges);
    // Running again starts the same domain (that its guest boots and leases again is the API e2e test's:
    // test/e2e/hosts-libvirt.test.ts; a boot under emulation costs seconds, so it is not waited for here).
    await backend.ensure(vm, bridges);
    assert.equal(await backend.virsh.domstate(backend.domainName(vm.instanceName)), 'running');
    assert.ok(await backend.qemuPid(vm.instanceName));
    assert.deepEqual(await backend.list(), [{ instanceName: vm.instanceName, state: 'Running' }]);
  });

  it('destroy removes the domain, its files and its port', async () => {
    const vm = vmSpec(1);
    await backend.destroy(vm.instanceName);
    assert.equal(await backend.virsh.domstate(backend.domainName(vm.instanceName)), null);
    assert.deepEqual(await backend.list(), []);
    assert.equal(await backend.console(vm.instanceName), null);
    assert.ok(!existsSync(join(opts.dataDir, 'vms', vm.instanceName)));
    assert.ok(!(await listLinks(hostNs)).includes('vn101'));
    // Destroying what is gone is fine (the agent may retry).
    await backend.destroy(vm.instanceName);
  });

  it('with an existing libvirt (uri) it starts no daemon, lists only its own domains and never touches others', async () => {
    const paths = libvirtdPaths(opts.dataDir);
    const daemon = await runningLibvirtd(paths);
    const other = new LibvirtBackend({
      dataDir: await lab.net.tempDir('lv2'),
      prefix: 'ext-',
      kvm: false,
      uri: backend.virsh.uri,
      log,
    });
    await other.start();
    const vm = vmSpec(9, 'Stopped');
    await other.ensure(vm, bridges);
    assert.deepEqual(await other.list(), [{ instanceName: vm.instanceName, state: 'Stopped' }]);
    // A domain of that name that stacknet did not make (no metadata) is refused, not redefined or removed.
    const foreign = join(opts.dataDir, 'foreign.xml');
    await writeFile(
      foreign,
      "<domain type='qemu'><name>ext-i-2-8-VM</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>",
    );
    await other.virsh.run(['define', foreign]);
    await assert.rejects(other.ensure(vmSpec(8, 'Stopped'), bridges), /was not made by stacknet/);
    // Running too: a domain the backend has not seen takes the new VM's path (`create ; define`, no domstate first),
    // which must neither start nor redefine someone else's domain of that name.
    await assert.rejects(other.ensure(vmSpec(8), bridges), /was not made by stacknet/);
    assert.equal(await other.virsh.domstate('ext-i-2-8-VM'), 'shut off');
    assert.doesNotMatch(await other.virsh.run(['dumpxml', '--inactive', 'ext-i-2-8-VM']), /stacknet/);
    await assert.rejects(other.destroy('i-2-8-VM'), /was not made by stacknet/);
    assert.deepEqual(await other.list(), [{ instanceName: vm.instanceName, state: 'Stopped' }]);
    await other.virsh.run(['undefine', 'ext-i-2-8-VM']);
    await other.destroy(vm.instanceName);
    assert.deepEqual(await other.list(), []);
    await other.close();
    assert.equal(await runningLibvirtd(paths), daemon, 'close() stopped a daemon it did not start');
  });

  it('prefetch fetches and verifies a template into the cache ahead of use; a wrong checksum is refused', async () => {
    const t = { ...vmSpec(1).template, id: 203 };
    await backend.prefetch(t);
    const dir = join(opts.dataDir, 'templates', `203-sha256-${template.checksum}`);
    assert.ok(existsSync(join(dir, '.complete')), dir);
    // The kernel the guests boot: Debian 12's cloud kernel (LZ4, CONFIG_PVH=y) unpacked to the ELF QEMU enters at
    // its PVH entry (kernel-image.ts).
    assert.equal(template.kernel, 'pvh-elf', template.kernelWhy);
    const magic = (await readFile(join(dir, 'vmlinuz'))).subarray(0, 4).toString('latin1');
    assert.equal(magic, '\x7fELF');
    await assert.rejects(
      backend.prefetch({ ...t, id: 204, checksum: `{SHA-256}${'0'.repeat(64)}` }),
      /registered as 0{64}/,
    );
    assert.equal(existsSync(join(opts.dataDir, 'templates', `204-sha256-${'0'.repeat(64)}`)), false);
  });

  it('a qcow2 template: the VM gets its own overlay on the cached image, removed with it', async () => {
    const img = join(await lab.net.tempDir('img'), 'base.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', img, '64M']);
    const vm: HostVmSpec = {
      ...vmSpec(7, 'Stopped'),
      template: { id: 202, name: 'disk', url: `file://${img}`, format: 'qcow2', checksum: null },
    };
    await backend.ensure(vm, bridges);
    const overlay = join(opts.dataDir, 'vms', vm.instanceName, 'disk.qcow2');
    const info = JSON.parse((await run(['qemu-img', 'info', '--output=json', overlay])).stdout) as {
      format: string;
      'backing-filename': string;
    };
    assert.equal(info.format, 'qcow2');
    assert.match(
      info['backing-filename'],
      new RegExp(`^${opts.dataDir}/templates/202-url-[0-9a-f]+/disk.qcow2$`),
    );
    const xml = await backend.virsh.run(['dumpxml', backend.domainName(vm.instanceName)]);
    assert.ok(xml.includes(`<source file='${overlay}'`), xml);
    assert.deepEqual(await backend.list(), [{ instanceName: vm.instanceName, state: 'Stopped' }]);
    await backend.destroy(vm.instanceName);
    assert.ok(!existsSync(overlay));
    assert.deepEqual(await backend.list(), []);
  });
});
