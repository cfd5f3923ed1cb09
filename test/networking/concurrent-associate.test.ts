/**
 * 64 concurrent python `cs` clients call associateIpAddress on one /24 range until it is exhausted, against TWO
 * `stacknet server` processes sharing one database (PostgreSQL, and separately MariaDB): every address is
 * handed out exactly once, nothing answers 5xx, every client ends on 533, and every job ran exactly once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import { openStore } from '../../src/store/db.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { CsBridge, ok, startServer } from '../api/harness.js';
import type { ServerProcess } from '../api/harness.js';

const root = process.env.STACKNET_ROOT ?? new URL('../..', import.meta.url).pathname;
const CLIENTS = 64;

interface Outcome {
  ips: string[];
  errors: unknown[];
  exhausted: number;
  seconds: number;
}

function runClients(zoneId: string, key: string, secret: string, endpoints: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      '/usr/bin/python3',
      [
        join(root, 'test/networking/concurrent_associate.py'),
        zoneId,
        String(CLIENTS),
        key,
        secret,
        ...endpoints,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (err += String(d)));
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`clients exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as Outcome);
    });
  });
}

const kinds = testDbKinds().filter((k) => k === 'postgres' || k === 'mysql');

for (const kind of kinds) {
  describe(`64 concurrent associateIpAddress on two servers sharing ${kind}`, () => {
    let tdb: TestDatabase;
    const servers: ServerProcess[] = [];
    let bridge: CsBridge;

    before(async () => {
      tdb = await createTestDatabase(kind);
      // Both servers use the same admin keys (the first bootstraps them, the second finds them) and the same
      // server key, which seals those secrets in the database.
      const first = await startServer(tdb.url);
      servers.push(first);
      servers.push(
        await startServer(tdb.url, {
          STACKNET_ADMIN_API_KEY: first.apiKey,
          STACKNET_ADMIN_SECRET_KEY: first.secretKey,
          STACKNET_SERVER_KEY_FILE: first.serverKeyFile,
        }),
      );
      bridge = new CsBridge();
    });

    after(async () => {
      await bridge?.close();
      for (const s of servers) {
        const code = await s.stop();
        assert.equal(code, 0, `server exit code\n${s.output()}`);
      }
      await tdb?.drop();
    });

    test('every address of the /24 handed out exactly once, no 5xx, the rest 533', async () => {
      const s = servers[0]!;
      const admin = bridge.client(s.url, s.apiKey, s.secretKey);
      const zone = ok(
        await admin('createZone', {
          name: 'cz',
          networktype: 'Advanced',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
        }),
        'createZone',
      ).zone.id as string;
      ok(
        await admin(
          'createPhysicalNetwork',
          { zoneid: zone, name: 'pn', vlan: '100-199' },
          { fetch_result: true },
        ),
        'createPhysicalNetwork',
      );
      ok(
        await admin('createVlanIpRange', {
          zoneid: zone,
          vlan: '20',
          gateway: '10.200.0.1',
          netmask: '255.255.255.0',
          startip: '10.200.0.2',
          endip: '10.200.0.254',
        }),
        'createVlanIpRange',
      );
      const outcome = await runClients(
        zone,
        s.apiKey,
        s.secretKey,
        servers.map((x) => x.url),
      );
      assert.deepEqual(outcome.errors, [], 'no error other than 533');
      assert.equal(outcome.exhausted, CLIENTS, 'every client ended on 533');
      assert.equal(outcome.ips.length, 253, 'the whole range was handed out');
      assert.equal(new Set(outcome.ips).size, outcome.ips.length, 'no address handed out twice');
      const listed = ok(
        await admin('listPublicIpAddresses', { zoneid: zone, listall: true, page: 1, pagesize: 500 }),
        'listPublicIpAddresses',
      );
      assert.equal(listed.count, 253);
      assert.deepEqual(
        new Set(listed.publicipaddress.map((p: { ipaddress: string }) => p.ipaddress)),
        new Set(outcome.ips),
      );
      const cap = ok(await admin('listCapacity', { zoneid: zone, type: 4 }), 'listCapacity').capacity[0];
      assert.equal(cap.capacityused, 253);
      assert.equal(cap.capacitytotal, 253);
      // One job per address (a refusal queues none), each succeeded on its first and only run.
      const store = await openStore(tdb.url, { poolSize: 1 });
      try {
        const jobs = await store.db
          .selectFrom('async_jobs')
          .select(['status', 'attempts', 'instance_id'])
          .where('command', '=', 'associateIpAddress')
          .execute();
        assert.equal(jobs.length, 253, 'one job per address');
        assert.equal(new Set(jobs.map((j) => j.instance_id)).size, 253, 'one job per address');
        assert.deepEqual(
          jobs.filter((j) => Number(j.status) !== 1 || Number(j.attempts) !== 1),
          [],
          'every job succeeded on its one run',
        );
      } finally {
        await store.close();
      }
    });
  });
}
