/**
 * Issue 17 item 3 end to end on the netns driver: `stacknet doctor vm` (the real CLI) and diagnoseVirtualMachine
 * (python `cs`) against a spawned `stacknet server --driver netns`. A healthy VM with a static NAT is OK on
 * every link; then each link is broken on purpose, as an operator would find it, and the doctor must name THAT
 * link as the first FAIL, and be healthy again once it is repaired:
 *   (c) the VM's line removed from dnsmasq's hosts file by hand   → dhcp-files
 *   (d) the guest releases its lease (udhcpc SIGUSR2)             → lease
 *   (f) the DNS dnsmasq frozen (SIGSTOP): no DNS answer           → dns
 *   (g) the static NAT element deleted from nftables by hand      → nat
 *   (e) the port's "source ip" anti-spoofing rule deleted by hand → port-rules
 *   (b) a NIC row the router must set aside (a multicast MAC)     → applied
 *   (a) stopRouter                                                → router
 * One network, two VMs, reused across the cases (each repairs what it broke).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient as Client, CsRig } from '../api/harness.js';
import { eventually, execIn, readLease, runIn } from '../../src/netns/index.js';
import { NetnsDriver } from '../../src/drivers/netns.js';
import { openStore } from '../../src/store/db.js';
import type { Store } from '../../src/store/db.js';
import { createTestZone } from '../networking/zone-fixture.js';

const isRoot = process.getuid?.() === 0;
const root = new URL('../..', import.meta.url).pathname;

/* eslint-disable @typescript-eslint/no-explicit-any */

describe(
  'stacknet doctor on the netns driver: each broken link is named',
  { skip: !isRoot && 'needs root' },
  () => {
    let rig: Partial<CsRig> = {};
    let admin: Client;
    let store: Store;
    const prefix = `sn-${randomBytes(3).toString('hex')}-`;
    const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-doctor-'));
    const ctl = `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`;
    const id: Record<string, string> = {};
    const vms: Record<string, { id: string; ip: string; mac: string; ns: string; instance: string }> = {};
    let router: { id: string; name: string; ns: string; dir: string };
    let staticIp = '';

    const doctor = async (vm: string) =>
      ok(await admin('diagnoseVirtualMachine', { id: vms[vm]!.id }), 'doctor').diagnosis;
    const statuses = (d: any) => d.steps.map((s: any) => `${s.status} ${s.step}`).join(', ');
    /** The doctor names `step` as the first broken link (waiting a little for a break to take effect). */
    const brokenAt = (vm: string, step: string) =>
      eventually(
        async () => {
          const d = await doctor(vm);
          if (d.firstfailure !== step) throw new Error(`first failure ${d.firstfailure}: ${statuses(d)}`);
          return d;
        },
        { timeoutMs: 20_000, what: `the doctor to name ${step} for ${vm}` },
      );
    const healthy = (vm: string) =>
      eventually(
        async () => {
          const d = await doctor(vm);
          if (!d.healthy)
            throw new Error(
              `${d.firstfailure}: ${JSON.stringify(d.steps.find((s: any) => s.status === 'FAIL'))}`,
            );
          return d;
        },
        { timeoutMs: 30_000, what: `${vm} to be healthy again` },
      );
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [join(root, 'bin/stacknet.js'), 'doctor', ...args], {
        encoding: 'utf8',
        env: {
          ...process.env,
          STACKNET_URL: rig.server!.url,
          STACKNET_API_KEY: rig.server!.apiKey,
          STACKNET_SECRET_KEY: rig.server!.secretKey,
        },
      });
    const step = (d: any, name: string) => d.steps.find((s: any) => s.step === name);

    const deploy = async (name: string) => {
      const vm = ok(
        await admin(
          'deployVirtualMachine',
          { serviceofferingid: id.so, templateid: id.tpl, zoneid: id.zone, networkids: id.net, name },
          { fetch_result: true },
        ),
        `deploy ${name}`,
      ).virtualmachine;
      vms[name] = {
        id: vm.id,
        ip: vm.nic[0].ipaddress,
        mac: vm.nic[0].macaddress,
        ns: `${prefix}${vm.instancename}`,
        instance: vm.instancename,
      };
      await eventually(
        async () => {
          const l = await readLease(vms[name]!.ns, 'eth0');
          if (!l || l.ip !== vms[name]!.ip) throw new Error('no lease yet');
          return l;
        },
        { timeoutMs: 20_000, what: `${name} to hold ${vms[name]!.ip} over DHCP` },
      );
    };

    before(async () => {
      rig = await startCsRig('sqlite', {
        STACKNET_DRIVER: 'netns',
        STACKNET_DATA_DIR: dataDir,
        STACKNET_NETNS_PREFIX: prefix,
        STACKNET_CONTROL_CIDR: ctl,
      });
      admin = rig.admin!;
      store = await openStore(rig.tdb!.url);
      id.zone = (
        await createTestZone(admin, {
          name: 'z1',
          vlans: '300-399',
          publicVlan: '60',
          publicPrefix: '198.51.100',
          guestCidr: '10.7.0.0/16',
        })
      ).zone;
      id.so = ok(await admin('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0].id;
      id.tpl = ok(await admin('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
      const off = ok(
        await admin('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
        'offerings',
      ).networkoffering[0];
      id.net = ok(
        await admin('createNetwork', {
          zoneid: id.zone,
          name: 'docnet',
          displaytext: 'docnet',
          networkofferingid: off.id,
          gateway: '10.7.1.1',
          netmask: '255.255.255.0',
        }),
        'createNetwork',
      ).network.id;
      await deploy('web1');
      await deploy('web2');
      const r = ok(await admin('listRouters', { networkid: id.net }), 'listRouters').router[0];
      router = {
        id: r.id,
        name: r.name,
        ns: `${prefix}${r.name}`,
        dir: join(dataDir, 'netns', 'routers', r.name, 'data'),
      };
      const ip = ok(
        await admin('associateIpAddress', { networkid: id.net }, { fetch_result: true }),
        'associate',
      ).ipaddress;
      staticIp = ip.ipaddress;
      ok(
        await admin('enableStaticNat', { ipaddressid: ip.id, virtualmachineid: vms.web1!.id }),
        'enableStaticNat',
      );
    });

    after(async () => {
      await store?.close();
      await stopCsRig(rig);
      await NetnsDriver.cleanup(join(dataDir, 'netns'));
      rmSync(dataDir, { recursive: true, force: true });
    });

    test('a healthy VM with a static NAT: every link OK (stacknet doctor exits 0)', async () => {
      const d = await healthy('web1');
      assert.equal(statuses(d), d.steps.map((s: any) => `OK ${s.step}`).join(', '));
      assert.match(
        step(d, 'lease').evidence,
        new RegExp(`${vms.web1!.ip} leased to ${vms.web1!.mac}.*DHCPACK`),
      );
      assert.match(step(d, 'dns').evidence, new RegExp(`web1 -> ${vms.web1!.ip.replace(/\./g, '\\.')}`));
      assert.match(step(d, 'nat').evidence, new RegExp(`static_dnat: ${staticIp} : ${vms.web1!.ip}`));
      const out = cli('vm', 'web1');
      console.log(out.stdout);
      assert.equal(out.status, 0, out.stdout + out.stderr);
      assert.match(out.stdout, /^OK\s+database\s+i-/m);
      const json = cli('vm', vms.web1!.id, '--json');
      assert.equal(JSON.parse(json.stdout).healthy, true);
      const net = cli('network', id.net!);
      assert.equal(net.status, 0, net.stdout);
    });

    test('(c) the MAC removed from dnsmasq hosts file by hand: dhcp-files', async () => {
      const files = [
        join(router.dir, 'dhcphosts.txt'),
        ...readdirSync(join(router.dir, 'dhcphosts.d')).map((f) => join(router.dir, 'dhcphosts.d', f)),
      ];
      const file = files.find((f) => readFileSync(f, 'utf8').includes(vms.web1!.mac))!;
      const before = readFileSync(file, 'utf8');
      writeFileSync(
        file,
        before
          .split('\n')
          .filter((l) => !l.startsWith(vms.web1!.mac))
          .join('\n'),
      );
      try {
        const d = await brokenAt('web1', 'dhcp-files');
        assert.match(step(d, 'dhcp-files').evidence, new RegExp(`no hosts line ${vms.web1!.mac}`));
        assert.match(step(d, 'dhcp-files').advice, /rebootRouter/);
        const out = cli('vm', 'web1');
        console.log(out.stdout);
        assert.equal(out.status, 1);
        assert.match(out.stdout, /^FAIL\s+dhcp-files\s+/m);
        assert.match(out.stdout, /-> rebootRouter/);
        const net = cli('network', id.net!);
        assert.equal(net.status, 1);
        assert.match(net.stdout, /broken: web1 .* at dhcp-files/);
      } finally {
        writeFileSync(file, before);
      }
      await healthy('web1');
    });

    test('(d) the guest released its lease: lease', async () => {
      const pid = Number(
        readFileSync(join(dataDir, 'netns', 'vms', vms.web2!.instance, 'udhcpc.pid'), 'utf8'),
      );
      process.kill(pid, 'SIGUSR2'); // udhcpc: release the lease, then wait
      const d = await brokenAt('web2', 'lease');
      assert.match(
        step(d, 'lease').evidence,
        new RegExp(`no lease for ${vms.web2!.mac}; last DHCP line: .*DHCPRELEASE`),
      );
      process.kill(pid, 'SIGUSR1'); // renew
      await healthy('web2');
    });

    test('(f) the router does not answer DNS: dns', async () => {
      const st = ok(await admin('getRouterHealthCheckResults', { routerid: router.id }), 'health');
      assert.ok(st);
      // DNS has a dnsmasq of its own (src/agent/appliers/dns): freeze that one, DHCP goes on.
      const pid = Number(readFileSync(join(router.dir, 'dns.pid'), 'utf8'));
      process.kill(pid, 'SIGSTOP');
      try {
        const d = await brokenAt('web1', 'dns');
        assert.match(step(d, 'dns').evidence, /@10\.7\.1\.1: ETIMEOUT/);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      await healthy('web1');
    });

    test('(g) the static NAT rule deleted from nftables by hand: nat', async () => {
      await runIn(router.ns, [
        'nft',
        'delete',
        'element',
        'ip',
        'stacknet_nat',
        'static_dnat',
        `{ ${staticIp} }`,
      ]);
      try {
        const d = await brokenAt('web1', 'nat');
        assert.match(
          step(d, 'nat').evidence,
          new RegExp(`not in nftables: static_dnat: ${staticIp} : ${vms.web1!.ip}`),
        );
      } finally {
        await runIn(router.ns, [
          'nft',
          'add',
          'element',
          'ip',
          'stacknet_nat',
          'static_dnat',
          `{ ${staticIp} : ${vms.web1!.ip} }`,
        ]);
      }
      await healthy('web1');
    });

    test('(e) the anti-spoofing rule deleted by hand: port-rules; rebootVirtualMachine repairs it', async () => {
      const sw = `${prefix}switch`;
      // The port's source address taken out of the `guard` chain's set (the port found by its MAC's element).
      const listed = (await execIn(sw, ['nft', 'list', 'set', 'bridge', 'stacknet', 'port_mac'])).stdout;
      const port = new RegExp(`"(n\\d+)" \\. ${vms.web2!.mac}`).exec(listed)![1]!;
      await runIn(sw, ['nft', `delete element bridge stacknet port_ip4 { "${port}" . ${vms.web2!.ip} }`]);
      const d = await brokenAt('web2', 'port-rules');
      assert.match(
        step(d, 'port-rules').evidence,
        new RegExp(`guard \\(port ${port}\\) lacks ip saddr != \\{ ${vms.web2!.ip} \\}`),
      );
      ok(await admin('rebootVirtualMachine', { id: vms.web2!.id }, { fetch_result: true }), 'reboot');
      await healthy('web2');
    });

    test('(b) a NIC row the router sets aside (a multicast MAC): applied', async () => {
      const nic = await store.db
        .selectFrom('nics')
        .selectAll()
        .where('mac', '=', vms.web2!.mac)
        .executeTakeFirstOrThrow();
      const setMac = async (mac: string) => {
        await store.db.updateTable('nics').set({ mac }).where('id', '=', nic.id).execute();
        await store.db
          .updateTable('routers')
          .set((eb) => ({ desired_generation: eb('desired_generation', '+', 1) }))
          .where('network_id', '=', nic.network_id)
          .execute();
      };
      await setMac('01:00:5e:00:00:42');
      try {
        const d = await brokenAt('web2', 'applied');
        assert.match(step(d, 'applied').evidence, /applied without hosts 01:00:5e:00:00:42 \(mac: /);
        const out = cli('vm', 'web2');
        console.log(out.stdout);
        assert.equal(out.status, 1);
      } finally {
        await setMac(vms.web2!.mac);
      }
      // Set aside, the host left dnsmasq and the agent released its lease: back in, the guest must ask again.
      const d = await brokenAt('web2', 'lease');
      assert.match(step(d, 'lease').evidence, /DHCPRELEASE/);
      const pidFile = join(dataDir, 'netns', 'vms', vms.web2!.instance, 'udhcpc.pid');
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGUSR1');
      await healthy('web2');
    });

    test('(a) the router stopped: router; startRouter repairs it', async () => {
      ok(await admin('stopRouter', { id: router.id }, { fetch_result: true }), 'stopRouter');
      const d = await brokenAt('web1', 'router');
      assert.match(step(d, 'router').evidence, new RegExp(`${router.name} Stopped`));
      assert.match(step(d, 'router').advice, new RegExp(`startRouter id=${router.id}`));
      const out = cli('vm', 'web1');
      console.log(out.stdout);
      assert.equal(out.status, 1);
      const net = ok(await admin('diagnoseNetwork', { id: id.net }), 'diagnoseNetwork').diagnosis;
      assert.equal(net.firstfailure, 'router');
      assert.deepEqual(net.brokenvms.map((b: any) => b.name).sort(), ['web1', 'web2']);
      ok(await admin('startRouter', { id: router.id }, { fetch_result: true }), 'startRouter');
      await healthy('web1');
    });
  },
);
