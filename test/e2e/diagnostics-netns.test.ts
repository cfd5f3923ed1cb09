/**
 * Issue 17 items 1 and 2 end to end on the netns driver, through the CloudStack API (python `cs`) against a
 * spawned `stacknet server --driver netns`, on every database: runDiagnostics runs ping, arping and traceroute
 * inside the router against a deployed VM (exit code 0, the replies in stdout) and ping against an address nobody
 * holds (a nonzero exit code); getDiagnosticsData gives a URL the server serves, whose tar.gz holds dnsmasq's
 * hosts with the VM's MAC and the router's nft ruleset, plus a requested file of the router's state directory;
 * once older than diagnostics.data.max.file.age the URL answers 404 and the file is gone.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient as Client, CsRig } from '../api/harness.js';
import { eventually, readLease } from '../../src/netns/index.js';
import { NetnsDriver } from '../../src/drivers/netns.js';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import { createTestZone } from '../networking/zone-fixture.js';

const isRoot = process.getuid?.() === 0;
const job = { fetch_result: true };

for (const kind of testDbKinds()) {
  describe(
    `runDiagnostics and getDiagnosticsData in a real router (netns, ${kind})`,
    { skip: !isRoot && 'needs root' },
    () => {
      let rig: Partial<CsRig> = {};
      let admin: Client;
      const prefix = `sn-${randomBytes(3).toString('hex')}-`;
      const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-diag-'));
      const work = mkdtempSync(join(tmpdir(), 'stacknet-diag-work-'));
      const ctl = `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`;
      const vm = { id: '', ip: '', mac: '', ns: '' };
      let router = '';
      let routerName = '';

      const diag = async (type: string, ipaddress: string, params?: string) =>
        ok(
          await admin(
            'runDiagnostics',
            { targetid: router, type, ipaddress, ...(params ? { params } : {}) },
            job,
          ),
          `runDiagnostics ${type} ${ipaddress}`,
        ).diagnostics as { exitcode: string; stdout: string; stderr: string };

      before(async () => {
        rig = await startCsRig(kind, {
          STACKNET_DRIVER: 'netns',
          STACKNET_DATA_DIR: dataDir,
          STACKNET_NETNS_PREFIX: prefix,
          STACKNET_CONTROL_CIDR: ctl,
        });
        admin = rig.admin!;
        const zone = (
          await createTestZone(admin, {
            name: 'z1',
            vlans: '100-199',
            publicVlan: '50',
            publicPrefix: '203.0.113',
            guestCidr: '10.1.0.0/16',
          })
        ).zone;
        const so = ok(await admin('listServiceOfferings', { name: 'Small Instance' }), 'so')
          .serviceoffering[0].id;
        const tpl = ok(await admin('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
        const off = ok(
          await admin('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
          'offerings',
        ).networkoffering[0].id;
        const net = ok(
          await admin('createNetwork', {
            zoneid: zone,
            name: 'net1',
            displaytext: 'net1',
            networkofferingid: off,
            gateway: '10.1.1.1',
            netmask: '255.255.255.0',
          }),
          'createNetwork',
        ).network.id;
        const v = ok(
          await admin(
            'deployVirtualMachine',
            { serviceofferingid: so, templateid: tpl, zoneid: zone, networkids: net, name: 'vm1' },
            job,
          ),
          'deploy vm1',
        ).virtualmachine;
        Object.assign(vm, {
          id: v.id,
          ip: v.nic[0].ipaddress,
          mac: v.nic[0].macaddress,
          ns: `${prefix}${v.instancename}`,
        });
        await eventually(
          async () => {
            const l = await readLease(vm.ns, 'eth0');
            if (!l || l.ip !== vm.ip) throw new Error(`lease ${JSON.stringify(l)}`);
          },
          { timeoutMs: 20_000, what: `vm1 to hold ${vm.ip} over DHCP` },
        );
        const r = ok(await admin('listRouters', { networkid: net }), 'listRouters').router[0];
        router = r.id;
        routerName = r.name;
        // The download URL is built on endpoint.url: the address this server answers on.
        ok(
          await admin('updateConfiguration', {
            name: 'endpoint.url',
            value: `http://127.0.0.1:${rig.server!.port}/client/api`,
          }),
          'endpoint.url',
        );
      });

      after(async () => {
        await stopCsRig(rig);
        await NetnsDriver.cleanup(join(dataDir, 'netns'));
        rmSync(dataDir, { recursive: true, force: true });
        rmSync(work, { recursive: true, force: true });
      });

      test('ping, arping and traceroute from the router reach the VM', async () => {
        const ping = await diag('ping', vm.ip);
        assert.equal(ping.exitcode, '0', JSON.stringify(ping));
        assert.match(ping.stdout, new RegExp(`bytes from ${vm.ip.replace(/\./g, '\\.')}`));
        assert.match(ping.stdout, /4 packets transmitted, 4 received/);
        const two = await diag('ping', vm.ip, '-c 2 -i 0.2');
        assert.match(
          two.stdout,
          /2 packets transmitted, 2 received/,
          "the caller's -c wins over the default",
        );
        const arping = await diag('arping', vm.ip);
        assert.equal(arping.exitcode, '0', JSON.stringify(arping));
        assert.match(
          arping.stdout,
          new RegExp(`reply from ${vm.ip.replace(/\./g, '\\.')} \\[${vm.mac}\\]`, 'i'),
        );
        const tr = await diag('traceroute', vm.ip);
        assert.equal(tr.exitcode, '0', JSON.stringify(tr));
        assert.match(tr.stdout, new RegExp(`1 +${vm.ip.replace(/\./g, '\\.')}`));
      });

      test('ping to an address nobody holds: a nonzero exit code and what ping said', async () => {
        // Guest addresses are random: the one probed must not be the VM's.
        const nobody = vm.ip === '10.1.1.250' ? '10.1.1.249' : '10.1.1.250';
        const r = await diag('ping', nobody, '-c 2 -i 0.2 -W 1');
        assert.notEqual(r.exitcode, '0', JSON.stringify(r));
        assert.match(r.stdout + r.stderr, /2 packets transmitted, 0 received|Unreachable/);
      });

      test('the agent refuses what the server would (the server refuses first, 431)', async () => {
        refused(
          await admin(
            'runDiagnostics',
            { targetid: router, type: 'ping', ipaddress: vm.ip, params: '-c 1;id' },
            job,
          ),
          431,
          /unwanted characters/,
          'params with ;',
        );
        refused(
          await admin('getDiagnosticsData', { targetid: router, files: '../secret' }, job),
          431,
          /router's own state directory/,
          'files ../secret',
        );
        refused(
          await admin('getDiagnosticsData', { targetid: router, files: 'no-such-file.txt' }, job),
          431,
          /does not exist in the router's state directory/,
          'a missing file',
        );
        // A name inside the state directory that links out of it: the agent follows the link and refuses.
        symlinkSync('/etc/hostname', join(dataDir, 'netns', 'routers', routerName, 'data', 'escape'));
        refused(
          await admin('getDiagnosticsData', { targetid: router, files: 'escape' }, job),
          431,
          /escape is outside the router's state directory/,
          'a symlink out of the state directory',
        );
      });

      test('getDiagnosticsData: a URL serving the router archive, 404 once expired', async () => {
        const url = ok(
          await admin('getDiagnosticsData', { targetid: router, files: 'applied-state.json' }, job),
          'getDiagnosticsData',
        ).diagnostics.url as string;
        assert.match(
          url,
          new RegExp(
            `^http://127\\.0\\.0\\.1:${rig.server!.port}/client/diagnostics/[0-9a-f]{48}\\.tar\\.gz$`,
          ),
        );
        const res = await fetch(url);
        assert.equal(res.status, 200);
        const tgz = join(work, 'diag.tar.gz');
        writeFileSync(tgz, Buffer.from(await res.arrayBuffer()));
        const listed = execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' });
        for (const f of [
          'dnsmasq.conf',
          'dhcphosts.txt',
          'dnsmasq.leases',
          'nft-list-ruleset.txt',
          'ip-addr.txt',
          'ip-route.txt',
          'agent-status.json',
          'agent.log',
          'files/applied-state.json',
        ])
          assert.match(listed, new RegExp(`^\\./${f.replace(/\./g, '\\.')}$`, 'm'), `${f} in\n${listed}`);
        const x = join(work, 'x');
        execFileSync('mkdir', ['-p', x]);
        execFileSync('tar', ['-xzf', tgz, '-C', x]);
        const hostsDir = join(x, 'dhcphosts.d');
        const hosts = [
          join(x, 'dhcphosts.txt'),
          ...(existsSync(hostsDir) ? readdirSync(hostsDir).map((f) => join(hostsDir, f)) : []),
        ]
          .map((f) => readFileSync(f, 'utf8'))
          .join('\n');
        assert.match(hosts, new RegExp(vm.mac, 'i'), "dnsmasq's hosts hold the VM's MAC");
        assert.match(readFileSync(join(x, 'dnsmasq.leases'), 'utf8'), new RegExp(vm.mac, 'i'));
        const nft = readFileSync(join(x, 'nft-list-ruleset.txt'), 'utf8');
        assert.match(nft, /# exit code 0/);
        assert.match(nft, /table inet stacknet_vr/);
        assert.match(readFileSync(join(x, 'ip-addr.txt'), 'utf8'), /10\.1\.1\.1\//);
        assert.equal(JSON.parse(readFileSync(join(x, 'agent-status.json'), 'utf8')).generation > 0, true);

        const name = url.slice(url.lastIndexOf('/') + 1);
        const file = join(dataDir, 'diagnostics', name);
        assert.ok(existsSync(file));
        ok(
          await admin('updateConfiguration', { name: 'diagnostics.data.max.file.age', value: '1' }),
          'max age 1 s',
        );
        await eventually(
          async () => {
            const r = await fetch(url);
            if (r.status !== 404) throw new Error(`still ${r.status}`);
          },
          { timeoutMs: 10_000, what: 'the URL to expire' },
        );
        assert.equal(existsSync(file), false, 'the expired archive is removed');
      });
    },
  );
}
