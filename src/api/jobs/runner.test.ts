/**
 * The job queue across servers: two servers on one database run every job exactly once; a job left by a dead
 * server (expired lease) is taken over; one abandoned too often fails instead of looping.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, testDbKinds } from '../../store/testing/test-databases.js';
import type { TestDatabase } from '../../store/testing/test-databases.js';
import { buildServer } from '../../server/build-server.js';
import type { BuiltServer } from '../../server/build-server.js';
import { signedQuery } from '../client.js';
import { nowMs, transaction } from '../../store/db.js';

async function eventually<T>(fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

for (const kind of testDbKinds()) {
  describe(`async jobs across servers (${kind})`, () => {
    let tdb: TestDatabase;
    let a: BuiltServer;
    let b: BuiltServer;
    let dir: string;
    const keys = { url: '', apiKey: 'runner-key', secretKey: 'runner-secret' };

    const call = async (s: BuiltServer, command: string, params: Record<string, string>) => {
      const r = await s.app.inject({
        method: 'GET',
        url: `/client/api?${signedQuery(keys, command, params)}`,
      });
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const body = Object.values(r.json() as Record<string, unknown>)[0] as any;
      return { status: r.statusCode, body };
    };

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-jobs-'));
      const config = {
        port: 0,
        host: '127.0.0.1',
        dataDir: dir,
        dbUrl: tdb.url,
        driver: 'simulator' as const,
        adminApiKey: keys.apiKey,
        adminSecretKey: keys.secretKey,
        jobPollMs: 50,
        poolSize: 4,
      };
      a = await buildServer(config);
      // Several servers share PostgreSQL or MariaDB. SQLite is one server's database: two stores in one process
      // would block each other's event loop in SQLite's busy handler, so there the second "server" is the first.
      b = kind === 'sqlite' ? a : await buildServer(config);
    });

    after(async () => {
      await a?.close();
      if (b !== a) await b?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('jobs queued on two servers each run exactly once', async () => {
      const n = 20;
      const domains: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = await call(i % 2 ? a : b, 'createDomain', { name: `d${i}` });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        domains.push((r.body as { domain: { id: string } }).domain.id);
      }
      const jobs = await Promise.all(
        domains.map(async (id, i) => {
          const r = await call(i % 3 ? a : b, 'deleteDomain', { id });
          return (r.body as { jobid: string }).jobid;
        }),
      );
      for (const jobid of jobs) {
        const done = await eventually(async () => {
          const r = await call(a, 'queryAsyncJobResult', { jobid });
          return (r.body as { jobstatus: number }).jobstatus !== 0 ? r.body : undefined;
        });
        assert.equal((done as { jobstatus: number }).jobstatus, 1, JSON.stringify(done));
      }
      const events = await a.store.db
        .selectFrom('events')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('type', '=', 'DOMAIN.DELETE')
        .executeTakeFirstOrThrow();
      assert.equal(Number(events.n), n);
      const attempts = await a.store.db.selectFrom('async_jobs').select('attempts').execute();
      assert.ok(attempts.every((r) => Number(r.attempts) === 1));
    });

    test('a job queued with a free slot is queued leased to its server and run without a claim', async () => {
      const stores = kind === 'sqlite' ? [a.store] : [a.store, a.jobStore];
      const count = () => stores.reduce((n, s) => n + s.statements.count, 0);
      // Statements of one deleteDomain job. The server's own timers (the runner's poll every 50 ms here, the
      // sweep) count too when they fall inside the window, which on a loaded machine can be several polls: the
      // fewest of up to three jobs is the job's cost (timers only ever add to it).
      const spentOnce = async (name: string): Promise<number> => {
        const created = await call(a, 'createDomain', { name });
        const id = (created.body as { domain: { id: string } }).domain.id;
        await new Promise((r) => setTimeout(r, 100));
        const before = count();
        const r = await call(a, 'deleteDomain', { id });
        const jobid = (r.body as { jobid: string }).jobid;
        let polls = 0;
        const row = await eventually(async () => {
          polls++;
          const j = await a.store.db
            .selectFrom('async_jobs')
            .select(['status', 'attempts'])
            .where('uuid', '=', jobid)
            .executeTakeFirst();
          return j && Number(j.status) !== 0 ? j : undefined;
        });
        assert.equal(Number(row.status), 1);
        assert.equal(Number(row.attempts), 1);
        // The polling above is on the api store too: count it out (one SELECT per look).
        return count() - before - polls;
      };
      const tries: number[] = [];
      for (let i = 0; i < 3 && !tries.some((n) => n <= 16); i++) tries.push(await spentOnce(`counted${i}`));
      // Authentication 1, queue 3 (BEGIN, INSERT leased, COMMIT), the job's transaction (BEGIN, lease check,
      // the deletion's statements, COMMIT), the result 1: 10-13 measured. Before issue 16's changes the claim
      // (candidate SELECT, BEGIN/UPDATE/COMMIT), the sweep twice, the caller lookup, BEGIN/COMMIT around the
      // result and the next pump's SELECT came on top (10 more).
      assert.ok(Math.min(...tries) <= 16, `${tries.join(', ')} statements for one deleteDomain job`);
    });

    test("a dead server's job is taken over; one abandoned too often fails", async () => {
      const created = await call(a, 'createDomain', { name: 'orphan' });
      const domainId = (created.body as { domain: { id: string } }).domain.id;
      const admin = await a.store.db
        .selectFrom('users')
        .select(['id', 'account_id', 'domain_id'])
        .where('api_key', '=', keys.apiKey)
        .executeTakeFirstOrThrow();
      const orphan = randomUUID();
      const doomed = randomUUID();
      await transaction(a.store, async (tx) => {
        for (const [uuid, attempts] of [
          [orphan, 1],
          [doomed, 3],
        ] as const) {
          await tx
            .insertInto('async_jobs')
            .values({
              uuid,
              command: 'deleteDomain',
              params: JSON.stringify({ id: domainId }),
              user_id: Number(admin.id),
              account_id: Number(admin.account_id),
              domain_id: Number(admin.domain_id),
              status: 0,
              result_code: 0,
              result: null,
              instance_type: 'Domain',
              instance_id: domainId,
              lease_owner: 'a-server-that-died',
              lease_until: nowMs() - 1000,
              attempts,
              created: nowMs(),
              completed: null,
            })
            .execute();
        }
      });
      const job = async (jobid: string) =>
        eventually(async () => {
          const r = await call(b, 'queryAsyncJobResult', { jobid });
          return (r.body as { jobstatus: number }).jobstatus !== 0
            ? (r.body as Record<string, unknown>)
            : undefined;
        });
      const took = await job(orphan);
      assert.equal(took.jobstatus, 1, JSON.stringify(took));
      const failed = await job(doomed);
      assert.equal(failed.jobstatus, 2);
      assert.equal(failed.jobresultcode, 530);
      assert.match((failed.jobresult as { errortext: string }).errortext, /abandoned/);
    });
  });
}
