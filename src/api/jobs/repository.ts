/**
 * The async job queue, kept in the database so that several servers share it and a restart loses nothing:
 * a job is claimed with a lease (owner + deadline); a server that stops renewing loses it to another server,
 * and every transaction of a running job re-checks the lease, so a job never commits twice.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Executor, Store, Tx } from '../../store/db.js';
import { autocommit, nowMs, transaction } from '../../store/db.js';
import { CloudStackError } from '../../errors/catalogue.js';
import type { Caller, ResponseObject } from '../command.js';
import { insertedId, returningId } from '../insert-id.js';
import { preparedQuery } from '../../store/prepared.js';

export const JOB_PENDING = 0;
export const JOB_SUCCEEDED = 1;
export const JOB_FAILED = 2;

export interface NewJob {
  command: string;
  params: Record<string, string>;
  caller: Caller;
  instanceType?: string;
  instanceId?: string;
  uuid?: string;
}

/** A lease a job is queued with: the queuing server runs it at once, without claiming it (runner.ts). */
export interface QueuedLease {
  owner: string;
  until: number;
}

/** A job's outcome as stored in its row (status, result code, the result as JSON text) and when it finished. */
export interface StoredOutcome {
  status: typeof JOB_SUCCEEDED | typeof JOB_FAILED;
  resultCode: number;
  result: string;
  completed: number;
}

/**
 * Queues a job in the caller's transaction. With `lease` the job is queued already claimed (attempt 1) by that
 * server, as a claim would leave it: if that server dies before finishing it, the lease expires and another
 * server takes it over like any other. With `finished` the job was run in this transaction (api-server.ts,
 * `completesInline`): its row is inserted as finishJob would have left it, run once and held by nobody.
 */
export async function enqueueJob(
  tx: Tx,
  j: NewJob,
  lease?: QueuedLease,
  finished?: StoredOutcome & { created: number },
): Promise<{ id: number; uuid: string; created: number }> {
  const uuid = j.uuid ?? randomUUID();
  const created = finished?.created ?? nowMs();
  const r = await insertJob.run(
    tx,
    uuid,
    j.command,
    JSON.stringify(j.params),
    j.caller.userId,
    j.caller.accountId,
    j.caller.domainId,
    finished?.status ?? JOB_PENDING,
    finished?.resultCode ?? 0,
    finished?.result ?? null,
    j.instanceType ?? null,
    j.instanceId ?? null,
    finished ? null : (lease?.owner ?? null),
    finished ? null : (lease?.until ?? null),
    lease || finished ? 1 : 0,
    created,
    finished?.completed ?? null,
  );
  return { id: insertedId(r), uuid, created };
}

// Prepared (src/store/prepared.ts): queued once per async request, on the hot path.
const insertJob = preparedQuery(
  (
    ex: Executor,
    uuid: string,
    command: string,
    params: string,
    userId: number,
    accountId: number,
    domainId: number,
    status: number,
    resultCode: number,
    result: string | null,
    instanceType: string | null,
    instanceId: string | null,
    leaseOwner: string | null,
    leaseUntil: number | null,
    attempts: number,
    created: number,
    completed: number | null,
  ) =>
    returningId(
      ex,
      ex.insertInto('async_jobs').values({
        uuid,
        command,
        params,
        user_id: userId,
        account_id: accountId,
        domain_id: domainId,
        status,
        result_code: resultCode,
        result,
        instance_type: instanceType,
        instance_id: instanceId,
        lease_owner: leaseOwner,
        lease_until: leaseUntil,
        attempts,
        created,
        completed,
      }),
    ),
);

export interface ClaimedJob {
  id: number;
  uuid: string;
  command: string;
  params: Record<string, string>;
  userId: number;
  attempts: number;
}

/**
 * Claims up to `max` runnable jobs (pending, and unleased or with an expired lease, and started fewer than
 * `maxAttempts` times: one abandoned that often is failAbandonedJobs' to fail, never run again), oldest first,
 * in one statement where the database allows: PostgreSQL `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
 * LOCKED) RETURNING` (two servers claiming at once lock different rows, neither waits for the other), SQLite
 * `UPDATE … RETURNING` (one writer at a time), MariaDB `SELECT … FOR UPDATE SKIP LOCKED` and the UPDATE in one
 * transaction (it has no UPDATE … RETURNING and refuses a LIMIT in an IN subquery). The UPDATE repeats the
 * conditions, so a row whose lease changed since the rows were chosen is never claimed.
 */
export async function claimJobs(
  store: Store,
  owner: string,
  leaseMs: number,
  max: number,
  maxAttempts: number,
): Promise<ClaimedJob[]> {
  if (max <= 0) return [];
  const now = nowMs();
  const pick = (ex: Executor) =>
    ex
      .selectFrom('async_jobs')
      .where('status', '=', JOB_PENDING)
      .where('attempts', '<', maxAttempts)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .orderBy('id')
      .limit(max);
  const claim = (ex: Executor) =>
    ex
      .updateTable('async_jobs')
      .set({ lease_owner: owner, lease_until: now + leaseMs, attempts: sql<number>`attempts + 1` })
      .where('status', '=', JOB_PENDING)
      .where('attempts', '<', maxAttempts)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]));
  const columns = ['id', 'uuid', 'command', 'params', 'user_id', 'attempts'] as const;
  let rows: {
    id: number;
    uuid: string;
    command: string;
    params: string;
    user_id: number;
    attempts: number;
  }[];
  if (store.kind === 'mysql') {
    rows = await transaction(
      store,
      async (tx) => {
        const picked = await pick(tx).select(columns).forUpdate().skipLocked().execute();
        if (picked.length === 0) return [];
        const ids = picked.map((r) => Number(r.id));
        const r = await claim(tx).where('id', 'in', ids).executeTakeFirst();
        // The rows are locked: nobody changed them between the SELECT and the UPDATE.
        if (Number(r.numUpdatedRows) !== ids.length) throw new Error('claimed rows changed under their lock');
        return picked.map((p) => ({ ...p, attempts: Number(p.attempts) + 1 }));
      },
      { doing: 'claiming async jobs' },
    );
  } else {
    // Sent again if the connection is lost under it: jobs a lost first send did claim stay leased to this server
    // until the lease runs out, then go to whoever claims next.
    rows = await autocommit(store, (ex) => {
      const ids =
        store.kind === 'postgres' ? pick(ex).select('id').forUpdate().skipLocked() : pick(ex).select('id');
      return claim(ex).where('id', 'in', ids).returning(columns).execute();
    });
    rows.sort((x, y) => Number(x.id) - Number(y.id));
  }
  return rows.map((c) => ({
    id: Number(c.id),
    uuid: c.uuid,
    command: c.command,
    params: JSON.parse(c.params) as Record<string, string>,
    userId: Number(c.user_id),
    attempts: Number(c.attempts),
  }));
}

export async function renewLease(
  store: Store,
  jobId: number,
  owner: string,
  leaseMs: number,
): Promise<boolean> {
  const r = await transaction(store, (tx) =>
    tx
      .updateTable('async_jobs')
      .set({ lease_until: nowMs() + leaseMs })
      .where('id', '=', jobId)
      .where('lease_owner', '=', owner)
      .where('status', '=', JOB_PENDING)
      .executeTakeFirst(),
  );
  return Number(r.numUpdatedRows) === 1;
}

/** Thrown inside a job's transaction when another server has taken the job over: the transaction rolls back. */
export class LeaseLostError extends Error {}

export async function assertLease(tx: Tx, jobId: number, owner: string): Promise<void> {
  const row = await tx
    .selectFrom('async_jobs')
    .select(['lease_owner', 'status'])
    .where('id', '=', jobId)
    .executeTakeFirst();
  if (!row || row.lease_owner !== owner || Number(row.status) !== JOB_PENDING) {
    throw new LeaseLostError(`job ${jobId} is no longer held by ${owner}`);
  }
}

/**
 * Stores a job's result: one conditional UPDATE, its own transaction (nothing else needs to commit with it).
 * Returns what it stored.
 */
export async function finishJob(
  tx: Executor,
  jobId: number,
  owner: string,
  outcome: { status: typeof JOB_SUCCEEDED | typeof JOB_FAILED; resultCode: number; result: ResponseObject },
): Promise<StoredOutcome> {
  const stored: StoredOutcome = {
    status: outcome.status,
    resultCode: outcome.resultCode,
    result: JSON.stringify(outcome.result),
    completed: nowMs(),
  };
  const n = await storeResult.changed(
    tx,
    stored.status,
    stored.resultCode,
    stored.result,
    stored.completed,
    jobId,
    owner,
  );
  if (n !== 1) throw new LeaseLostError(`job ${jobId} is no longer held by ${owner}`);
  return stored;
}

const storeResult = preparedQuery(
  (
    ex: Executor,
    status: number,
    resultCode: number,
    result: string,
    completed: number,
    id: number,
    owner: string,
  ) =>
    ex
      .updateTable('async_jobs')
      .set({ status, result_code: resultCode, result, completed, lease_owner: null, lease_until: null })
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .where('status', '=', JOB_PENDING),
);

/** Jobs whose servers died too often while running them are failed rather than retried forever. */
export async function failAbandonedJobs(ex: Executor, maxAttempts: number): Promise<number> {
  const now = nowMs();
  const err = new CloudStackError(
    'InternalError',
    `The job was abandoned: the management server running it stopped ${maxAttempts} times`,
  );
  const r = await ex
    .updateTable('async_jobs')
    .set({
      status: JOB_FAILED,
      result_code: err.httpCode,
      result: JSON.stringify({ errorcode: err.httpCode, errortext: err.message }),
      completed: now,
      lease_owner: null,
      lease_until: null,
    })
    .where('status', '=', JOB_PENDING)
    .where('attempts', '>=', maxAttempts)
    .where('lease_until', '<', now)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}
