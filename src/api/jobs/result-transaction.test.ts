/**
 * A job's result stored in its handler's last transaction (CommandContext.resultTransaction): the work and the
 * result commit together or not at all. A server that has lost the job's lease, even in the middle of that
 * transaction, commits neither (the conditional UPDATE of the job row is at its end), so the job's work is done
 * exactly once, by the server that took it over; a job whose result committed is never run again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestDatabase, testDbKinds } from '../../store/testing/test-databases.js';
import type { TestDatabase } from '../../store/testing/test-databases.js';
import { nowMs, openStore, transaction } from '../../store/db.js';
import type { Store, Tx } from '../../store/db.js';
import { bootstrapAdmin } from '../../accounts/bootstrap.js';
import { callerByUserId } from '../../accounts/repository.js';
import { allRoles, defineCommand, objectResult } from '../command.js';
import type { AnyCommand, Caller, CommandContext } from '../command.js';
import { buildRegistry } from '../registry.js';
import { claimJobs, enqueueJob } from './repository.js';
import { JobRunner } from './runner.js';

const COMMAND = 'testResultTransaction';

async function eventually<T>(fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A command whose work (a row in jc_marks naming the server) is done in its result transaction. */
function command(server: string, stall?: (ctx: CommandContext) => Promise<void>): AnyCommand {
  return defineCommand({
    name: COMMAND,
    description: 'test: work and result in one transaction',
    roles: allRoles,
    isAsync: true,
    params: {},
    async handler(_p, ctx) {
      assert.ok(ctx.resultTransaction, 'a job has a result transaction');
      return ctx.resultTransaction(async (tx: Tx) => {
        await sql`insert into jc_marks (job, server) values (${ctx.jobId!}, ${server})`.execute(tx);
        await stall?.(ctx);
        return objectResult('mark', { server });
      });
    },
  }) as AnyCommand;
}

for (const kind of testDbKinds()) {
  describe(`a job's result in its own transaction (${kind})`, () => {
    let tdb: TestDatabase;
    let a: Store;
    let b: Store;
    let caller: Caller;
    const runners: JobRunner[] = [];

    const runner = (store: Store, owner: string, cmd: AnyCommand, log?: (m: string) => void, pollMs = 20) => {
      const r = new JobRunner({
        store,
        registry: buildRegistry([[cmd]]),
        owner,
        leaseMs: 60_000,
        pollMs,
        log,
      });
      runners.push(r);
      return r;
    };
    const queue = (store: Store) =>
      transaction(store, (tx) => enqueueJob(tx, { command: COMMAND, params: {}, caller }));
    const marks = async (uuid: string) =>
      (await sql<{ server: string }>`select server from jc_marks where job = ${uuid}`.execute(a.db)).rows.map(
        (r) => r.server,
      );
    const job = (uuid: string) =>
      a.db
        .selectFrom('async_jobs')
        .select(['status', 'attempts', 'result', 'lease_owner'])
        .where('uuid', '=', uuid)
        .executeTakeFirstOrThrow();

    before(async () => {
      tdb = await createTestDatabase(kind);
      a = await openStore(tdb.url, { poolSize: 4 });
      // Two servers share PostgreSQL or MariaDB; SQLite is one server's database.
      b = kind === 'sqlite' ? a : await openStore(tdb.url, { poolSize: 4 });
      await bootstrapAdmin(a, { adminPassword: 'result-tx-password' });
      const admin = await a.db
        .selectFrom('users')
        .select('id')
        .where('username', '=', 'admin')
        .executeTakeFirstOrThrow();
      caller = (await callerByUserId(a.db, Number(admin.id)))!.caller;
      await sql`create table jc_marks (job varchar(64) not null, server varchar(16) not null)`.execute(a.db);
    });

    after(async () => {
      for (const r of runners) await r.stop();
      await a?.close();
      if (b !== a) await b?.close();
      await tdb?.drop();
    });

    test('the work and the result commit together; a done job is never run again', async () => {
      const r = runner(a, 'server-a', command('a'));
      const { uuid } = await queue(a);
      r.start();
      const done = await eventually(async () => {
        const j = await job(uuid);
        return Number(j.status) !== 0 ? j : undefined;
      });
      assert.equal(Number(done.status), 1);
      assert.equal(Number(done.attempts), 1);
      assert.deepEqual(JSON.parse(done.result!), { mark: { server: 'a' } });
      assert.deepEqual(await marks(uuid), ['a']);
      // The server dies right after: nothing of the job is left to anyone (it is not pending).
      await r.stop();
      assert.deepEqual(await claimJobs(b, 'server-b', 60_000, 10, 3), []);
      assert.deepEqual(await marks(uuid), ['a']);
    });

    // A second server on the database while the first is inside the transaction: PostgreSQL and MariaDB only.
    if (kind !== 'sqlite') {
      test('a server that lost the lease mid-transaction commits neither work nor result', async () => {
        const logs: string[] = [];
        let tookOver: Promise<void> | undefined;
        // Server A stalls inside the result transaction (its work written, uncommitted) until its lease has run
        // out and server B has taken the job over and run it to the end.
        const stalled = runner(
          a,
          'server-a2',
          command('a', async (ctx) => {
            tookOver ??= (async () => {
              await b.db
                .updateTable('async_jobs')
                .set({ lease_until: nowMs() - 1 })
                .where('uuid', '=', ctx.jobId!)
                .execute();
              runner(b, 'server-b2', command('b'), (m) => logs.push('B: ' + m)).start();
              await eventually(async () => {
                const j = await b.db
                  .selectFrom('async_jobs')
                  .select(['lease_owner', 'status'])
                  .where('uuid', '=', ctx.jobId!)
                  .executeTakeFirstOrThrow();
                return j.lease_owner === 'server-b2' || Number(j.status) !== 0 ? true : undefined;
              });
            })();
            await tookOver;
          }),
          (m) => logs.push(m),
          // A claims once, at start: its lease running out must hand the job to B, not back to A.
          60_000,
        );
        const { uuid } = await queue(a);
        stalled.start();
        const done = await eventually(async () => {
          const j = await job(uuid);
          return Number(j.status) !== 0 ? j : undefined;
        }).catch(async (e: unknown) => {
          throw new Error(`${String(e)}: ${JSON.stringify(await job(uuid))} ${logs.join(' | ')}`);
        });
        await stalled.stop();
        assert.equal(Number(done.status), 1);
        assert.equal(Number(done.attempts), 2, 'claimed by A, then taken over by B');
        assert.deepEqual(JSON.parse(done.result!), { mark: { server: 'b' } });
        // A's work rolled back with its refused result: the job's work was done once, by B.
        assert.deepEqual(await marks(uuid), ['b']);
        assert.ok(
          logs.some((m) => m.includes(uuid) && /no longer held/.test(m)),
          `A was told it lost the lease: ${logs.join(' | ')}`,
        );
      });
    }
  });
}
