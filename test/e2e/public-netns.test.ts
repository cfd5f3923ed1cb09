/**
 * The router's public side end to end on the netns driver, driven only through the CloudStack API (python `cs`):
 * a guest reaches a TCP server in the zone's upstream namespace and the server sees the network's source-NAT
 * address; with static NAT enabled the VM's outbound traffic leaves with its own public IP, and after
 * disableStaticNat with the source-NAT address again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsRig } from '../api/harness.js';
import { eventually, exec, killPid, listNamespaces, readLease } from '../../src/netns/index.js';
import { NetnsDriver } from '../../src/drivers/netns.js';
import { createTestZone } from '../networking/zone-fixture.js';

const isRoot = process.getuid?.() === 0;
/** createTestZone's public range: 203.0.113.10-40 on VLAN 50, gateway .1 (the upstream holds it). */
const UPSTREAM_GW = '203.0.113.1';

describe('public side end to end on the netns driver (python cs)', { skip: !isRoot && 'needs root' }, () => {
  let rig: Partial<CsRig> = {};
  const prefix = `sn-${randomBytes(3).toString('hex')}-`;
  const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-e2e-pub-'));
  const ctl = `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`;
  const id: Record<string, string> = {};
  let vm: { id: string; ip: string; ns: string };
  let upstream = '';
  let server: ChildProcess | undefined;

  /** What the upstream server saw as the source of one connection from the VM. */
  const seenFrom = async (): Promise<string> => {
    const r = await exec(
      ['ip', 'netns', 'exec', vm.ns, 'socat', '-T', '3', '-', `TCP:${UPSTREAM_GW}:8080,connect-timeout=2`],
      { input: '' },
    );
    return r.stdout.trim();
  };
  const eventuallySeen = (want: string, what: string) =>
    eventually(
      async () => {
        const got = await seenFrom();
        if (got !== want) throw new Error(`the server saw '${got}'`);
      },
      { timeoutMs: 30_000, what },
    );

  before(async () => {
    rig = await startCsRig('sqlite', {
      STACKNET_DRIVER: 'netns',
      STACKNET_DATA_DIR: dataDir,
      STACKNET_NETNS_PREFIX: prefix,
      STACKNET_CONTROL_CIDR: ctl,
    });
    const admin = rig.admin!;
    const z = await createTestZone(admin, {
      name: 'z1',
      vlans: '100-199',
      publicVlan: '50',
      publicPrefix: '203.0.113',
      guestCidr: '10.1.1.0/24',
    });
    id.zone = z.zone;
    id.so = ok(await admin('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0].id;
    id.tpl = ok(await admin('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
    // Egress allowed by default (the built-in isolated offerings deny, and egress rules are not this test's).
    const off = ok(
      await admin('createNetworkOffering', {
        name: 'PublicE2E',
        displaytext: 'source and static NAT, egress allowed',
        guestiptype: 'Isolated',
        traffictype: 'Guest',
        supportedservices: 'Dhcp,Dns,UserData,SourceNat,StaticNat',
        egressdefaultpolicy: true,
        enable: true,
      }),
      'createNetworkOffering',
    ).networkoffering;
    id.net = ok(
      await admin('createNetwork', {
        zoneid: id.zone,
        name: 'net1',
        displaytext: 'net1',
        networkofferingid: off.id,
        gateway: '10.1.1.1',
        netmask: '255.255.255.0',
      }),
      'createNetwork',
    ).network.id;
    const v = ok(
      await admin(
        'deployVirtualMachine',
        { serviceofferingid: id.so, templateid: id.tpl, zoneid: id.zone, networkids: id.net, name: 'vm1' },
        { fetch_result: true },
      ),
      'deploy vm1',
    ).virtualmachine;
    vm = { id: v.id, ip: v.nic[0].ipaddress, ns: `${prefix}${v.instancename}` };
    await eventually(
      async () => {
        const l = await readLease(vm.ns, 'eth0');
        if (!l || l.ip !== vm.ip) throw new Error('no lease yet');
      },
      { timeoutMs: 30_000, what: `vm1 to hold ${vm.ip} over DHCP` },
    );
    upstream = await eventually(
      async () => {
        const u = (await listNamespaces()).find((n) => n.startsWith(`${prefix}up-z`));
        if (!u) throw new Error('no upstream namespace yet');
        return u;
      },
      { timeoutMs: 20_000, what: 'the zone upstream namespace' },
    );
    // The outside world's server: answers each connection with the address it came from.
    server = spawn(
      'ip',
      [
        'netns',
        'exec',
        upstream,
        'socat',
        `TCP-LISTEN:8080,bind=${UPSTREAM_GW},fork,reuseaddr`,
        'SYSTEM:echo $SOCAT_PEERADDR',
      ],
      { stdio: 'ignore' },
    );
  });

  after(async () => {
    if (server?.pid) await killPid(server.pid, 1000).catch(() => undefined);
    await stopCsRig(rig);
    await NetnsDriver.cleanup(join(dataDir, 'netns'));
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('a guest reaches the upstream, which sees the source-NAT address', async () => {
    const snat = ok(
      await rig.admin!('listPublicIpAddresses', { associatednetworkid: id.net, issourcenat: true }),
      'listPublicIpAddresses',
    ).publicipaddress[0];
    assert.match(snat.ipaddress, /^203\.0\.113\./);
    id.snat = snat.ipaddress;
    await eventuallySeen(snat.ipaddress, 'the upstream to see the source-NAT address');
  });

  test('static NAT: the VM leaves with its own public IP; disabled, with the source NAT again', async () => {
    const admin = rig.admin!;
    const ip = ok(
      await admin('associateIpAddress', { networkid: id.net }, { fetch_result: true }),
      'associateIpAddress',
    ).ipaddress;
    ok(await admin('enableStaticNat', { ipaddressid: ip.id, virtualmachineid: vm.id }), 'enableStaticNat');
    await eventuallySeen(ip.ipaddress, 'the upstream to see the static-NAT address');
    ok(await admin('disableStaticNat', { ipaddressid: ip.id }, { fetch_result: true }), 'disableStaticNat');
    await eventuallySeen(id.snat!, 'the upstream to see the source-NAT address again');
  });
});
