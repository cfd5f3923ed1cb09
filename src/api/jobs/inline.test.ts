/**
 * Inline completion (CommandDefinition.completesInline): the job of a command whose work is only database writes
 * runs in the transaction that queues it and its row is inserted finished; a handler that fails there is rolled
 * back with the request, which is queued the usual way. And queryAsyncJobResult answering a job this server
 * finished from memory (finished.ts) with the body the read gives, to whoever queued it only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { createTestDatabase, testDbKinds } from '../../store/testing/test-databases.js';
import type { TestDatabase } from '../../store/testing/test-databases.js';
import { openStore } from '../../store/db.js';
import type { Store, Tx } from '../../store/db.js';
import { bootstrapAdmin } from '../../accounts/bootstrap.js';
import { callerByApiKey } from '../../accounts/repository.js';
import { invalidParameter } from '../../errors/catalogue.js';
import type { BuiltServer } from '../../server/build-server.js';
import { buildTestServer, injectClient, zoneWithTwoNetworks } from '../../server/testing/test-server.js';
import { allRoles, defineCommand, objectResult } from '../command.js';
import type { AnyCommand } from '../command.js';
import { signedQuery } from '../client.js';
import { handleApiRequest } from '../api-server.js';
import { buildRegistry, commandModules } from '../registry.js';
import { finishedJobs } from './finished.js';
import { eventually } from '../../netns/eventually.js';
import { JobRunner, runningJobs } from './runner.js';
import type { FinishedJob } from './runner.js';

/** How long the tests wait for a job (src/netns/eventually.ts: retried while it throws). */
const WAIT = { timeoutMs: 20_000, intervalMs: 20 };

/**
 * A BaseAsyncCreateCmd-style command: `prepare` marks its object, the job marks its work in its result
 * transaction, or fails as asked (`fail`: a CloudStack refusal, `crash`: any other error).
 */
function markingCommand(name: string, inline: boolean): AnyCommand {
  const mark = (tx: Tx, object: string, step: string) =>
    sql`insert into jc_inline (object, step) values (${object}, ${step})`.execute(tx);
  return defineCommand({
    name,
    description: 'test: prepare and job marks',
    roles: allRoles,
    isAsync: true,
    completesInline: inline,
    params: { fail: { type: 'string', description: 'refuse | crash' } },
    async prepare(_p, ctx) {
      const id = randomUUID();
      await ctx.transaction((tx) => mark(tx, id, 'prepare'));
      return { id, instanceType: 'TestThing' };
    },
    async handler(p, ctx) {
      const id = ctx.prepared!.id;
      return ctx.resultTransaction!(async (tx) => {
        await mark(tx, id, 'job');
        if (p.fail === 'refuse') throw invalidParameter('fail', p.fail, 'refused as asked');
        if (p.fail === 'crash') throw new Error('crashed as asked');
        return objectResult('thing', { id, job: ctx.jobId! });
      });
    },
  }) as AnyCommand;
}

for (const kind of testDbKinds()) {
  describe(`a job completed in its queuing transaction (${kind})`, () => {
    let tdb: TestDatabase;
    let store: Store;
    let runner: JobRunner;
    const reported: FinishedJob[] = [];
    const keys = { url: '', apiKey: 'inline-key', secretKey: 'inline-secret' };
    const registry = buildRegistry([
      ...commandModules,
      [markingCommand('testInlineMark', true), markingCommand('testQueuedMark', false)],
    ]);
    const call = async (command: string, params: Record<string, string> = {}) => {
      const r = await handleApiRequest(
        { store, registry, jobSlots: () => runner.reserveSlot(), onJobQueued: () => runner.wake() },
        { params: new Map(new URLSearchParams(signedQuery(keys, command, params))), cookies: {} },
      );
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely, as JSON
      return { status: r.status, body: Object.values(JSON.parse(r.body) as Record<string, any>)[0] };
    };
    const done = (jobid: string) =>
      eventually(async () => {
        const q = await call('queryAsyncJobResult', { jobid });
        if (q.body.jobstatus === 0) throw new Error(`job ${jobid} still pending`);
        return q.body;
      }, WAIT);
    const marks = async (object: string) =>
      (
        await sql<{
          step: string;
        }>`select step from jc_inline where object = ${object} order by step`.execute(store.db)
      ).rows.map((r) => r.step);
    const row = (uuid: string) =>
      store.db.selectFrom('async_jobs').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();

    before(async () => {
      tdb = await createTestDatabase(kind);
      store = await openStore(tdb.url, { poolSize: 4 });
      await bootstrapAdmin(store, { adminApiKey: keys.apiKey, adminSecretKey: keys.secretKey });
      await sql`create table jc_inline (object varchar(64) not null, step varchar(16) not null)`.execute(
        store.db,
      );
      runner = new JobRunner({ store, registry, pollMs: 50, onFinished: (j) => reported.push(j) });
      runner.start();
    });

    after(async () => {
      await runner?.stop();
      await store?.close();
      await tdb?.drop();
    });

    test('the job is finished when the request is answered: one row, inserted finished, reported once', async () => {
      const r = await call('testInlineMark');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(Object.keys(r.body), ['id', 'jobid']);
      const { id, jobid } = r.body as { id: string; jobid: string };
      // No runner ran it: it was never running, and its row is already as finishJob leaves one.
      assert.equal(runningJobs.has(jobid), false);
      const j = await row(jobid);
      assert.equal(Number(j.status), 1);
      assert.equal(Number(j.result_code), 0);
      assert.equal(Number(j.attempts), 1);
      assert.equal(j.lease_owner, null);
      assert.ok(Number(j.completed) >= Number(j.created));
      assert.deepEqual(JSON.parse(j.result!), { thing: { id, job: jobid } });
      assert.deepEqual(await marks(id), ['job', 'prepare']);
      assert.deepEqual(
        reported.filter((f) => f.uuid === jobid).map((f) => [f.command, f.ok, f.resultCode, f.attempt]),
        [['testInlineMark', true, 0, 1]],
      );
      const q = await done(jobid);
      assert.equal(q.jobstatus, 1);
      assert.equal(q.jobresultcode, 0);
      assert.equal(q.jobinstancetype, 'TestThing');
      assert.equal(q.jobinstanceid, id);
      assert.equal(q.cmd, 'org.apache.cloudstack.api.command.TestInlineMarkCmd');
      assert.deepEqual(q.jobresult, { thing: { id, job: jobid } });
    });

    for (const fail of ['refuse', 'crash']) {
      test(`a handler that fails (${fail}) is rolled back and queued: the same failed job as without inline`, async () => {
        const answers = [];
        for (const command of ['testInlineMark', 'testQueuedMark']) {
          const before = reported.length;
          const r = await call(command, { fail });
          assert.equal(r.status, 200, JSON.stringify(r.body));
          const { id, jobid } = r.body as { id: string; jobid: string };
          const q = await done(jobid);
          // The inline attempt's prepare and work rolled back: one prepare, the runner's (failed) work none.
          assert.deepEqual(await marks(id), ['prepare']);
          const j = await row(jobid);
          assert.equal(Number(j.attempts), 1);
          await eventually(() => {
            if (reported.length <= before) throw new Error('the failed job not reported yet');
          }, WAIT);
          assert.deepEqual(
            reported.slice(before).map((f) => [f.uuid, f.ok, f.attempt]),
            [[jobid, false, 1]],
          );
          answers.push({
            keys: Object.keys(q),
            jobstatus: q.jobstatus,
            jobresultcode: q.jobresultcode,
            jobresult: q.jobresult,
          });
        }
        assert.equal(answers[0]!.jobstatus, 2);
        assert.equal(answers[0]!.jobresultcode, fail === 'refuse' ? 431 : 530);
        assert.deepEqual(answers[0], answers[1]);
        // Nothing of a failed inline attempt is left anywhere: every prepare mark belongs to a job.
        const orphans = await sql<{
          n: number;
        }>`select count(*) as n from jc_inline m where m.step = 'prepare'
          and not exists (select 1 from async_jobs j where j.instance_id = m.object)`.execute(store.db);
        assert.equal(Number(orphans.rows[0]!.n), 0);
      });
    }

    test('the poll is answered from memory with the body the read gives', async () => {
      const { jobid } = (await call('testInlineMark')).body as { jobid: string };
      const admin = (await callerByApiKey(store.db, keys.apiKey))!.caller;
      assert.ok(finishedJobs(store).answerFor(jobid, admin), 'remembered for its owner');
      const before = store.statements.count;
      const fromMemory = await call('queryAsyncJobResult', { jobid });
      // SQLite: the caller from memory too, no statement at all. PostgreSQL/MariaDB: the caller's check, one.
      assert.ok(store.statements.count - before <= (kind === 'sqlite' ? 0 : 1));
      finishedJobs(store).forget(jobid);
      const read = await call('queryAsyncJobResult', { jobid });
      assert.deepEqual(fromMemory, read);
    });
  });

  describe(`queryAsyncJobResult from memory for associateIpAddress (${kind})`, () => {
    let tdb: TestDatabase;
    let dir: string;
    let s: BuiltServer;
    const keys = { apiKey: 'inline-assoc-key', secretKey: 'inline-assoc-secret' };
    const admin = injectClient(() => s, keys);
    let other: ReturnType<typeof injectClient>;
    let zone: string;
    let net: string;

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-inline-'));
      s = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys });
      ({ zone, net } = await zoneWithTwoNetworks(admin));
      const acct = await admin.okCall('createAccount', {
        username: 'bob',
        password: 'pw',
        email: 'bob@example.org',
        firstname: 'B',
        lastname: 'B',
      });
      const uk = (await admin.okCall('registerUserKeys', { id: acct.account.user[0].id })).userkeys;
      other = injectClient(() => s, { apiKey: uk.apikey, secretKey: uk.secretkey });
    });

    after(async () => {
      await s?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test("answered as CloudStack does, to its owner from memory, and another account's poll refused as before", async () => {
      const r = await admin.okCall('associateIpAddress', { networkid: net });
      assert.deepEqual(Object.keys(r), ['id', 'jobid']);
      const { id, jobid } = r as { id: string; jobid: string };
      const j = await s.store.db
        .selectFrom('async_jobs')
        .selectAll()
        .where('uuid', '=', jobid)
        .executeTakeFirstOrThrow();
      assert.equal(Number(j.status), 1, 'finished in the request');
      const caller = (await callerByApiKey(s.store.db, keys.apiKey))!.caller;
      assert.ok(finishedJobs(s.store).answerFor(jobid, caller));
      const refusedFromMemory = await other.call('queryAsyncJobResult', { jobid });
      const fromMemory = await admin.okCall('queryAsyncJobResult', { jobid });
      assert.equal(fromMemory.jobstatus, 1);
      assert.equal(fromMemory.jobresultcode, 0);
      assert.equal(fromMemory.jobresulttype, 'object');
      assert.equal(fromMemory.jobprocstatus, 0);
      assert.equal(fromMemory.cmd, 'org.apache.cloudstack.api.command.AssociateIpAddressCmd');
      assert.equal(fromMemory.jobinstancetype, 'IpAddress');
      assert.equal(fromMemory.jobinstanceid, id);
      assert.equal(fromMemory.userid, caller.userUuid);
      assert.equal(fromMemory.accountid, caller.accountUuid);
      assert.equal(fromMemory.account, caller.accountName);
      assert.equal(fromMemory.domainid, caller.domainUuid);
      assert.match(fromMemory.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$/);
      assert.match(fromMemory.completed, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$/);
      assert.equal(fromMemory.jobresult.ipaddress.id, id);
      assert.equal(fromMemory.jobresult.ipaddress.state, 'Allocated');
      assert.equal(fromMemory.jobresult.ipaddress.zoneid, zone);
      const listed = (await admin.okCall('listAsyncJobs', {})).asyncjobs.find(
        (x: { jobid: string }) => x.jobid === jobid,
      );
      assert.deepEqual(listed, fromMemory);
      // The same answers once the memory is gone: the read's.
      finishedJobs(s.store).forget(jobid);
      assert.deepEqual(await admin.okCall('queryAsyncJobResult', { jobid }), fromMemory);
      const refused = await other.call('queryAsyncJobResult', { jobid });
      assert.equal(refused.status, 431);
      assert.deepEqual(refusedFromMemory, refused);
    });

    test('disassociateIpAddress completes inline; one of an address already gone fails as a queued job', async () => {
      const { id } = await admin.okCall('associateIpAddress', { networkid: net });
      const released = await admin.okCall('disassociateIpAddress', { id });
      assert.deepEqual(Object.keys(released), ['jobid']);
      const j = await s.store.db
        .selectFrom('async_jobs')
        .selectAll()
        .where('uuid', '=', released.jobid)
        .executeTakeFirstOrThrow();
      assert.equal(Number(j.status), 1, 'finished in the request');
      assert.deepEqual(JSON.parse(j.result!), { success: true });
      const gone = await sql`select id from ip_allocations where uuid = ${id}`.execute(s.store.db);
      assert.deepEqual(gone.rows, []);
      const again = await admin.job('disassociateIpAddress', { id });
      assert.equal(again.ok, false);
      assert.equal(again.error.errorcode, 431, JSON.stringify(again.error));
    });

    test('an answer from memory names the account as it is now (renamed after the job)', async () => {
      const { jobid } = await admin.okCall('associateIpAddress', { networkid: net });
      const caller = (await callerByApiKey(s.store.db, keys.apiKey))!.caller;
      await admin.okCall('updateAccount', { id: caller.accountUuid, newname: 'renamed-admin' });
      try {
        const fromMemory = await admin.okCall('queryAsyncJobResult', { jobid });
        assert.equal(fromMemory.account, 'renamed-admin');
        finishedJobs(s.store).forget(jobid);
        assert.deepEqual(await admin.okCall('queryAsyncJobResult', { jobid }), fromMemory);
      } finally {
        await admin.okCall('updateAccount', { id: caller.accountUuid, newname: caller.accountName });
      }
    });
  });
}

/**
 * Every UPDATE of an ip_allocations row, recorded by a trigger of the test's own: how many times the association
 * wrote its address.
 */
async function recordRowUpdates(kind: string, db: Store['db']): Promise<void> {
  await sql`create table fold_row_updates (ip_id bigint, old_state varchar(16), new_state varchar(16))`.execute(
    db,
  );
  const insert = 'insert into fold_row_updates values (old.id, old.state, new.state)';
  if (kind === 'sqlite')
    await sql
      .raw(`create trigger fold_row_upd after update on ip_allocations for each row begin ${insert}; end`)
      .execute(db);
  else if (kind === 'mysql')
    await sql
      .raw(`create trigger fold_row_upd after update on ip_allocations for each row ${insert}`)
      .execute(db);
  else {
    await sql
      .raw(
        `create function fold_row_upd() returns trigger language plpgsql as $$ begin ${insert}; return new; end $$`,
      )
      .execute(db);
    await sql
      .raw(
        `create trigger fold_row_upd after update on ip_allocations for each row execute function fold_row_upd()`,
      )
      .execute(db);
  }
}

for (const kind of testDbKinds()) {
  describe(`associateIpAddress completed inline writes its address once (${kind})`, () => {
    let tdb: TestDatabase;
    let dir: string;
    let s: BuiltServer;
    const keys = { apiKey: 'inline-once-key', secretKey: 'inline-once-secret' };
    const admin = injectClient(() => s, keys);
    let zone: string;
    let net: string;

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-inline-once-'));
      // One slot: held by the test, the request is queued the usual way (the runner busy).
      s = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys, jobSlots: 1 });
      ({ zone, net } = await zoneWithTwoNetworks(admin));
      await recordRowUpdates(kind, s.store.db);
    });

    after(async () => {
      await s?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    const jobRow = (jobid: string) =>
      s.store.db.selectFrom('async_jobs').selectAll().where('uuid', '=', jobid).executeTakeFirstOrThrow();
    const updatesOf = async (id: string) =>
      (
        await sql<{ old_state: string; new_state: string }>`select u.old_state, u.new_state
          from fold_row_updates u join ip_allocations ip on ip.id = u.ip_id where ip.uuid = ${id}`.execute(
          s.store.db,
        )
      ).rows.map((r) => `${r.old_state}->${r.new_state}`);
    /** Its NET.IPASSIGN event and usage record, with what differs between two addresses taken out. */
    const records = async (id: string, address: string) => {
      const events = await s.store.db
        .selectFrom('events')
        .selectAll()
        .where('resource_id', '=', id)
        .orderBy('id')
        .execute();
      const usage = await s.store.db
        .selectFrom('usage_events')
        .selectAll()
        .where('resource_uuid', '=', id)
        .orderBy('id')
        .execute();
      const same = (r: Record<string, unknown>) =>
        JSON.parse(
          JSON.stringify(r, (k, v: unknown) =>
            ['id', 'uuid', 'created', 'resource_id', 'resource_uuid'].includes(k)
              ? typeof v
              : typeof v === 'string'
                ? v.replaceAll(address, '<ip>')
                : v,
          ),
        ) as unknown;
      return { events: events.map(same), usage: usage.map(same) };
    };
    const listed = async (id: string) =>
      (await admin.okCall('listPublicIpAddresses', { id, listall: 'true' })).publicipaddress[0];

    for (const by of ['zoneid', 'networkid'] as const)
      test(`by ${by}: inline, no UPDATE of the address; the same answer, event and usage as the queued job's`, async () => {
        const params = (): Record<string, string> =>
          by === 'zoneid' ? { zoneid: zone } : { networkid: net };
        // Queued: the one slot held, the job waits for the runner.
        const held = s.runner.reserveSlot();
        assert.ok(held);
        const queued = (await admin.okCall('associateIpAddress', params())) as { id: string; jobid: string };
        assert.equal(Number((await jobRow(queued.jobid)).status), 0, 'queued, not run');
        held.cancel();
        s.runner.wake();
        const queuedAnswer = await eventually(async () => {
          const q = await admin.okCall('queryAsyncJobResult', { jobid: queued.jobid });
          if (q.jobstatus === 0) throw new Error(`job ${queued.jobid} still pending`);
          return q;
        }, WAIT);
        assert.equal(queuedAnswer.jobstatus, 1, JSON.stringify(queuedAnswer));
        assert.deepEqual(await updatesOf(queued.id), ['Allocating->Allocated'], 'the queued job: two steps');

        // Inline: the slot free.
        const inline = (await admin.okCall('associateIpAddress', params())) as { id: string; jobid: string };
        assert.equal(Number((await jobRow(inline.jobid)).status), 1, 'finished in the request');
        assert.deepEqual(await updatesOf(inline.id), [], 'inline: inserted Allocated, never updated');
        const inlineAnswer = await admin.okCall('queryAsyncJobResult', { jobid: inline.jobid });
        assert.equal(inlineAnswer.jobstatus, 1);

        for (const [id, answer] of [
          [queued.id, queuedAnswer],
          [inline.id, inlineAnswer],
        ] as const) {
          const ip = answer.jobresult.ipaddress as Record<string, unknown>;
          assert.equal(ip.id, id);
          assert.equal(ip.state, 'Allocated');
          assert.deepEqual(ip, await listed(id));
        }
        const q = queuedAnswer.jobresult.ipaddress as Record<string, unknown>;
        const i = inlineAnswer.jobresult.ipaddress as Record<string, unknown>;
        const differs = ['id', 'ipaddress', 'allocated', 'issourcenat'];
        const rest = (o: Record<string, unknown>) =>
          Object.fromEntries(Object.entries(o).filter(([k]) => !differs.includes(k)));
        assert.deepEqual(rest(i), rest(q));
        // By network, the first association takes the network's source NAT: its event says so, the second's not.
        if (by === 'zoneid') {
          assert.equal(i.issourcenat, q.issourcenat);
          const qr = await records(queued.id, String(q.ipaddress));
          assert.equal(qr.events.length, 1);
          assert.equal(qr.usage.length, 1);
          assert.deepEqual(await records(inline.id, String(i.ipaddress)), qr);
        } else {
          const ir = await records(inline.id, String(i.ipaddress));
          assert.equal(ir.events.length, 1);
          assert.equal(ir.usage.length, 1);
          assert.equal((ir.events[0] as { type: string }).type, 'NET.IPASSIGN');
        }
      });
  });
}
