/**
 * Issue 13, "What it must show", end to end on the netns driver, driven only through the CloudStack API with the
 * python `cs` client against a spawned `stacknet server --driver netns`, checked with real packets: socat servers
 * and clients in the VM namespaces and in the zone's upstream namespace (which holds the public range's gateway).
 * - egress default deny (the built-in isolated offering): nothing leaves until an egress rule allows it, then the
 *   upstream server sees the network's source-NAT address;
 * - static NAT: inbound only on what a firewall rule opens, outbound with the static IP;
 * - port forwarding (one port, a range): dropped without a firewall rule, forwarded with one, gone once deleted;
 * - rebootRouter, destroyRouter + restartNetwork: every rule is back; after disableStaticNat the VM leaves with
 *   the source-NAT address again;
 * - a redundant pair keeps source NAT and a port forward when its primary stops.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient as Client, CsRig } from '../api/harness.js';
import { eventually as retry, readLease, spawnIn, tcpGreeterArgv, tcpProbe } from '../../src/netns/index.js';
import type { EventuallyOptions, SpawnedProcess } from '../../src/netns/index.js';
import { NetnsDriver } from '../../src/drivers/netns.js';
import { createTestZone } from '../networking/zone-fixture.js';

const isRoot = process.getuid?.() === 0;

const eventually = <T>(fn: () => Promise<T | undefined>, o: EventuallyOptions) =>
  retry(async () => {
    const v = await fn();
    if (v === undefined) throw new Error('not yet');
    return v;
  }, o);

/** One TCP connection from namespace `ns`: what the server said, or null when it could not connect. */
const connect = async (ns: string, ip: string, port: number): Promise<string | null> => {
  const r = await tcpProbe(ns, ip, port, 1);
  return r.ok ? r.reply : null;
};

describe(
  'the router public side end to end on the netns driver (python cs)',
  { skip: !isRoot && 'needs root' },
  () => {
    let rig: Partial<CsRig> = {};
    let admin: Client;
    const prefix = `sn-${randomBytes(3).toString('hex')}-`;
    const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-pub-'));
    const ctl = `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`;
    const upstream = `${prefix}up-z1`;
    const id: Record<string, string> = {};
    const vms: Record<string, { id: string; ip: string; ns: string }> = {};
    const servers: SpawnedProcess[] = [];
    let snatIp = '';

    /** A TCP server in `ns` on `port` that answers `<label> <peer address>` to each connection. */
    const serve = (ns: string, port: number, label: string) => {
      servers.push(spawnIn(ns, tcpGreeterArgv(port, label)));
    };

    const deploy = async (name: string, networkid: string) => {
      const vm = ok(
        await admin(
          'deployVirtualMachine',
          { serviceofferingid: id.so, templateid: id.tpl, zoneid: id.zone, networkids: networkid, name },
          { fetch_result: true },
        ),
        `deploy ${name}`,
      ).virtualmachine;
      vms[name] = { id: vm.id, ip: vm.nic[0].ipaddress, ns: `${prefix}${vm.instancename}` };
      await eventually(
        async () => {
          const l = await readLease(vms[name]!.ns, 'eth0');
          return l && l.ip === vms[name]!.ip ? l : undefined;
        },
        { timeoutMs: 20_000, what: `${name} to hold ${vms[name]!.ip} over DHCP` },
      );
      return vms[name]!;
    };

    const associate = async (networkid: string) =>
      ok(await admin('associateIpAddress', { networkid }, { fetch_result: true }), 'associateIpAddress')
        .ipaddress as { id: string; ipaddress: string };

    /** Waits until `ns` gets `want` (a string, or null for "no connection") from ip:port. */
    const reaches = (
      ns: string,
      ip: string,
      port: number,
      want: (s: string | null) => boolean,
      what: string,
    ) =>
      eventually(
        async () => {
          const got = await connect(ns, ip, port);
          return want(got) ? { got } : undefined;
        },
        { timeoutMs: 15_000, what },
      );

    before(async () => {
      rig = await startCsRig('sqlite', {
        STACKNET_DRIVER: 'netns',
        STACKNET_DATA_DIR: dataDir,
        STACKNET_NETNS_PREFIX: prefix,
        STACKNET_CONTROL_CIDR: ctl,
      });
      admin = rig.admin!;
      id.zone = (
        await createTestZone(admin, {
          name: 'z1',
          vlans: '100-199',
          publicVlan: '50',
          publicPrefix: '203.0.113',
          guestCidr: '10.1.0.0/16',
        })
      ).zone;
      id.so = ok(await admin('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0].id;
      id.tpl = ok(await admin('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
      const off = ok(
        await admin('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
        'offerings',
      ).networkoffering[0];
      assert.equal(
        off.egressdefaultpolicy,
        false,
        'the built-in isolated offering denies egress, as CloudStack',
      );
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
      await deploy('vm1', id.net!);
      await deploy('vm2', id.net!);
      for (const n of ['vm1', 'vm2']) {
        serve(vms[n]!.ns, 22, `${n}-ssh`);
        serve(vms[n]!.ns, 80, `${n}-http`);
        for (const p of [9000, 9001, 9002]) serve(vms[n]!.ns, p, `${n}-${p}`);
      }
      snatIp = ok(
        await admin('listPublicIpAddresses', { associatednetworkid: id.net, issourcenat: true }),
        'source NAT ip',
      ).publicipaddress[0].ipaddress;
      for (const p of [8080, 8081]) serve(upstream, p, `up-${p}`);
    });

    after(async () => {
      await Promise.all(servers.map((s) => s.stop(500)));
      await stopCsRig(rig);
      await NetnsDriver.cleanup(join(dataDir, 'netns'));
      rmSync(dataDir, { recursive: true, force: true });
    });

    test('egress is denied by default; an egress rule lets one port out, seen as the source-NAT address', async () => {
      assert.equal(await connect(vms.vm1!.ns, '203.0.113.1', 8080), null, 'no egress rule: nothing leaves');
      const rule = ok(
        await admin(
          'createEgressFirewallRule',
          {
            networkid: id.net,
            protocol: 'tcp',
            startport: 8080,
            endport: 8080,
            cidrlist: '10.1.1.0/24',
            destcidrlist: '203.0.113.0/24',
          },
          { fetch_result: true },
        ),
        'createEgressFirewallRule',
      ).firewallrule;
      assert.equal(rule.state, 'Active');
      const t0 = Date.now();
      const { got } = await reaches(vms.vm1!.ns, '203.0.113.1', 8080, (s) => s !== null, 'egress to 8080');
      console.log(`# egress rule in force ${Date.now() - t0} ms after its job`);
      assert.equal(got, `up-8080 ${snatIp}`, 'the upstream server sees the source-NAT address');
      assert.equal(await connect(vms.vm1!.ns, '203.0.113.1', 8081), null, 'port 8081 stays closed');
      id.egress = rule.id;
    });

    test('static NAT: inbound only through a firewall rule, outbound with the static IP', async () => {
      const ip = await associate(id.net!);
      id.staticIp = ip.id;
      ok(
        await admin('enableStaticNat', { ipaddressid: ip.id, virtualmachineid: vms.vm1!.id }),
        'enableStaticNat',
      );
      // vm1's own traffic now leaves with its static IP.
      await reaches(
        vms.vm1!.ns,
        '203.0.113.1',
        8080,
        (s) => s === `up-8080 ${ip.ipaddress}`,
        'vm1 to leave with its static IP',
      );
      assert.equal(await connect(upstream, ip.ipaddress, 22), null, 'no firewall rule: inbound dropped');
      ok(
        await admin(
          'createFirewallRule',
          { ipaddressid: ip.id, protocol: 'tcp', startport: 22, endport: 22, cidrlist: '0.0.0.0/0' },
          { fetch_result: true },
        ),
        'createFirewallRule',
      );
      const { got } = await reaches(upstream, ip.ipaddress, 22, (s) => s !== null, 'ssh through static NAT');
      assert.equal(got, 'vm1-ssh 203.0.113.1');
      assert.equal(await connect(upstream, ip.ipaddress, 80), null, 'port 80 is not opened');
      // vm2 still leaves with the network's source-NAT address.
      assert.equal(await connect(vms.vm2!.ns, '203.0.113.1', 8080), `up-8080 ${snatIp}`);
    });

    test('port forwarding: dropped without a firewall rule, forwarded with one, a range 1:1, gone once deleted', async () => {
      const ip = await associate(id.net!);
      id.pfIp = ip.id;
      id.pfAddr = ip.ipaddress;
      const pf = ok(
        await admin(
          'createPortForwardingRule',
          {
            ipaddressid: ip.id,
            protocol: 'tcp',
            publicport: 2222,
            privateport: 22,
            virtualmachineid: vms.vm2!.id,
            openfirewall: false,
          },
          { fetch_result: true },
        ),
        'createPortForwardingRule',
      ).portforwardingrule;
      assert.equal(pf.state, 'Active');
      assert.equal(
        await connect(upstream, ip.ipaddress, 2222),
        null,
        'openfirewall=false: no firewall rule yet',
      );
      ok(
        await admin(
          'createFirewallRule',
          { ipaddressid: ip.id, protocol: 'tcp', startport: 2222, endport: 2222, cidrlist: '203.0.113.0/24' },
          { fetch_result: true },
        ),
        'createFirewallRule 2222',
      );
      assert.equal(
        (await reaches(upstream, ip.ipaddress, 2222, (s) => s !== null, 'the forward once opened')).got,
        'vm2-ssh 203.0.113.1',
      );
      const range = ok(
        await admin(
          'createPortForwardingRule',
          {
            ipaddressid: ip.id,
            protocol: 'tcp',
            publicport: 7000,
            publicendport: 7002,
            privateport: 9000,
            privateendport: 9002,
            virtualmachineid: vms.vm2!.id,
            openfirewall: true,
          },
          { fetch_result: true },
        ),
        'createPortForwardingRule range',
      ).portforwardingrule;
      for (const [pub, priv] of [
        [7000, 9000],
        [7002, 9002],
      ] as const)
        assert.equal(
          (await reaches(upstream, ip.ipaddress, pub, (s) => s !== null, `range port ${pub}`)).got,
          `vm2-${priv} 203.0.113.1`,
        );
      ok(await admin('deletePortForwardingRule', { id: range.id }, { fetch_result: true }), 'delete range');
      await reaches(upstream, ip.ipaddress, 7001, (s) => s === null, 'the deleted forward to stop');
      const fws = ok(
        await admin('listFirewallRules', { ipaddressid: ip.id }),
        'listFirewallRules',
      ).firewallrule;
      assert.ok(
        !fws.some((f: { startport: number }) => Number(f.startport) === 7000),
        'openfirewall’s rule goes with its forward',
      );
    });

    test('rebootRouter, then destroyRouter + restartNetwork: every rule is back and traffic resumes', async () => {
      const allWork = async () => {
        await reaches(vms.vm2!.ns, '203.0.113.1', 8080, (s) => s === `up-8080 ${snatIp}`, 'source NAT');
        await reaches(upstream, id.pfAddr!, 2222, (s) => s === 'vm2-ssh 203.0.113.1', 'the port forward');
        const sn = ok(await admin('listPublicIpAddresses', { id: id.staticIp }), 'ip').publicipaddress[0];
        await reaches(upstream, sn.ipaddress, 22, (s) => s === 'vm1-ssh 203.0.113.1', 'static NAT');
        assert.equal(await connect(vms.vm1!.ns, '203.0.113.1', 8081), null, 'egress 8081 still closed');
      };
      const r = ok(await admin('listRouters', { networkid: id.net }), 'listRouters').router[0];
      // CloudStack's router NICs: guest, control (link local), public (eth2, default) holding the source NAT.
      assert.deepEqual(
        r.nic.map((n: { traffictype: string; deviceid: string }) => `${n.traffictype}:${n.deviceid}`),
        ['Guest:0', 'Control:1', 'Public:2'],
      );
      const pub = r.nic.find((n: { traffictype: string }) => n.traffictype === 'Public');
      assert.equal(pub.ipaddress, snatIp);
      assert.equal(pub.broadcasturi, 'vlan://50');
      assert.equal(r.publicip, snatIp);
      assert.equal(r.publicnetmask, '255.255.255.0');
      ok(await admin('rebootRouter', { id: r.id }, { fetch_result: true }), 'rebootRouter');
      await allWork();
      ok(await admin('destroyRouter', { id: r.id }, { fetch_result: true }), 'destroyRouter');
      ok(await admin('restartNetwork', { id: id.net }, { fetch_result: true }), 'restartNetwork');
      await allWork();
      // disableStaticNat: vm1 leaves with the network's source-NAT address again.
      ok(
        await admin('disableStaticNat', { ipaddressid: id.staticIp }, { fetch_result: true }),
        'disableStaticNat',
      );
      await reaches(
        vms.vm1!.ns,
        '203.0.113.1',
        8080,
        (s) => s === `up-8080 ${snatIp}`,
        'vm1 back on source NAT',
      );
    });

    test('a redundant pair keeps source NAT and a port forward when its primary stops', async () => {
      const off = ok(
        await admin('createNetworkOffering', {
          name: 'RedundantPublic',
          displaytext: 'redundant with public services',
          guestiptype: 'Isolated',
          traffictype: 'Guest',
          supportedservices: 'Dhcp,Dns,UserData,SourceNat,StaticNat,PortForwarding,Firewall',
          egressdefaultpolicy: true,
          enable: true,
        }),
        'createNetworkOffering',
      ).networkoffering;
      assert.equal(off.egressdefaultpolicy, true);
      const net = ok(
        await admin('createNetwork', {
          zoneid: id.zone,
          name: 'rnet',
          displaytext: 'rnet',
          networkofferingid: off.id,
          gateway: '10.1.4.1',
          netmask: '255.255.255.0',
        }),
        'createNetwork rnet',
      ).network;
      const v = await deploy('r1', net.id);
      serve(v.ns, 22, 'r1-ssh');
      const pair = await eventually(
        async () => {
          const rs = ok(await admin('listRouters', { networkid: net.id }), 'listRouters').router;
          const states = rs.map((x: { redundantstate: string }) => x.redundantstate).sort();
          return rs.length === 2 && states.join() === 'BACKUP,PRIMARY' ? rs : undefined;
        },
        { timeoutMs: 30_000, what: 'one PRIMARY and one BACKUP' },
      );
      const snat = ok(
        await admin('listPublicIpAddresses', { associatednetworkid: net.id, issourcenat: true }),
        'rnet source NAT',
      ).publicipaddress[0].ipaddress;
      const ip = await associate(net.id);
      ok(
        await admin(
          'createPortForwardingRule',
          {
            ipaddressid: ip.id,
            protocol: 'tcp',
            publicport: 2200,
            privateport: 22,
            virtualmachineid: v.id,
            openfirewall: true,
          },
          { fetch_result: true },
        ),
        'createPortForwardingRule rnet',
      );
      const works = () =>
        Promise.all([
          reaches(v.ns, '203.0.113.1', 8080, (s) => s === `up-8080 ${snat}`, 'rnet source NAT'),
          reaches(upstream, ip.ipaddress, 2200, (s) => s === 'r1-ssh 203.0.113.1', 'rnet port forward'),
        ]);
      await works();
      const primary = pair.find((x: { redundantstate: string }) => x.redundantstate === 'PRIMARY');
      const t0 = Date.now();
      ok(await admin('stopRouter', { id: primary.id }, { fetch_result: true }), 'stopRouter primary');
      await works();
      console.log(`# redundant pair: source NAT and the forward back ${Date.now() - t0} ms after stopRouter`);
    });
  },
);
