/**
 * Issue 18, "What it must show", for the public load balancer on the virtual router: end to end on the netns
 * driver, driven only through the CloudStack API (python `cs`) against a spawned `stacknet server --driver netns`.
 * Three VMs each serve HTTP naming themselves (busybox httpd); curl in the zone's upstream namespace counts who
 * answers through the router's haproxy:
 * - roundrobin spreads evenly; `source` keeps one client on one VM; an LbCookie policy keeps a cookie-carrying
 *   client on one VM;
 * - a health check takes a stopped backend out within its thresholds and brings it back;
 * - a change (a member assigned, so haproxy reloads) under a steady request stream loses no request;
 * - rebootRouter: the LB works again with the same rule.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient as Client, CsRig } from '../api/harness.js';
import { eventually, execIn, readLease, spawnIn } from '../../src/netns/index.js';
import type { SpawnedProcess } from '../../src/netns/index.js';
import { NetnsDriver } from '../../src/drivers/netns.js';
import { createTestZone } from '../networking/zone-fixture.js';

const isRoot = process.getuid?.() === 0;

describe(
  'public load balancing end to end on the netns driver (python cs)',
  { skip: !isRoot && 'needs root' },
  () => {
    let rig: Partial<CsRig> = {};
    let admin: Client;
    const prefix = `sn-${randomBytes(3).toString('hex')}-`;
    const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-lb-'));
    const ctl = `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`;
    const upstream = `${prefix}up-z1`;
    const id: Record<string, string> = {};
    const vms: Record<string, { id: string; ip: string; ns: string; httpd?: SpawnedProcess }> = {};
    let lbIp = '';

    const job = { fetch_result: true };
    const cs = async (cmd: string, p: Record<string, unknown>) => ok(await admin(cmd, p, job), cmd);

    /** busybox httpd in the VM's namespace serving `/` = its name. */
    const startHttpd = (name: string) => {
      const dir = join(dataDir, 'www', name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'index.html'), `${name}\n`);
      vms[name]!.httpd = spawnIn(vms[name]!.ns, ['busybox', 'httpd', '-f', '-p', '80', '-h', dir]);
    };

    /** One request from the upstream namespace; the VM that answered, or null. */
    const get = async (port: number, jar?: string): Promise<string | null> => {
      const argv = [
        'curl',
        '-s',
        '--max-time',
        '2',
        ...(jar ? ['-b', jar, '-c', jar] : []),
        `http://${lbIp}:${port}/`,
      ];
      const r = await execIn(upstream, argv, { timeoutMs: 5000 }).catch(() => null);
      return r && r.code === 0 && r.stdout.trim() ? r.stdout.trim() : null;
    };

    const tally = async (port: number, n: number, jar?: string): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const who = (await get(port, jar)) ?? 'failed';
        out[who] = (out[who] ?? 0) + 1;
      }
      return out;
    };

    const createRule = async (name: string, port: number, algorithm: string, members: string[]) => {
      const rule = (
        await cs('createLoadBalancerRule', {
          publicipid: id.ip,
          name,
          algorithm,
          publicport: port,
          privateport: 80,
          openfirewall: true,
        })
      ).loadbalancer;
      await cs('assignToLoadBalancerRule', {
        id: rule.id,
        virtualmachineids: members.map((m) => vms[m]!.id).join(','),
      });
      await eventually(
        async () => {
          if ((await get(port)) === null) throw new Error('no answer yet');
        },
        { timeoutMs: 20_000, what: `rule ${name} to answer on ${port}` },
      );
      return rule.id as string;
    };

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
          publicVlan: '70',
          publicPrefix: '203.0.113',
          guestCidr: '10.7.0.0/16',
        })
      ).zone;
      const so = ok(await admin('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0]
        .id;
      const tpl = ok(await admin('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
      const off = ok(
        await admin('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' }),
        'offerings',
      ).networkoffering[0].id;
      id.net = ok(
        await admin('createNetwork', {
          zoneid: id.zone,
          name: 'lbnet',
          displaytext: 'lbnet',
          networkofferingid: off,
          gateway: '10.7.1.1',
          netmask: '255.255.255.0',
        }),
        'createNetwork',
      ).network.id;
      for (const name of ['web1', 'web2', 'web3']) {
        const vm = (
          await cs('deployVirtualMachine', {
            serviceofferingid: so,
            templateid: tpl,
            zoneid: id.zone,
            networkids: id.net,
            name,
          })
        ).virtualmachine;
        vms[name] = { id: vm.id, ip: vm.nic[0].ipaddress, ns: `${prefix}${vm.instancename}` };
      }
      for (const name of ['web1', 'web2', 'web3']) {
        await eventually(
          async () => {
            const l = await readLease(vms[name]!.ns, 'eth0');
            assert.equal(l?.ip, vms[name]!.ip);
          },
          { timeoutMs: 30_000, what: `${name} to hold its address` },
        );
        startHttpd(name);
      }
      const ip = (await cs('associateIpAddress', { networkid: id.net })).ipaddress;
      id.ip = ip.id;
      lbIp = ip.ipaddress;
    });

    after(async () => {
      await Promise.all(Object.values(vms).map((v) => v.httpd?.stop(500)));
      await stopCsRig(rig);
      await NetnsDriver.cleanup(join(dataDir, 'netns'));
      rmSync(dataDir, { recursive: true, force: true });
    });

    test('roundrobin spreads requests evenly over the three VMs', async () => {
      id.rr = await createRule('rr', 8080, 'roundrobin', ['web1', 'web2', 'web3']);
      const t = await tally(8080, 30);
      assert.deepEqual(t, { web1: 10, web2: 10, web3: 10 }, JSON.stringify(t));
    });

    test('source keeps one client on one VM; an LbCookie policy keeps a cookie-carrying client on one VM', async () => {
      await createRule('src', 8081, 'source', ['web1', 'web2', 'web3']);
      const s = await tally(8081, 12);
      assert.equal(Object.keys(s).length, 1, `one client, one VM: ${JSON.stringify(s)}`);
      assert.ok(!('failed' in s));
      const ck = await createRule('cookie', 8082, 'roundrobin', ['web1', 'web2', 'web3']);
      await cs('createLBStickinessPolicy', {
        lbruleid: ck,
        methodname: 'LbCookie',
        name: 'sticky',
        'param[0].name': 'cookie-name',
        'param[0].value': 'SNLB',
      });
      const jar = join(dataDir, 'cookies.txt');
      await eventually(
        async () => {
          rmSync(jar, { force: true });
          const t = await tally(8082, 9, jar);
          assert.equal(
            Object.keys(t).length,
            1,
            `the cookie keeps the client on one VM: ${JSON.stringify(t)}`,
          );
        },
        { timeoutMs: 20_000, what: 'the stickiness policy to be in force' },
      );
      const fresh = await tally(8082, 9);
      assert.equal(Object.keys(fresh).length, 3, `without the cookie roundrobin: ${JSON.stringify(fresh)}`);
    });

    test('a health check takes a stopped backend out within its thresholds and brings it back', async () => {
      await cs('createLBHealthCheckPolicy', {
        lbruleid: id.rr,
        pingpath: '/index.html',
        intervaltime: 3,
        responsetimeout: 2,
        healthythreshold: 2,
        unhealthythreshold: 2,
      });
      await vms.web2!.httpd!.stop(500);
      const t0 = Date.now();
      await eventually(
        async () => {
          const t = await tally(8080, 12);
          assert.deepEqual(t, { web1: 6, web3: 6 }, JSON.stringify(t));
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'web2 to be taken out' },
      );
      console.log(`# web2 out of the rotation ${Date.now() - t0} ms after it stopped`);
      // The router's health checks reach the API: the instance's `servicestate`, as CloudStack's LB VM map.
      await eventually(
        async () => {
          const r = ok(
            await admin('listLoadBalancerRuleInstances', { id: id.rr, lbvmips: true }),
            'instances',
          );
          const states = Object.fromEntries(
            r.lbrulevmidip.map((x: { loadbalancerruleinstance: { name: string; servicestate: string } }) => [
              x.loadbalancerruleinstance.name,
              x.loadbalancerruleinstance.servicestate,
            ]),
          );
          assert.deepEqual(states, { web1: 'UP', web2: 'DOWN', web3: 'UP' });
        },
        { timeoutMs: 20_000, what: 'the health to reach the API' },
      );
      startHttpd('web2');
      const t1 = Date.now();
      await eventually(
        async () => {
          const t = await tally(8080, 12);
          assert.deepEqual(t, { web1: 4, web2: 4, web3: 4 }, JSON.stringify(t));
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'web2 to be back' },
      );
      console.log(`# web2 back in the rotation ${Date.now() - t1} ms after it started`);
    });

    test('a change under a steady request stream loses no request', async () => {
      const rule = await createRule('steady', 8083, 'roundrobin', ['web1']);
      let stop = false;
      let sent = 0;
      let failed = 0;
      const stream = (async () => {
        while (!stop) {
          sent++;
          if ((await get(8083)) === null) failed++;
        }
      })();
      await new Promise((r) => setTimeout(r, 500));
      await cs('assignToLoadBalancerRule', { id: rule, virtualmachineids: vms.web2!.id });
      await cs('updateLoadBalancerRule', { id: rule, algorithm: 'leastconn' });
      await cs('removeFromLoadBalancerRule', { id: rule, virtualmachineids: vms.web1!.id });
      await new Promise((r) => setTimeout(r, 1000));
      stop = true;
      await stream;
      console.log(`# ${sent} requests across three reloads, ${failed} failed`);
      assert.equal(failed, 0);
      assert.equal(await get(8083), 'web2');
    });

    test('rebootRouter: the LB works again with the same rules', async () => {
      const r = ok(await admin('listRouters', { networkid: id.net }), 'listRouters').router[0];
      await cs('rebootRouter', { id: r.id });
      await eventually(
        async () => {
          const t = await tally(8080, 3);
          assert.equal(Object.keys(t).length, 3, JSON.stringify(t));
        },
        { timeoutMs: 30_000, what: 'roundrobin back after the reboot' },
      );
    });
  },
);
