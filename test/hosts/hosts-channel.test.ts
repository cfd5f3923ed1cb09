/**
 * The management server's side of the hosts driver (src/hosts, src/drivers/hosts.ts), driven through its HTTP
 * channel by two test hosts (test-host.ts: real HTTP both ways) and through the CloudStack API: registration
 * with the token, heartbeats, the desired-state long-poll, placement of a VXLAN network's router and VMs on two
 * hosts and the desired state each host gets, host states by `ping.interval` / `ping.timeout` (2 s / 2: Disconnected after 4 s of silence, Down after 6) with
 * ALERT.HOST, a Down host's router rebuilt on the other host, listHosts / listClusters / maintenance. On the
 * databases of STACKNET_TEST_DBS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { buildTestServer, injectClient, zoneWithTwoNetworks } from '../../src/server/testing/test-server.js';
import type { BuiltServer } from '../../src/server/build-server.js';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { eventually } from '../api/harness.js';
import { TestHost } from './test-host.js';
import type { HostDesiredState } from '../../src/hosts/protocol.js';

const keys = { apiKey: 'hosts-key', secretKey: 'hosts-secret' };
const TOKEN = 'test-registration-token';

for (const kind of testDbKinds()) {
  describe(`hosts: channel, placement, states (${kind})`, () => {
    let dir: string;
    let tdb: TestDatabase;
    let s: BuiltServer;
    let url: string;
    const client = injectClient(() => s, keys);
    const hosts: TestHost[] = [];
    let h1: TestHost;
    let h2: TestHost;
    const ids: { zone: string; net: string; so: string; tpl: string } = {
      zone: '',
      net: '',
      so: '',
      tpl: '',
    };
    const okJob = async (command: string, params: Record<string, string>) => {
      const r = await client.job(command, params, 60_000);
      assert.ok(r.ok, `${command}: ${JSON.stringify(r.error)}`);
      return r.result;
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'stacknet-hosts-'));
      tdb = await createTestDatabase(kind);
      s = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys, driver: 'hosts' });
      await s.app.listen({ port: 0, host: '127.0.0.1' });
      url = `http://127.0.0.1:${(s.app.server.address() as AddressInfo).port}`;
      const z = await zoneWithTwoNetworks(client, {
        isolation: 'VXLAN',
        vnets: '5000-5010',
        kvmLabel: 'ul0',
      });
      Object.assign(ids, { zone: z.zone, net: z.net, so: z.so, tpl: z.tpl });
      // 2 s × 2: long enough that a loaded machine's late heartbeat does not make a host Down by itself.
      await client.okCall('updateConfiguration', { name: 'ping.interval', value: '2' });
      await client.okCall('updateConfiguration', { name: 'ping.timeout', value: '2' });
      await client.okCall('updateConfiguration', {
        name: 'stacknet.template.default.url',
        value: 'file:///var/lib/stacknet/test-template',
      });
      await client.okCall('updateConfiguration', { name: 'stacknet.host.vm.wait', value: '20' });
    });

    after(async () => {
      for (const h of hosts) await h.stop();
      await s.close();
      await tdb.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('registration needs the token; heartbeats and the desired state need the host secret', async () => {
      h1 = new TestHost('hv1', '127.0.0.2', url, join(dir, 'hv1'));
      h2 = new TestHost('hv2', '127.0.0.3', url, join(dir, 'hv2'));
      hosts.push(h1, h2);
      for (const h of hosts) await h.listen();
      const closed = await h1.call('POST', '/v1/hosts/register', h1.registration(TOKEN));
      assert.equal(closed.status, 403);
      assert.match(closed.json.message, /stacknet host token/);
      await client.okCall('updateConfiguration', { name: 'host.registration.token', value: TOKEN });
      const wrong = await h1.call('POST', '/v1/hosts/register', h1.registration('nope'));
      assert.equal(wrong.status, 401);
      assert.equal(wrong.json.error, 'Unauthorized');
      const bad = await h1.call('POST', '/v1/hosts/register', { ...h1.registration(TOKEN), port: 0 });
      assert.equal(bad.status, 400);
      assert.match(bad.json.message, /port/);
      await h1.register(TOKEN);
      await h2.register(TOKEN);
      const noAuth = await h1.call(
        'POST',
        `/v1/hosts/${h1.uuid}/heartbeat`,
        { status: h1.status() },
        'wrong',
      );
      assert.equal(noAuth.status, 401);
      assert.match(noAuth.json.message, /secret is not host hv1's/);
      const otherHost = await h1.call('GET', `/v1/hosts/${h2.uuid}/desired`);
      assert.equal(otherHost.status, 401, "one host's secret does not open another's state");
      const hb = await h1.call('POST', `/v1/hosts/${h1.uuid}/heartbeat`, { status: h1.status() });
      assert.equal(hb.status, 200);
      assert.equal(typeof hb.json.desiredGeneration, 'number');
      assert.equal(hb.json.pingInterval, 2, 'ping.interval reaches running agents');
      const d = await h1.call('GET', `/v1/hosts/${h1.uuid}/desired`);
      assert.equal(d.status, 200);
      assert.deepEqual(d.json.vms, []);
      assert.match(d.json.controlCidr, /^169\.254\./);
      // Nothing changes: the long-poll answers 304 once waitMs passed.
      const t0 = Date.now();
      const idle = await h1.call('GET', `/v1/hosts/${h1.uuid}/desired?after=${d.json.generation}&waitMs=300`);
      assert.equal(idle.status, 304);
      assert.ok(Date.now() - t0 >= 250);
      // Registering again under the same name keeps the host and replaces its secret.
      const old = h1.secret;
      await h1.register(TOKEN);
      assert.notEqual(h1.secret, old);
      assert.equal((await h1.call('GET', `/v1/hosts/${h1.uuid}/desired`, undefined, old)).status, 401);
      for (const h of hosts) h.start();
    });

    test('listHosts and listClusters show the registered hosts with CloudStack fields', async () => {
      const list = await client.okCall('listHosts', { zoneid: ids.zone });
      assert.equal(list.count, 2);
      const hv1 = list.host.find((h: { name: string }) => h.name === 'hv1');
      assert.equal(hv1.type, 'Routing');
      assert.equal(hv1.hypervisor, 'KVM');
      assert.equal(hv1.state, 'Up');
      assert.equal(hv1.resourcestate, 'Enabled');
      assert.equal(hv1.ipaddress, '127.0.0.2');
      assert.equal(hv1.cpunumber, 4);
      assert.equal(hv1.cpuspeed, 2000);
      assert.equal(hv1.memorytotal, 4096 * 1024 * 1024);
      assert.equal(hv1.version, 'test');
      assert.equal(hv1.zoneid, ids.zone);
      assert.ok(hv1.podid && hv1.clusterid && hv1.clustername && hv1.lastpinged && hv1.created);
      const clusters = await client.okCall('listClusters', { zoneid: ids.zone });
      assert.equal(clusters.count, 1);
      assert.equal(clusters.cluster[0].id, hv1.clusterid);
      assert.equal(clusters.cluster[0].hypervisortype, 'KVM');
      const infra = await client.okCall('listInfrastructure');
      assert.equal(infra.infrastructure.hosts, 2);
      assert.equal(infra.infrastructure.clusters, 1);
    });

    let vmA: { id: string; hostid: string; instancename: string };
    let vmB: { id: string; hostid: string; instancename: string };

    test("a VXLAN network's router and two VMs placed on the two hosts; each host's desired state", async () => {
      const deploy = async (name: string) =>
        (
          await okJob('deployVirtualMachine', {
            zoneid: ids.zone,
            serviceofferingid: ids.so,
            templateid: ids.tpl,
            networkids: ids.net,
            name,
          })
        ).virtualmachine;
      vmA = await deploy('vm-a');
      vmB = await deploy('vm-b');
      const router = (await client.okCall('listRouters', { networkid: ids.net })).router[0];
      const hostIds = { [h1.uuid]: h1, [h2.uuid]: h2 };
      assert.ok(hostIds[router.hostid], 'the router is on a host');
      assert.ok(hostIds[vmA.hostid] && hostIds[vmB.hostid], `VMs on hosts: ${vmA.hostid} ${vmB.hostid}`);
      // FirstFit, fewest first: the router takes one host, the first VM the other, the second VM the router's
      // (one each: the older host).
      assert.notEqual(vmA.hostid, router.hostid);
      const listed = (await client.okCall('listVirtualMachines', { id: vmA.id })).virtualmachine[0];
      assert.equal(listed.hostid, vmA.hostid);
      assert.equal(listed.hostname, hostIds[vmA.hostid]!.name);
      assert.equal(listed.hostcontrolstate, 'Enabled');
      assert.equal(router.hostname, hostIds[router.hostid]!.name);
      const a = hostIds[vmA.hostid]!;
      const other = a === h1 ? h2 : h1;
      const d = await eventually(
        async () => (a.desired?.vms.some((v) => v.instanceName === vmA.instancename) ? a.desired : undefined),
        10_000,
        'the VM in its host desired state',
      );
      const spec = d.vms.find((v) => v.instanceName === vmA.instancename)!;
      assert.equal(spec.state, 'Running');
      assert.equal(spec.cpus, 1);
      assert.equal(spec.memoryMiB, 512);
      assert.equal(spec.backend, 'libvirt');
      assert.equal(spec.template.url, 'file:///var/lib/stacknet/test-template');
      assert.equal(spec.template.format, 'kernel-initrd');
      assert.equal(spec.nics.length, 1);
      assert.match(spec.nics[0]!.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      assert.match(spec.nics[0]!.ipv4s[0]!, /^10\.1\.1\./);
      const net = d.networks.find((n) => n.id === spec.nics[0]!.networkId)!;
      assert.equal(net.isolation, 'VXLAN');
      assert.ok(net.vnet >= 5000 && net.vnet <= 5010);
      assert.equal(net.bridge, `brvx${net.vnet}`);
      assert.equal(net.trafficLabel, 'ul0', "the physical network's KVM label");
      assert.deepEqual(net.peers, [other.address]);
      assert.equal(net.mtu, 1450);
      const od: HostDesiredState = other.desired!;
      assert.deepEqual(od.networks.find((n) => n.id === net.id)?.peers, [a.address]);
      // The router's spec carries what the relay needs.
      const onRouterHost = hostIds[router.hostid]!.desired!.routers.find((r) => r.name === router.name)!;
      assert.ok(onRouterHost.secret && onRouterHost.controlIp && onRouterHost.guestMac);
      // Its public NIC: the source-NAT address's VLAN as eth2, on the host's public label (the zone's Public
      // traffic names no KVM label here).
      assert.deepEqual(onRouterHost.publicNics, [
        { interface: 'eth2', vlan: '50', gateway: '203.0.113.1', prefix: 24, trafficLabel: 'pub9' },
      ]);
    });

    test('the long-poll wakes on a change; stopping a VM waits for its host to report it', async () => {
      const a = vmA.hostid === h1.uuid ? h1 : h2;
      const gen = a.desired!.generation;
      const poll = a.call('GET', `/v1/hosts/${a.uuid}/desired?after=${gen}&waitMs=20000`);
      const t0 = Date.now();
      await okJob('stopVirtualMachine', { id: vmA.id });
      const r = await poll;
      assert.equal(r.status, 200);
      assert.ok(r.json.generation > gen);
      assert.ok(Date.now() - t0 < 15_000);
      assert.equal(r.json.vms.find((v: { uuid: string }) => v.uuid === vmA.id).state, 'Stopped');
      // A host that says Error fails the start with its words.
      a.vmOverride.set(vmA.instancename, {
        instanceName: vmA.instancename,
        state: 'Error',
        message: 'no kvm',
      });
      const failed = await client.job('startVirtualMachine', { id: vmA.id }, 30_000);
      assert.equal(failed.ok, false);
      assert.match(
        failed.error.errortext,
        new RegExp(`Host ${a.name} .*could not make VM .* Running: no kvm`),
      );
      a.vmOverride.clear();
      await okJob('startVirtualMachine', { id: vmA.id });
    });

    test('silent hosts go Disconnected then Down with ALERT.HOST; the router is rebuilt elsewhere; back Up', async () => {
      const router = (await client.okCall('listRouters', { networkid: ids.net })).router[0];
      const rh = router.hostid === h1.uuid ? h1 : h2;
      const other = rh === h1 ? h2 : h1;
      rh.heartbeating = false;
      const states = new Set<string>();
      // Per state, the least silence (ms since the host's last_pinged) it was seen at: CloudStack's timing is
      // Disconnected past ping.interval × ping.timeout (2 s × 2), Down one ping.interval later (6 s).
      const seenAt = new Map<string, number>();
      await eventually(
        async () => {
          const h = (await client.okCall('listHosts', { id: rh.uuid })).host[0];
          const row = await s.store.db
            .selectFrom('hosts')
            .select('last_pinged')
            .where('uuid', '=', rh.uuid)
            .executeTakeFirstOrThrow();
          const silent = Date.now() - Number(row.last_pinged);
          states.add(h.state);
          if (!seenAt.has(h.state)) seenAt.set(h.state, silent);
          return h.state === 'Down' ? true : undefined;
        },
        20_000,
        'the host Down',
      );
      assert.ok(states.has('Disconnected'), `Disconnected before Down: ${[...states]}`);
      assert.ok(seenAt.get('Disconnected')! >= 4000, `Disconnected after ${seenAt.get('Disconnected')} ms`);
      assert.ok(seenAt.get('Down')! >= 6000, `Down after ${seenAt.get('Down')} ms`);
      // One open ALERT.HOST for it (a loaded machine may have seen another host late once: cleared since).
      const alerts = await client.okCall('listAlerts', { type: '7' });
      const mine = alerts.alert.filter((a: { description: string }) =>
        a.description.startsWith(`Host ${rh.name} `),
      );
      assert.ok(mine.length >= 1, JSON.stringify(alerts));
      assert.match(mine[0].description, new RegExp(`Host ${rh.name} .* is Down`));
      const openKeys = await s.store.db
        .selectFrom('alerts')
        .select('open_key')
        .where('type', '=', 7)
        .execute();
      assert.equal(openKeys.filter((a) => a.open_key !== null).length, 1, 'one open host alert');
      const events = await client.okCall('listEvents', { type: 'HOST.DOWN' });
      assert.ok(events.count >= 1);
      // Its router moves to the other host on the reconciler's next pass; its VMs stay, reported Offline.
      await eventually(
        async () => {
          const r = (await client.okCall('listRouters', { networkid: ids.net })).router[0];
          return r.hostid === other.uuid && r.state === 'Running' ? r : undefined;
        },
        30_000,
        'the router on the other host',
      );
      const vmOnRh = [vmA, vmB].find((v) => v.hostid === rh.uuid);
      if (vmOnRh) {
        const v = (await client.okCall('listVirtualMachines', { id: vmOnRh.id })).virtualmachine[0];
        assert.equal(v.hostid, rh.uuid, 'not moved');
        assert.equal(v.hostcontrolstate, 'Offline');
      }
      // The other host's VXLAN peers no longer name the Down host.
      await eventually(
        async () => (other.desired!.networks.every((n) => !n.peers.includes(rh.address)) ? true : undefined),
        10_000,
        'peers without the Down host',
      );
      rh.heartbeating = true;
      await eventually(
        async () =>
          (await client.okCall('listHosts', { id: rh.uuid })).host[0].state === 'Up' ? true : undefined,
        10_000,
        'the host Up again',
      );
      const open = await s.store.db
        .selectFrom('alerts')
        .select('open_key')
        .where('type', '=', 7)
        .executeTakeFirstOrThrow();
      assert.equal(open.open_key, null, 'the alert cleared');
    });

    test('maintenance: a host with running VMs ends ErrorInMaintenance; Disable; deleteHost refuses', async () => {
      const withVm = vmA.hostid === h1.uuid ? h1 : h2;
      const r = await client.job('prepareHostForMaintenance', { id: withVm.uuid }, 90_000);
      assert.equal(r.ok, false);
      assert.match(r.error.errortext, /does not migrate/);
      const after1 = (await client.okCall('listHosts', { id: withVm.uuid })).host[0];
      assert.equal(after1.resourcestate, 'ErrorInMaintenance');
      assert.equal(
        (await client.call('deleteHost', { id: withVm.uuid })).status,
        530,
        'not in maintenance, not forced',
      );
      await okJob('cancelHostMaintenance', { id: withVm.uuid });
      const dis = await client.okCall('updateHost', { id: withVm.uuid, allocationstate: 'Disable' });
      assert.equal(dis.host.resourcestate, 'Disabled');
      await client.okCall('updateHost', { id: withVm.uuid, allocationstate: 'Enable' });
    });
  });
}
