/**
 * The caller checks' reads, batched (fingerprint-batch.ts), on the databases where a request checks its
 * remembered caller (PostgreSQL, MariaDB; SQLite reads none): concurrent checks are one statement, each check is
 * answered by a read that started after it asked (a change made while a statement is in flight is seen by the
 * checks queued behind it), a change between batches is refused, and a failed read fails every check it carried.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmptyTestDatabase, createTestDatabase, testDbKinds } from '../store/testing/test-databases.js';
import type { TestDatabase } from '../store/testing/test-databases.js';
import { openStore } from '../store/db.js';
import type { Store } from '../store/db.js';
import { buildTestServer, injectClient } from '../server/testing/test-server.js';
import type { BuiltServer } from '../server/build-server.js';
import { callerByApiKeyChecked, callerFingerprints } from '../accounts/repository.js';
import { FingerprintBatch, fingerprintBatch } from './fingerprint-batch.js';
import { readCallerChecked, rememberedCaller, StaleCaller } from './caller-check.js';

const admin = { apiKey: 'fb-admin-key', secretKey: 'fb-admin-secret' };

for (const kind of testDbKinds().filter((k) => k !== 'sqlite')) {
  describe(`caller fingerprint reads batched on ${kind}`, () => {
    let tdb: TestDatabase;
    let dir: string;
    let server: BuiltServer;
    const client = () => injectClient(() => server, admin);
    /** A user of its own account with API keys, for the tests that change it. */
    const newUser = async (name: string) => {
      const acct = await client().okCall('createAccount', {
        accounttype: '0',
        username: name,
        password: 'fb-user-pw',
        email: `${name}@example.com`,
        firstname: 'fb',
        lastname: 'user',
      });
      const id = acct.account.user[0].id as string;
      const k = (await client().okCall('registerUserKeys', { id })).userkeys;
      return { id, apiKey: k.apikey as string, secretKey: k.secretkey as string };
    };
    const counted = async (store: Store, fn: () => Promise<unknown>) => {
      const before = store.statements.count;
      await fn();
      return store.statements.count - before;
    };
    const statements = (fn: () => Promise<unknown>) => counted(server.store, fn);
    const fingerprintNow = async (apiKey: string) =>
      (await callerByApiKeyChecked(server.store.db, apiKey))?.fingerprint ?? null;

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-fingerprint-batch-'));
      server = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys: admin });
    });

    after(async () => {
      await server?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('concurrent checks of several keys are one statement, each key answered with its own fingerprint', async () => {
      const u = await newUser('fbmany');
      const expected = new Map([
        [admin.apiKey, await fingerprintNow(admin.apiKey)],
        [u.apiKey, await fingerprintNow(u.apiKey)],
        ['fb-nobody-has-this-key', null],
      ]);
      assert.ok(expected.get(admin.apiKey) && expected.get(u.apiKey));
      // A store of its own: the server's workers send statements on theirs meanwhile.
      const store = await openStore(tdb.url);
      const keys = Array.from({ length: 30 }, (_, i) => [...expected.keys()][i % 3]!);
      let got: (string | null)[] = [];
      try {
        const batch = fingerprintBatch(store);
        const n = await counted(store, async () => {
          got = await Promise.all(keys.map((k) => batch.fingerprint(k)));
        });
        assert.equal(n, 1, '30 checks asked in one turn: one statement');
        // Asked while that statement is in flight, 30 more: one statement more.
        const m = await counted(store, async () => {
          const first = Promise.all(keys.map((k) => batch.fingerprint(k)));
          await new Promise((r) => setImmediate(r));
          await Promise.all([first, ...keys.map((k) => batch.fingerprint(k))]);
        });
        assert.equal(m, 2, 'checks asked while a statement is in flight: the next statement');
      } finally {
        await store.close();
      }
      assert.deepEqual(
        got,
        keys.map((k) => expected.get(k)),
      );
      // The statement itself, for many keys (PostgreSQL: an array parameter; MariaDB: an `in` list).
      const many = await callerFingerprints(
        server.store.db,
        [...expected.keys()],
        server.store.kind === 'postgres',
      );
      assert.deepEqual([...many].sort(), [...expected].filter(([, fp]) => fp !== null).sort());
    });

    test('concurrent polls of a finished job share their caller check', async () => {
      const domain = (await client().okCall('createDomain', { name: 'fb-poll' })).domain;
      const { jobid } = await client().okCall('deleteDomain', { id: domain.id });
      let status = 0;
      for (let i = 0; i < 200 && status === 0; i++) {
        status = (await client().okCall('queryAsyncJobResult', { jobid })).jobstatus;
        if (status === 0) await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(status, 1);
      const poll = () => client().okCall('queryAsyncJobResult', { jobid });
      await poll();
      const polls = 24;
      const n = await statements(() => Promise.all(Array.from({ length: polls }, poll)));
      assert.ok(n <= polls / 4, `${polls} concurrent polls took ${n} statements`);
    });

    test('a key disabled between batches is refused, and its request run again (StaleCaller)', async () => {
      const u = await newUser('fbstale');
      assert.ok(await readCallerChecked(server.store, u.apiKey));
      const first = rememberedCaller(server.store, u.apiKey)!;
      await first.check.ensure();
      assert.ok(first.check.confirmed);
      await server.store.db
        .updateTable('users')
        .set({ state: 'locked' })
        .where('api_key', '=', u.apiKey)
        .execute();
      const second = rememberedCaller(server.store, u.apiKey)!;
      assert.ok(second, 'still remembered: only a check finds the change');
      await assert.rejects(second.check.ensure(), StaleCaller);
      assert.equal(rememberedCaller(server.store, u.apiKey), undefined, 'forgotten once found stale');
      // Through the API: the request is run again with the caller read afresh, and refused.
      const locked = await injectClient(() => server, u).call('queryAsyncJobResult', { jobid: 'x' });
      assert.equal(locked.status, 401);
    });

    test('a key changed while a statement is in flight is seen by the checks queued behind it', async () => {
      const u = await newUser('fbflight');
      const old = await fingerprintNow(u.apiKey);
      let reads = 0;
      let inFlight!: () => void;
      const firstReadDone = new Promise<void>((r) => (inFlight = r));
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      // The real statement; the first one's answer is held back, as a slow round trip would hold it.
      const batch = new FingerprintBatch(async (keys) => {
        const r = await callerFingerprints(server.store.db, keys, server.store.kind === 'postgres');
        if (++reads === 1) {
          inFlight();
          await gate;
        }
        return r;
      });
      const before = batch.fingerprint(u.apiKey);
      await firstReadDone;
      const queued = batch.fingerprint(u.apiKey);
      const k = (await client().okCall('registerUserKeys', { id: u.id })).userkeys;
      await server.store.db
        .updateTable('users')
        .set({ api_key: u.apiKey })
        .where('api_key', '=', k.apikey as string)
        .execute();
      const changed = await fingerprintNow(u.apiKey);
      assert.notEqual(changed, old, 'the new secret is a new fingerprint');
      release();
      assert.equal(await before, old, 'the statement in flight answers as it read');
      assert.equal(await queued, changed, 'a check asked meanwhile waits for a statement sent after it');
      assert.equal(reads, 2);
    });

    test('a read that fails fails every check it carried, and the next batch reads again', async () => {
      // A database without the tables: the statement is refused.
      const empty = await createEmptyTestDatabase(kind);
      const store = await openStore(empty.url);
      try {
        const batch = fingerprintBatch(store);
        let results: PromiseSettledResult<string | null>[] = [];
        const n = await counted(store, async () => {
          results = await Promise.allSettled([1, 2, 3].map(() => batch.fingerprint(admin.apiKey)));
        });
        assert.equal(n, 1);
        assert.deepEqual(
          results.map((r) => r.status),
          ['rejected', 'rejected', 'rejected'],
        );
      } finally {
        await store.close();
        await empty.drop();
      }
      assert.equal(
        await fingerprintBatch(server.store).fingerprint(admin.apiKey),
        await fingerprintNow(admin.apiKey),
      );
    });
  });
}
