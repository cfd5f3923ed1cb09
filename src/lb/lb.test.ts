/**
 * Load balancer rules against real SQLite, PostgreSQL and MariaDB, through an in-process server (simulator
 * driver): the LoadBalancerRuleSpecs a network's router receives (members sorted by guest address, vmidipmap's
 * secondary address, cidrlist, stickiness, health check), the router bumped by each change, a member's health
 * read from the routers' stored status (`routers.health.lb[ruleUuid][guestIp]`), and a member re-run.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, testDbKinds } from '../store/testing/test-databases.js';
import type { TestDatabase } from '../store/testing/test-databases.js';
import {
  buildTestServer,
  injectClient,
  rewindJob,
  zoneWithTwoNetworks,
} from '../server/testing/test-server.js';
import type { BuiltServer } from '../server/build-server.js';
import { lbSpecsForNetwork } from './desired.js';
import { ruleSpecsForNetwork } from '../rules/desired.js';
import { ipOrder, memberState } from './members.js';

for (const kind of testDbKinds()) {
  describe(`load balancer rules: router specs and health (${kind})`, () => {
    let tdb: TestDatabase;
    let s: BuiltServer;
    let dir: string;
    const keys = { apiKey: 'lb-key', secretKey: 'lb-secret' };
    const client = injectClient(() => s, keys);
    const okJob = async (command: string, params: Record<string, string>) => {
      const r = await client.job(command, params);
      assert.ok(r.ok, `${command}: ${JSON.stringify(r.error)}`);
      return r.result;
    };
    const id: Record<string, string> = {};
    const at = (k: string): string => id[k]!;
    let netId = 0;
    const generation = async () =>
      Number(
        (
          await s.store.db
            .selectFrom('routers')
            .select('desired_generation')
            .where('network_id', '=', netId)
            .where('removed', 'is', null)
            .executeTakeFirstOrThrow()
        ).desired_generation,
      );

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-lb-'));
      s = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys });
      const z = await zoneWithTwoNetworks(client);
      id.net = z.net;
      for (const vm of ['a', 'b']) {
        const v = (
          await okJob('deployVirtualMachine', {
            serviceofferingid: z.so,
            templateid: z.tpl,
            zoneid: z.zone,
            networkids: at('net'),
            name: vm,
          })
        ).virtualmachine;
        id[vm] = v.id;
        id[`${vm}ip`] = v.nic[0].ipaddress;
        id[`${vm}nic`] = v.nic[0].id;
      }
      id.asec = (await okJob('addIpToNic', { nicid: id.anic! })).nicsecondaryip.ipaddress;
      const ip = (await okJob('associateIpAddress', { networkid: at('net') })).ipaddress;
      id.ip = ip.id;
      id.ipaddr = ip.ipaddress;
      netId = Number(
        (
          await s.store.db
            .selectFrom('networks')
            .select('id')
            .where('uuid', '=', at('net'))
            .executeTakeFirstOrThrow()
        ).id,
      );
    });

    after(async () => {
      await s?.close();
      await tdb?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('the router receives the rule, its members, cidrlist and policies; each change bumps it', async () => {
      const g0 = await generation();
      const lb = (
        await okJob('createLoadBalancerRule', {
          publicipid: id.ip!,
          name: 'web',
          algorithm: 'source',
          publicport: '443',
          privateport: '8443',
          cidrlist: '192.0.2.0/24,198.51.100.0/24',
        })
      ).loadbalancer;
      id.lb = lb.id;
      assert.equal(lb.state, 'Active');
      const g1 = await generation();
      assert.ok(g1 > g0, 'create bumps the router');
      await okJob('assignToLoadBalancerRule', {
        id: lb.id,
        virtualmachineids: `${id.a},${id.b}`,
        'vmidipmap[0].vmid': id.a!,
        'vmidipmap[0].vmip': id.asec!,
      });
      const g2 = await generation();
      assert.ok(g2 > g1, 'assign bumps the router');
      await okJob('createLBStickinessPolicy', {
        lbruleid: lb.id,
        name: 's',
        methodname: 'appcookie',
        'param[0].name': 'cookie-name',
        'param[0].value': 'JSESSIONID',
        'param[1].name': 'holdtime',
        'param[1].value': '3h',
      });
      await okJob('createLBHealthCheckPolicy', { lbruleid: lb.id, pingpath: '/ping', intervaltime: '7' });
      assert.ok((await generation()) > g2, 'policies bump the router');

      const specs = await lbSpecsForNetwork(s.store.db, netId);
      const members = [
        { vmId: id.a!, guestIp: id.aip! },
        { vmId: id.a!, guestIp: id.asec! },
        { vmId: id.b!, guestIp: id.bip! },
      ].sort((x, y) => ipOrder(x.guestIp, y.guestIp));
      assert.deepEqual(specs, [
        {
          kind: 'loadBalancer',
          id: lb.id,
          publicIp: id.ipaddr,
          publicPort: 443,
          privatePort: 8443,
          algorithm: 'source',
          members,
          sourceCidrs: ['192.0.2.0/24', '198.51.100.0/24'],
          stickiness: { method: 'AppCookie', params: { 'cookie-name': 'JSESSIONID', holdtime: '3h' } },
          healthCheck: {
            pingPath: '/ping',
            intervalSeconds: 7,
            timeoutSeconds: 2,
            healthyThreshold: 2,
            unhealthyThreshold: 1,
          },
        },
      ]);
      // The LB rule is not a firewall spec; its openfirewall rule is.
      const rules = await ruleSpecsForNetwork(s.store.db, netId);
      assert.deepEqual(
        rules.map((r) => [r.kind, r.kind === 'firewall' ? r.ports : undefined]),
        [['firewall', { start: 443, end: 443 }]],
      );
    });

    test("a member's servicestate is what the routers reported, Unknown without a report", async () => {
      const states = async () => {
        const { okCall } = client;
        const r = await okCall('listLoadBalancerRuleInstances', { id: id.lb! });
        return Object.fromEntries(
          r.loadbalancerruleinstance.map((v: { id: string; servicestate: string }) => [v.id, v.servicestate]),
        );
      };
      assert.deepEqual(await states(), { [id.a!]: 'Unknown', [id.b!]: 'Unknown' });
      const router = await s.store.db
        .selectFrom('routers')
        .select(['id', 'health'])
        .where('network_id', '=', netId)
        .where('removed', 'is', null)
        .executeTakeFirstOrThrow();
      const health = { ...(router.health ? JSON.parse(String(router.health)) : {}) };
      health.lb = { [id.lb!]: { [id.aip!]: 'DOWN', [id.asec!]: 'UP', [id.bip!]: 'DOWN' } };
      await s.store.db
        .updateTable('routers')
        .set({ health: JSON.stringify(health) })
        .where('id', '=', router.id)
        .execute();
      // a: one of its addresses is UP; b: DOWN.
      assert.deepEqual(await states(), { [id.a!]: 'UP', [id.b!]: 'DOWN' });
      assert.equal(memberState([null, { lb: {} }], 'x', '10.0.0.1'), 'Unknown');
      assert.equal(
        memberState(
          [{ lb: { x: { '10.0.0.1': 'DOWN' } } }, { lb: { x: { '10.0.0.1': 'UP' } } }],
          'x',
          '10.0.0.1',
        ),
        'UP',
      );
    });

    test('an assign job re-run after its commit (server killed) finds its members and only waits', async () => {
      const settled = async (jobid: string) => {
        for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
          const q = await client.okCall('queryAsyncJobResult', { jobid });
          if (q.jobstatus !== 0) return q;
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`job ${jobid} not done`);
      };
      await okJob('removeFromLoadBalancerRule', { id: at('lb'), virtualmachineids: at('b') });
      const { jobid } = await client.okCall('assignToLoadBalancerRule', {
        id: at('lb'),
        virtualmachineids: at('b'),
      });
      assert.equal((await settled(jobid)).jobstatus, 1);
      await rewindJob(s, jobid);
      const q = await settled(jobid);
      assert.equal(q.jobstatus, 1, `the re-run finds its own work: ${JSON.stringify(q.jobresult)}`);
      const attempts = await s.store.db
        .selectFrom('async_jobs')
        .select('attempts')
        .where('uuid', '=', jobid)
        .executeTakeFirstOrThrow();
      assert.equal(Number(attempts.attempts), 2, 'the job ran again');
      const [spec] = await lbSpecsForNetwork(s.store.db, netId);
      assert.equal(spec!.members.filter((m) => m.vmId === at('b')).length, 1, 'assigned once');
    });

    test('expunging a member drops it from the spec; deleting the rule empties it', async () => {
      await okJob('destroyVirtualMachine', { id: id.b!, expunge: 'true' });
      const [spec] = await lbSpecsForNetwork(s.store.db, netId);
      assert.deepEqual(
        spec!.members.map((m) => m.vmId),
        [id.a, id.a],
      );
      await okJob('deleteLoadBalancerRule', { id: id.lb! });
      assert.deepEqual(await lbSpecsForNetwork(s.store.db, netId), []);
      assert.deepEqual(await ruleSpecsForNetwork(s.store.db, netId), []);
      for (const t of ['load_balancer_vm_map', 'load_balancer_policies'] as const) {
        const n = await s.store.db
          .selectFrom(t)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow();
        assert.equal(Number(n.n), 0, `${t} emptied`);
      }
    });
  });
}
