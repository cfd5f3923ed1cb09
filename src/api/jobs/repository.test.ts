/**
 * The job queue's claim under contention: several claimers (two pools on PostgreSQL/MariaDB, as two servers have)
 * claim batches from one queue at once; every runnable job is claimed exactly once, with one more attempt, and
 * none that is leased to somebody else or was started maxAttempts times. A job queued leased to a server is
 * not claimed by another until that lease runs out.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createTestDatabase, testDbKinds } from '../../store/testing/test-databases.js';
import type { TestDatabase } from '../../store/testing/test-databases.js';
import { nowMs, openStore, transaction } from '../../store/db.js';
import type { Store } from '../../store/db.js';
import { claimJobs, enqueueJob, failAbandonedJobs, finishJob } from './repository.js';
import type { ClaimedJob } from './repository.js';

const MAX_ATTEMPTS = 3;
const caller = {
  userId: 1,
  accountId: 1,
  domainId: 1,
  username: 'u',
  accountName: 'a',
  accountType: 1,
  role: 'Admin',
} as never;

async function insertJob(store: Store, attempts: number, leaseUntil: number | null): Promise<number> {
  const r = await store.db
    .insertInto('async_jobs')
    .values({
      uuid: randomUUID(),
      command: 'deleteDomain',
      params: '{}',
      user_id: 1,
      account_id: 1,
      domain_id: 1,
      status: 0,
      result_code: 0,
      result: null,
      instance_type: null,
      instance_id: null,
      lease_owner: leaseUntil === null ? null : 'someone',
      lease_until: leaseUntil,
      attempts,
      created: nowMs(),
      completed: null,
    })
    .executeTakeFirst();
  if (r.insertId !== undefined) return Number(r.insertId);
  const row = await store.db
    .selectFrom('async_jobs')
    .select((eb) => eb.fn.max('id').as('id'))
    .executeTakeFirstOrThrow();
  return Number(row.id);
}

for (const kind of testDbKinds()) {
  describe(`claiming async jobs in batches (${kind})`, () => {
    let tdb: TestDatabase;
    const stores: Store[] = [];

    before(async () => {
      tdb = await createTestDatabase(kind);
      // SQLite: one store (one process); the others: one pool per "server".
      for (let i = 0; i < (kind === 'sqlite' ? 1 : 3); i++)
        stores.push(await openStore(tdb.url, { poolSize: 4 }));
    });

    after(async () => {
      for (const s of stores) await s.close();
      await tdb?.drop();
    });

    test('racing claimers take each runnable job exactly once', async () => {
      const store = stores[0]!;
      const runnable = new Map<number, number>();
      const never = new Set<number>();
      for (let i = 0; i < 120; i++) {
        const attempts = i % 3; // 0, 1 or 2: all below MAX_ATTEMPTS
        const expired = i % 4 === 0 ? nowMs() - 1_000 : null;
        runnable.set(await insertJob(store, attempts, expired), attempts);
      }
      for (let i = 0; i < 10; i++) never.add(await insertJob(store, MAX_ATTEMPTS, null)); // abandoned too often
      for (let i = 0; i < 10; i++) never.add(await insertJob(store, 1, nowMs() + 60_000)); // leased, alive
      const claimed: ClaimedJob[] = [];
      await Promise.all(
        Array.from({ length: 6 }, async (_, c) => {
          const s = stores[c % stores.length]!;
          for (;;) {
            const got = await claimJobs(s, `owner-${c}`, 60_000, 7, MAX_ATTEMPTS);
            if (got.length === 0) return;
            claimed.push(...got);
          }
        }),
      );
      // SKIP LOCKED: a claimer that got nothing may have met rows another claimer's statement held locked at that
      // instant without claiming them, so an empty claim is not proof that nothing is left (a runner simply claims
      // again at its next pump). One more claim with nobody racing takes what is left, still each job once.
      for (;;) {
        const got = await claimJobs(store, 'owner-last', 60_000, 7, MAX_ATTEMPTS);
        if (got.length === 0) break;
        claimed.push(...got);
      }
      const ids = claimed.map((j) => j.id);
      assert.equal(new Set(ids).size, ids.length, 'no job claimed twice');
      assert.deepEqual(
        [...ids].sort((a, b) => a - b),
        [...runnable.keys()].sort((a, b) => a - b),
        'every runnable job claimed, nothing else',
      );
      for (const j of claimed) assert.equal(j.attempts, runnable.get(j.id)! + 1, `job ${j.id} attempts`);
      const rows = await store.db
        .selectFrom('async_jobs')
        .select(['id', 'attempts', 'lease_owner'])
        .where('id', 'in', ids)
        .execute();
      const owner = new Map(claimed.map((j) => [j.id, j]));
      for (const r of rows) assert.equal(Number(r.attempts), owner.get(Number(r.id))!.attempts);
      for (const id of never) assert.ok(!owner.has(id));
      // The abandoned ones are the sweep's: failed once their lease (none) has run out.
      await transaction(store, (tx) =>
        tx
          .updateTable('async_jobs')
          .set({ lease_until: nowMs() - 1 })
          .where('attempts', '>=', MAX_ATTEMPTS)
          .execute(),
      );
      assert.ok((await failAbandonedJobs(store.db, MAX_ATTEMPTS)) >= 10);
    });

    test('a job queued leased to a server is claimed by nobody else until the lease runs out', async () => {
      const store = stores[0]!;
      await store.db.deleteFrom('async_jobs').execute();
      const job = await transaction(store, (tx) =>
        enqueueJob(
          tx,
          { command: 'deleteDomain', params: {}, caller },
          { owner: 'queuing-server', until: nowMs() + 60_000 },
        ),
      );
      const other = stores[stores.length - 1]!;
      assert.deepEqual(await claimJobs(other, 'other-server', 60_000, 16, MAX_ATTEMPTS), []);
      await store.db
        .updateTable('async_jobs')
        .set({ lease_until: nowMs() - 1 })
        .where('id', '=', job.id)
        .execute();
      const taken = await claimJobs(other, 'other-server', 60_000, 16, MAX_ATTEMPTS);
      assert.deepEqual(
        taken.map((j) => [j.uuid, j.attempts]),
        [[job.uuid, 2]],
      );
      // The first server's result is refused: the job is somebody else's now.
      await assert.rejects(
        finishJob(store.db, job.id, 'queuing-server', { status: 1, resultCode: 0, result: {} }),
        /no longer held/,
      );
      await finishJob(other.db, job.id, 'other-server', { status: 1, resultCode: 0, result: {} });
    });
  });
}
