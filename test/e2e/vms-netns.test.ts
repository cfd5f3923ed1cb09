/**
 * End to end on the netns driver, driven only through the CloudStack API with the python `cs` client against a
 * spawned `stacknet server --driver netns`: VMs get over real DHCP the address the API reports, resolve each
 * other through the VR, read their own (and only their own) metadata; the router survives reboot and
 * destroy + restartNetwork; an expunged VM's address goes to the next VM on its first try.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { CsBridge, ok, startServer } from '../api/harness.js';
import type { CsClient as Client, ServerProcess } from '../api/harness.js';
import { dig, eventually as retry, execIn, httpGet, leaseHistory, readLease } from '../../src/netns/index.js';
import type { EventuallyOptions } from '../../src/netns/index.js';

/** Retries until fn returns something other than undefined. */
const eventually = <T>(fn: () => Promise<T | undefined>, o: EventuallyOptions) =>
  retry(async () => {
    const v = await fn();
    if (v === undefined) throw new Error('not yet');
    return v;
  }, o);
import { NetnsDriver } from '../../src/drivers/netns.js';

const isRoot = process.getuid?.() === 0;
const execFileP = promisify(execFile);

/** Signals the processes of one namespace only (pkill would reach every test's clients on the machine). */
async function signalNs(ns: string, signal: NodeJS.Signals): Promise<void> {
  const pids = (await execIn(ns, ['true']).then(() => import('node:child_process')))
    .execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

describe('VMs end to end on the netns driver (python cs)', { skip: !isRoot && 'needs root' }, () => {
  let tdb: TestDatabase;
  let server: ServerProcess;
  let bridge: CsBridge;
  let admin: Client;
  const prefix = `sn-${randomBytes(3).toString('hex')}-`;
  const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-e2e-'));
  const ctl = `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`;
  const id: Record<string, string> = {};
  const vms: Record<string, { id: string; ip: string; ns: string; password?: string }> = {};
  let domain = '';
  let gateway = '';

  const deploy = async (name: string, extra: Record<string, unknown> = {}) => {
    const r = ok(
      await admin(
        'deployVirtualMachine',
        {
          serviceofferingid: id.so,
          templateid: id.tpl,
          zoneid: id.zone,
          networkids: id.net,
          name,
          userdata: Buffer.from(`#cloud-config ${name}`).toString('base64'),
          ...extra,
        },
        { fetch_result: true },
      ),
      `deploy ${name}`,
    );
    const vm = r.virtualmachine;
    const ns = `${prefix}${vm.instancename}`;
    vms[name] = { id: vm.id, ip: vm.nic[0].ipaddress, ns, password: vm.password };
    return vms[name]!;
  };

  const holds = (name: string) =>
    eventually(
      async () => {
        const l = await readLease(vms[name]!.ns, 'eth0');
        return l && l.ip === vms[name]!.ip ? l : undefined;
      },
      { timeoutMs: 20_000, what: `${name} to hold ${vms[name]!.ip} over DHCP` },
    );

  before(async () => {
    tdb = await createTestDatabase('sqlite');
    server = await startServer(tdb.url, {
      STACKNET_DRIVER: 'netns',
      STACKNET_DATA_DIR: dataDir,
      STACKNET_NETNS_PREFIX: prefix,
      STACKNET_CONTROL_CIDR: ctl,
    });
    bridge = new CsBridge();
    admin = bridge.client(server.url, server.apiKey, server.secretKey);
    const z = ok(
      await admin('createZone', {
        name: 'z1',
        networktype: 'Advanced',
        dns1: '192.0.2.53',
        internaldns1: '192.0.2.53',
        guestcidraddress: '10.1.1.0/24',
      }),
      'createZone',
    );
    id.zone = z.zone.id;
    id.so = ok(await admin('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0].id;
    id.tpl = ok(await admin('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
    const pn = ok(
      await admin(
        'createPhysicalNetwork',
        { zoneid: id.zone, name: 'pn1', isolationmethods: 'VLAN', vlan: '100-199' },
        { fetch_result: true },
      ),
      'createPhysicalNetwork',
    );
    id.pn = pn.physicalnetwork.id;
    for (const t of ['Guest', 'Public', 'Management'])
      ok(
        await admin('addTrafficType', { physicalnetworkid: id.pn, traffictype: t }, { fetch_result: true }),
        `addTrafficType ${t}`,
      );
    ok(
      await admin('updatePhysicalNetwork', { id: id.pn, state: 'Enabled' }, { fetch_result: true }),
      'enable pn',
    );
    ok(
      await admin('createVlanIpRange', {
        zoneid: id.zone,
        vlan: '50',
        gateway: '203.0.113.1',
        netmask: '255.255.255.0',
        startip: '203.0.113.10',
        endip: '203.0.113.40',
        forvirtualnetwork: true,
      }),
      'createVlanIpRange',
    );
    const offs = ok(
      await admin('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
      'offerings',
    );
    const net = ok(
      await admin('createNetwork', {
        zoneid: id.zone,
        name: 'net1',
        displaytext: 'net1',
        networkofferingid: offs.networkoffering[0].id,
        gateway: '10.1.1.1',
        netmask: '255.255.255.0',
      }),
      'createNetwork',
    );
    id.net = net.network.id;
    domain = net.network.networkdomain;
    gateway = net.network.gateway;
  });

  after(async () => {
    await bridge?.close();
    await server?.stop();
    // Idempotent: the last test already ran `stacknet netns cleanup`; this catches a failure before it.
    await NetnsDriver.cleanup(join(dataDir, 'netns'));
    await execFileP('ip', ['netns', 'del', `${prefix}bystander`]).catch(() => undefined);
    await tdb?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('three VMs hold the API addresses over DHCP, resolve each other, read only their own metadata', async () => {
    // The built-in template is password-enabled: deploy answers a password the VR's password server hands out.
    const tpl = ok(await admin('listTemplates', { templatefilter: 'featured' }), 'listTemplates').template[0];
    for (const n of ['vm1', 'vm2', 'vm3']) await deploy(n, { templateid: tpl.id });
    assert.ok(vms.vm1!.password, 'deploy with a password-enabled template answers a password');
    for (const n of ['vm1', 'vm2', 'vm3']) {
      const l = (await holds(n))!;
      assert.equal(l.router, gateway);
      assert.deepEqual(l.dns, [gateway]);
      assert.equal(l.domain, domain);
    }
    const a = await dig(vms.vm1!.ns, `vm2.${domain}`, gateway);
    assert.deepEqual(a.answers, [vms.vm2!.ip]);
    const md = await httpGet(vms.vm1!.ns, `http://${gateway}/latest/meta-data/local-ipv4`);
    assert.equal(md.body.trim(), vms.vm1!.ip);
    const ud = await httpGet(vms.vm1!.ns, `http://${gateway}/latest/user-data`);
    assert.equal(ud.body, '#cloud-config vm1');
    // The source address selects the VM: vm1 sees its own instance id, never vm2's.
    const iid = await httpGet(vms.vm1!.ns, `http://${gateway}/latest/meta-data/instance-id`);
    assert.equal(iid.body.trim(), vms.vm1!.id);
    assert.notEqual(iid.body.trim(), vms.vm2!.id);
    // The server supplies the installation's cloud identifier (CloudStack-{<cloud.identifier>}).
    const cid = await httpGet(vms.vm1!.ns, `http://${gateway}/latest/meta-data/cloud-identifier`);
    assert.match(cid.body.trim(), /^CloudStack-\{[0-9a-f-]{36}\}$/);
    // The password server (DomU protocol) hands vm1 the password deploy returned until vm1 says it saved it.
    const before = ok(await admin('listRouters', { networkid: id.net }), 'listRouters').router[0];
    const domu = (op: string) =>
      httpGet(vms.vm1!.ns, `http://${gateway}:8080/`, { headers: { DomU_Request: op } });
    assert.equal((await domu('send_my_password')).body.trim(), vms.vm1!.password);
    assert.equal(
      (await domu('send_my_password')).body.trim(),
      vms.vm1!.password,
      'a lost answer is asked again',
    );
    assert.equal((await domu('saved_password')).body.trim(), 'saved_password');
    assert.equal((await domu('send_my_password')).body.trim(), 'saved_password');
    // The agent reports it saved; the server drops the password from the VM and from every router's desired
    // state (a new generation), so no router rebuilt from the database hands it out again.
    await eventually(
      async () => {
        const r = ok(await admin('listRouters', { networkid: id.net }), 'listRouters').router[0];
        return r.desiredgeneration > before.desiredgeneration && r.appliedgeneration === r.desiredgeneration
          ? r
          : undefined;
      },
      { timeoutMs: 20_000, what: 'the saved password to leave the desired state' },
    );
  });

  test('rebootRouter, then destroyRouter + restartNetwork: every VM renews and resolves, generations match', async () => {
    const routers = () => ok(admin('listRouters', { networkid: id.net }) as never, 'x');
    void routers;
    let r = ok(await admin('listRouters', { networkid: id.net, listall: true }), 'listRouters').router[0];
    ok(await admin('rebootRouter', { id: r.id }, { fetch_result: true }), 'rebootRouter');
    const renewAll = async () => {
      for (const n of ['vm1', 'vm2', 'vm3']) {
        await signalNs(vms[n]!.ns, 'SIGUSR1');
        await holds(n);
        const a = await eventually(
          async () => {
            const d = await dig(vms.vm3!.ns, `${n}.${domain}`, gateway);
            return d.answers[0] === vms[n]!.ip ? d : undefined;
          },
          { timeoutMs: 10_000, what: `${n} to resolve` },
        );
        assert.deepEqual(a!.answers, [vms[n]!.ip]);
      }
    };
    await renewAll();
    r = ok(await admin('listRouters', { networkid: id.net }), 'listRouters').router[0];
    assert.equal(r.appliedgeneration, r.desiredgeneration);
    ok(await admin('destroyRouter', { id: r.id }, { fetch_result: true }), 'destroyRouter');
    ok(await admin('restartNetwork', { id: id.net }, { fetch_result: true }), 'restartNetwork');
    const nr = await eventually(
      async () => {
        const l = ok(await admin('listRouters', { networkid: id.net }), 'listRouters').router?.[0];
        return l && l.state === 'Running' && l.appliedgeneration === l.desiredgeneration ? l : undefined;
      },
      { timeoutMs: 30_000, what: 'the new router to converge' },
    );
    assert.notEqual(nr.id, r.id);
    await renewAll();
    // The new router is rebuilt from the database, and vm1's password was saved on the old one: the server
    // dropped it when the agent reported the acknowledgement, so it is never handed out again.
    const pw = await httpGet(vms.vm1!.ns, `http://${gateway}:8080/`, {
      headers: { DomU_Request: 'send_my_password' },
    });
    assert.equal(pw.body.trim(), 'saved_password');
  });

  test('expunged vm2: vm4 asking for its address gets it on the first try; vm2 no longer resolves', async () => {
    const old = vms.vm2!.ip;
    ok(
      await admin('destroyVirtualMachine', { id: vms.vm2!.id, expunge: true }, { fetch_result: true }),
      'destroy vm2',
    );
    const v4 = await deploy('vm4', { ipaddress: old });
    assert.equal(v4.ip, old);
    await holds('vm4');
    // First try: the client's very first event is the lease on that address (no NAK, no failed round before it).
    const events = (await leaseHistory(v4.ns, 'eth0')).filter((l) => !/ deconfig /.test(l));
    assert.match(
      events[0] ?? '',
      new RegExp(`^\\d+ bound ip=${old.replace(/\./g, '\\.')} `),
      events.join('\n'),
    );
    const d = await eventually(
      async () => {
        const x = await dig(vms.vm1!.ns, `vm2.${domain}`, gateway);
        return x.answers.length === 0 ? x : undefined;
      },
      { timeoutMs: 5000, what: 'vm2 to stop resolving' },
    );
    assert.deepEqual(d!.answers, []);
  });

  test('a VM that changes its own address or MAC is cut off from the VR and its neighbours', async () => {
    const ns = vms.vm1!.ns;
    const ping = (to: string) =>
      execIn(ns, ['busybox', 'ping', '-c', '1', '-W', '1', to]).then((r) => r.code === 0);
    // The VR is probed with DNS (its firewall does not answer pings); a spoofed sender gets no answer.
    const vr = () =>
      execIn(ns, ['dig', '+time=1', '+tries=1', '+short', `vm3.${domain}`, `@${gateway}`]).then(
        (r) => r.code === 0 && r.stdout.trim() === vms.vm3!.ip,
      );
    assert.ok(await vr(), 'vm1 reaches the VR before');
    assert.ok(await ping(vms.vm3!.ip), 'vm1 reaches vm3 before');
    await signalNs(ns, 'SIGKILL');
    await execIn(ns, ['ip', 'addr', 'flush', 'dev', 'eth0']);
    await execIn(ns, ['ip', 'addr', 'add', '10.1.1.250/24', 'dev', 'eth0']);
    const reached = await vr();
    assert.equal(reached, false, 'spoofed address reaches the VR');
    assert.equal(await ping(vms.vm3!.ip), false, 'spoofed address reaches vm3');
    await execIn(ns, ['ip', 'addr', 'flush', 'dev', 'eth0']);
    await execIn(ns, ['ip', 'addr', 'add', `${vms.vm1!.ip}/24`, 'dev', 'eth0']);
    await execIn(ns, ['ip', 'link', 'set', 'eth0', 'address', '02:11:22:33:44:55']);
    assert.equal(await vr(), false, 'spoofed MAC reaches the VR');
    assert.equal(await ping(vms.vm3!.ip), false, 'spoofed MAC reaches vm3');
  });

  // How fast is bench:e2e's business (docs/benchmarks.md, "End to end"): alone this takes ~17 s on 2 cores, and
  // beside another test file's load (the fuzz, a fault test) it passed 20 s, so the deadline is only a hang guard.
  const BURST_DEADLINE_MS = 60_000;
  test('100 VMs deployed concurrently into one network all hold their unique addresses', async () => {
    const offs = ok(
      await admin('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
      'offerings',
    );
    const net = ok(
      await admin('createNetwork', {
        zoneid: id.zone,
        name: 'burst',
        displaytext: 'burst',
        networkofferingid: offs.networkoffering[0].id,
        gateway: '10.2.0.1',
        netmask: '255.255.254.0',
      }),
      'createNetwork burst',
    );
    const clients = Array.from({ length: 10 }, () => new CsBridge());
    try {
      const jobs: string[] = [];
      await Promise.all(
        clients.map(async (b, c) => {
          const cl = b.client(server.url, server.apiKey, server.secretKey);
          for (let i = 0; i < 10; i++) {
            const r = ok(
              await cl('deployVirtualMachine', {
                serviceofferingid: id.so,
                templateid: id.tpl,
                zoneid: id.zone,
                networkids: net.network.id,
                name: `b${c * 10 + i}`,
              }),
              'deploy',
            );
            jobs.push(r.jobid);
          }
        }),
      );
      const lastReturned = Date.now();
      const results = await Promise.all(
        jobs.map((j) =>
          eventually(
            async () => {
              const q = ok(await admin('queryAsyncJobResult', { jobid: j }), 'queryAsyncJobResult');
              if (q.jobstatus === 2) throw new Error(`deploy failed: ${JSON.stringify(q.jobresult)}`);
              return q.jobstatus === 1 ? q.jobresult.virtualmachine : undefined;
            },
            { timeoutMs: BURST_DEADLINE_MS, what: `job ${j}` },
          ),
        ),
      );
      const ips = results.map((v) => v.nic[0].ipaddress as string);
      assert.equal(new Set(ips).size, 100, 'addresses are unique');
      await Promise.all(
        results.map((v) =>
          eventually(
            async () => {
              const l = await readLease(`${prefix}${v.instancename}`, 'eth0');
              return l && l.ip === v.nic[0].ipaddress ? l : undefined;
            },
            {
              timeoutMs: Math.max(1000, lastReturned + BURST_DEADLINE_MS - Date.now()),
              intervalMs: 200,
              what: `${v.name} to hold ${v.nic[0].ipaddress}`,
            },
          ),
        ),
      );
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  test('a redundant pair serves DHCP and DNS on the VIP, and keeps serving when the primary stops', async () => {
    const off = ok(
      await admin('createNetworkOffering', {
        name: 'RedundantIsolated',
        displaytext: 'redundant',
        guestiptype: 'Isolated',
        traffictype: 'Guest',
        supportedservices: 'Dhcp,Dns,UserData,SourceNat',
        enable: true,
      }),
      'createNetworkOffering',
    ).networkoffering;
    const net = ok(
      await admin('createNetwork', {
        zoneid: id.zone,
        name: 'rnet',
        displaytext: 'rnet',
        networkofferingid: off.id,
        gateway: '10.4.0.1',
        netmask: '255.255.255.0',
      }),
      'createNetwork rnet',
    ).network;
    for (const n of ['ra', 'rb']) {
      const v = ok(
        await admin(
          'deployVirtualMachine',
          { serviceofferingid: id.so, templateid: id.tpl, zoneid: id.zone, networkids: net.id, name: n },
          { fetch_result: true },
        ),
        `deploy ${n}`,
      ).virtualmachine;
      vms[n] = { id: v.id, ip: v.nic[0].ipaddress, ns: `${prefix}${v.instancename}` };
      const l = (await holds(n))!;
      assert.equal(l.router, '10.4.0.1');
      assert.deepEqual(l.dns, ['10.4.0.1']);
    }
    const pair = await eventually(
      async () => {
        const rs = ok(await admin('listRouters', { networkid: net.id }), 'listRouters').router;
        const states = rs.map((r: { redundantstate: string }) => r.redundantstate).sort();
        return rs.length === 2 && states.join() === 'BACKUP,PRIMARY' ? rs : undefined;
      },
      { timeoutMs: 20_000, what: 'one PRIMARY and one BACKUP' },
    );
    const resolves = () =>
      eventually(
        async () => {
          const d = await dig(vms.ra!.ns, `rb.${net.networkdomain}`, '10.4.0.1');
          return d.answers[0] === vms.rb!.ip ? d : undefined;
        },
        { timeoutMs: 15_000, what: 'rb to resolve through the VIP' },
      );
    await resolves();
    const primary = pair.find((r: { redundantstate: string }) => r.redundantstate === 'PRIMARY');
    ok(await admin('stopRouter', { id: primary.id }, { fetch_result: true }), 'stopRouter primary');
    await resolves();
  });

  test('network GC: an idle network is shut down (router stopped, VLAN returned) and comes back on VM start', async () => {
    const offs = ok(
      await admin('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
      'offerings',
    );
    const net = ok(
      await admin('createNetwork', {
        zoneid: id.zone,
        name: 'gcnet',
        displaytext: 'gcnet',
        networkofferingid: offs.networkoffering[0].id,
        gateway: '10.3.0.1',
        netmask: '255.255.255.0',
      }),
      'createNetwork gcnet',
    );
    id.gcnet = net.network.id;
    const g = ok(
      await admin(
        'deployVirtualMachine',
        { serviceofferingid: id.so, templateid: id.tpl, zoneid: id.zone, networkids: id.gcnet, name: 'gc1' },
        { fetch_result: true },
      ),
      'deploy gc1',
    ).virtualmachine;
    vms.gc1 = { id: g.id, ip: g.nic[0].ipaddress, ns: `${prefix}${g.instancename}` };
    await holds('gc1');
    ok(await admin('stopVirtualMachine', { id: g.id }, { fetch_result: true }), 'stop gc1');
    ok(await admin('updateConfiguration', { name: 'network.gc.wait', value: '1' }), 'gc.wait');
    ok(await admin('updateConfiguration', { name: 'network.gc.interval', value: '1' }), 'gc.interval');
    try {
      await eventually(
        async () => {
          const n = ok(await admin('listNetworks', { id: id.gcnet }), 'listNetworks').network[0];
          const r = ok(await admin('listRouters', { networkid: id.gcnet }), 'listRouters').router[0];
          return n.state === 'Allocated' && !n.vlan && r.state === 'Stopped' ? true : undefined;
        },
        { timeoutMs: 15_000, what: 'the idle network to be shut down' },
      );
    } finally {
      ok(
        await admin('updateConfiguration', { name: 'network.gc.interval', value: '600' }),
        'gc.interval back',
      );
    }
    ok(await admin('startVirtualMachine', { id: g.id }, { fetch_result: true }), 'start gc1');
    assert.equal(
      ok(await admin('listNetworks', { id: id.gcnet }), 'listNetworks').network[0].state,
      'Implemented',
    );
    const l = (await holds('gc1'))!;
    assert.equal(l.router, '10.3.0.1');
  });

  test('stopping the server leaves the data plane; stacknet netns cleanup removes what it created and nothing else', async () => {
    await execFileP('ip', ['netns', 'add', `${prefix}bystander`]);
    await bridge.close();
    assert.equal(await server.stop(), 0);
    const left = (await execFileP('ip', ['netns', 'list'])).stdout;
    assert.match(left, new RegExp(`${prefix}r-\\d+-VM`), 'the router namespace survives the server');
    assert.ok(left.includes(vms.vm1!.ns), 'VM namespaces survive the server');
    const r = await execFileP(process.execPath, [
      'bin/stacknet.js',
      'netns',
      'cleanup',
      '--data-dir',
      dataDir,
    ]);
    assert.match(r.stdout, /removed namespace/);
    const after = (await execFileP('ip', ['netns', 'list'])).stdout
      .split('\n')
      .filter((l) => l.startsWith(prefix));
    assert.deepEqual(
      after.map((l) => l.split(' ')[0]),
      [`${prefix}bystander`],
    );
  });
});
