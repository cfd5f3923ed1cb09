/**
 * The async job queue, kept in the database so that several servers share it and a restart loses nothing:
 * a job is claimed with a lease (owner + deadline); a server that stops renewing loses it to another server,
 * and every transaction of a running job re-checks the lease, so a job never commits twice.
 */
import { randomUUID } from 'node:crypto';
import type { Executor, Store, Tx } from '../../store/db.js';
import { nowMs, transaction } from '../../store/db.js';
import { CloudStackError } from '../../errors/catalogue.js';
import type { Caller, ResponseObject } from '../command.js';

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

export async function enqueueJob(tx: Tx, j: NewJob): Promise<string> {
  const uuid = j.uuid ?? randomUUID();
  await tx
    .insertInto('async_jobs')
    .values({
      uuid,
      command: j.command,
      params: JSON.stringify(j.params),
      user_id: j.caller.userId,
      account_id: j.caller.accountId,
      domain_id: j.caller.domainId,
      status: JOB_PENDING,
      result_code: 0,
      result: null,
      instance_type: j.instanceType ?? null,
      instance_id: j.instanceId ?? null,
      lease_owner: null,
      lease_until: null,
      attempts: 0,
      created: nowMs(),
      completed: null,
    })
    .execute();
  return uuid;
}

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
 * `maxAttempts` times: one abandoned that often is failAbandonedJobs' to fail, never run again). Each claim is a
 * conditional UPDATE, so two servers racing for one job cannot both win, on any of the three databases.
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
  const candidates = await store.db
    .selectFrom('async_jobs')
    .select(['id', 'uuid', 'command', 'params', 'user_id', 'attempts'])
    .where('status', '=', JOB_PENDING)
    .where('attempts', '<', maxAttempts)
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
    .orderBy('id')
    .limit(max)
    .execute();
  const claimed: ClaimedJob[] = [];
  for (const c of candidates) {
    const won = await transaction(
      store,
      async (tx) => {
        const r = await tx
          .updateTable('async_jobs')
          .set({ lease_owner: owner, lease_until: now + leaseMs, attempts: Number(c.attempts) + 1 })
          .where('id', '=', Number(c.id))
          .where('status', '=', JOB_PENDING)
          .where('attempts', '=', Number(c.attempts))
          .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
          .executeTakeFirst();
        return Number(r.numUpdatedRows) === 1;
      },
      { doing: 'claiming an async job' },
    );
    if (won) {
      claimed.push({
        id: Number(c.id),
        uuid: c.uuid,
        command: c.command,
        params: JSON.parse(c.params) as Record<string, string>,
        userId: Number(c.user_id),
        attempts: Number(c.attempts) + 1,
      });
    }
  }
  return claimed;
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

export async function finishJob(
  tx: Tx,
  jobId: number,
  owner: string,
  outcome: { status: typeof JOB_SUCCEEDED | typeof JOB_FAILED; resultCode: number; result: ResponseObject },
): Promise<void> {
  const r = await tx
    .updateTable('async_jobs')
    .set({
      status: outcome.status,
      result_code: outcome.resultCode,
      result: JSON.stringify(outcome.result),
      completed: nowMs(),
      lease_owner: null,
      lease_until: null,
    })
    .where('id', '=', jobId)
    .where('lease_owner', '=', owner)
    .where('status', '=', JOB_PENDING)
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) !== 1) throw new LeaseLostError(`job ${jobId} is no longer held by ${owner}`);
}

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
