/**
 * A remembered caller (caller-check.ts) keeps "a change to a user is refused at its next request, on every
 * server": two servers on one database, a user's associateIpAddress and queryAsyncJobResult served by one while
 * the user is locked, re-enabled, given new keys and deleted through the other (and locked through the same
 * one). And the cut itself: a poll is one statement (on SQLite the caller is not read at all while no user,
 * account or domain changed).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, testDbKinds } from '../store/testing/test-databases.js';
import type { TestDatabase } from '../store/testing/test-databases.js';
import { buildTestServer, injectClient, zoneWithTwoNetworks } from '../server/testing/test-server.js';
import type { BuiltServer } from '../server/build-server.js';

const admin = { apiKey: 'cc-admin-key', secretKey: 'cc-admin-secret' };

for (const kind of testDbKinds()) {
  describe(`a remembered caller on ${kind}`, () => {
    let tdb: TestDatabase;
    let dir: string;
    let a: BuiltServer;
    let b: BuiltServer;

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-caller-check-'));
      a = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys: admin });
      b = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys: admin });
    });

    after(async () => {
      await a?.close();
      await b?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a locked, re-enabled, re-keyed and deleted user takes effect at the next request on the other server', async () => {
      const adminA = injectClient(() => a, admin);
      const adminB = injectClient(() => b, admin);
      const { zone } = await zoneWithTwoNetworks(adminA);
      const acct = await adminB.okCall('createAccount', {
        accounttype: '0',
        username: 'ccuser',
        password: 'cc-user-pw',
        email: 'ccuser@example.com',
        firstname: 'cc',
        lastname: 'user',
        response: 'json',
      });
      const userId = acct.account.user[0].id as string;
      const accountId = acct.account.id as string;
      const register = async () => {
        const k = (await adminB.okCall('registerUserKeys', { id: userId, response: 'json' })).userkeys;
        return { apiKey: k.apikey as string, secretKey: k.secretkey as string };
      };
      let keys = await register();
      const userA = () => injectClient(() => a, keys);
      const held = async () =>
        (
          await adminB.okCall('listPublicIpAddresses', {
            zoneid: zone,
            accountid: accountId,
            listall: 'true',
            response: 'json',
          })
        ).count ?? 0;
      const associate = () => userA().call('associateIpAddress', { zoneid: zone, response: 'json' });

      // Served and remembered by server a; the job's polls too.
      for (let i = 0; i < 2; i++) {
        const r = await userA().job('associateIpAddress', { zoneid: zone, response: 'json' });
        assert.ok(r.ok, JSON.stringify(r.error));
      }
      assert.equal(await held(), 2);
      const { jobid } = (await associate()).body;
      assert.ok(jobid);
      assert.equal(await held(), 3);

      // What a poll and an association request cost server a, in statements.
      const counted = async (fn: () => Promise<unknown>) => {
        const before = a.store.statements.count;
        await fn();
        return a.store.statements.count - before;
      };
      for (let i = 0; i < 2; i++) await userA().okCall('queryAsyncJobResult', { jobid, response: 'json' });
      const poll = await counted(() => userA().okCall('queryAsyncJobResult', { jobid, response: 'json' }));
      // The job finished on server a: its poll is answered from memory (jobs/finished.ts); on SQLite the caller is
      // known afresh with no statement, on PostgreSQL/MariaDB the caller check is the one read left.
      assert.equal(
        poll,
        kind === 'sqlite' ? 0 : 1,
        'a poll of a remembered caller: the caller check alone (none on SQLite)',
      );

      await adminB.okCall('lockUser', { id: userId, response: 'json' });
      const locked = await associate();
      assert.equal(locked.status, 401, JSON.stringify(locked.body));
      assert.equal(await held(), 3, 'a refused request takes no address');
      assert.equal((await userA().call('queryAsyncJobResult', { jobid, response: 'json' })).status, 401);
      // A request for a zone that does not exist is refused as unauthenticated too, not answered with a 431.
      assert.equal(
        (await userA().call('associateIpAddress', { zoneid: 'nope', response: 'json' })).status,
        401,
      );

      await adminB.okCall('enableUser', { id: userId, response: 'json' });
      assert.equal((await associate()).status, 200);
      assert.equal(await held(), 4);

      const old = keys;
      keys = await register();
      const byOld = injectClient(() => a, old);
      assert.equal((await byOld.call('associateIpAddress', { zoneid: zone, response: 'json' })).status, 401);
      assert.equal((await byOld.call('queryAsyncJobResult', { jobid, response: 'json' })).status, 401);
      // The new key with the old secret (a client that kept it) is refused too.
      const mixed = injectClient(() => a, { apiKey: keys.apiKey, secretKey: old.secretKey });
      assert.equal((await mixed.call('queryAsyncJobResult', { jobid, response: 'json' })).status, 401);
      assert.equal(await held(), 4);
      assert.equal((await userA().call('queryAsyncJobResult', { jobid, response: 'json' })).status, 200);
      assert.equal((await associate()).status, 200);
      assert.equal(await held(), 5);

      const disabled = await adminB.call('disableAccount', {
        id: accountId,
        lock: 'true',
        response: 'json',
      });
      if (disabled.status === 200 && disabled.body.jobid) {
        // an async command: wait for it through server b
        for (let i = 0; i < 200; i++) {
          const q = await adminB.okCall('queryAsyncJobResult', {
            jobid: disabled.body.jobid,
            response: 'json',
          });
          if (q.jobstatus !== 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal((await associate()).status, 401, 'a disabled account');
        await adminB.okCall('enableAccount', { id: accountId, response: 'json' });
        assert.equal((await associate()).status, 200);
      }

      // Changed through the server that remembers it (on SQLite its own connection's write, which PRAGMA
      // data_version does not report).
      await adminA.okCall('lockUser', { id: userId, response: 'json' });
      assert.equal((await associate()).status, 401, 'locked through the same server');
      await adminA.okCall('enableUser', { id: userId, response: 'json' });
      assert.equal((await associate()).status, 200);

      await adminB.okCall('deleteUser', { id: userId, response: 'json' });
      assert.equal((await associate()).status, 401, 'a deleted user');
      assert.equal((await userA().call('queryAsyncJobResult', { jobid, response: 'json' })).status, 401);
    });
  });
}
