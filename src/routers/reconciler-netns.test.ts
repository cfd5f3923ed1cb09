/**
 * The reconciler against a real router agent (netns driver, root): converges, heals drift that somebody else
 * pushed straight to the agent (a newer generation with other content), and rebuilds an agent that was killed and
 * lost its data — all without being asked, from the watch loop. Two reconcilers share the database; only the
 * lease holder acts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestStore } from '../store/testing/test-databases.js';
import { NetnsDriver } from '../drivers/netns.js';
import { pushFull } from '../agent/control-client.js';
import type { DesiredState } from '../agent/desired-state.js';
import { RouterReconciler } from './reconciler.js';
import { routerById } from './repository.js';
import { routerRuntime } from './runtime.js';
import { insertRouter, insertVmWithNic, insertZoneAndNetwork } from './testing/fixtures.js';

const isRoot = process.getuid?.() === 0;

async function until(what: string, pred: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test(
  'reconciler with a real agent: converge, heal drift, rebuild after a crash; one owner of two',
  { skip: !isRoot && 'needs root' },
  async () => {
    const t = await createTestStore('sqlite');
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-recnetns-'));
    const prefix = `sn-${randomBytes(3).toString('hex')}-`;
    const third = 10 + (randomBytes(1)[0]! % 240);
    const driver = new NetnsDriver({ dataDir: dir, prefix, controlCidr: `169.254.${third}.0/24` });
    const a = new RouterReconciler({
      store: t.store,
      driver,
      serverId: 'ms-a',
      scanIntervalMs: 100,
      resyncMs: 300,
    });
    const b = new RouterReconciler({
      store: t.store,
      driver,
      serverId: 'ms-b',
      scanIntervalMs: 100,
      resyncMs: 300,
    });
    try {
      const db = t.store.db;
      const { zoneId, networkId } = await insertZoneAndNetwork(db);
      const secret = 'real-agent-secret';
      const rid = await insertRouter(db, zoneId, networkId, { secret, controlIp: `169.254.${third}.7` });
      await insertVmWithNic(db, zoneId, networkId, {
        name: 'vm1',
        ip: '10.1.1.10',
        mac: '02:00:00:00:00:01',
      });
      a.start();
      b.start();
      const converged = async () => {
        const r = (await routerById(db, rid))!;
        return (
          r.state === 'Running' &&
          r.applied_generation !== null &&
          Number(r.applied_generation) === Number(r.desired_generation)
        );
      };
      await until('first convergence', converged);
      const row = (await routerById(db, rid))!;
      const owner = row.lease_owner;
      assert.ok(owner === 'ms-a' || owner === 'ms-b');
      const stateFile = join(dir, 'routers', row.name, 'data', 'applied-state.json');
      const applied = () => JSON.parse(readFileSync(stateFile, 'utf8')) as DesiredState;
      // The agent saves its applied state a moment after applying it.
      const hostsNow = () => {
        try {
          return applied()
            .hosts.map((h) => h.hostname)
            .join(',');
        } catch {
          return '';
        }
      };
      await until('the applied state on disk', async () => hostsNow() === 'vm1');

      // Drift: somebody pushes other content under a newer generation straight to the agent.
      const rogue = { ...applied(), generation: Number(row.desired_generation) + 5, hosts: [], metadata: {} };
      const pushed = await pushFull(`${row.control_ip}:3922`, secret, rogue);
      assert.ok(pushed.ok, JSON.stringify(pushed));
      await until('drift healed', async () => {
        const r = (await routerById(db, rid))!;
        return Number(r.desired_generation) > rogue.generation && (await converged()) && hostsNow() === 'vm1';
      });

      // Crash: the agent dies and its data is gone; the resync notices and the agent is rebuilt from the database.
      await driver.rebootRouter(await routerRuntime(db, (await routerById(db, rid))!));
      await until('rebuilt after the crash', async () => {
        try {
          return (await converged()) && hostsNow() === 'vm1';
        } catch {
          return false;
        }
      });
      assert.equal((await routerById(db, rid))!.lease_owner, owner, 'the lease stayed with one server');
    } finally {
      await a.stop();
      await b.stop();
      await NetnsDriver.cleanup(dir);
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
