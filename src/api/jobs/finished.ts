/**
 * The jobs this server finished, as their rows were stored, so that queryAsyncJobResult answers the poll that
 * follows a job with no database read (on PostgreSQL and MariaDB the read was a round trip per job, and the
 * database's work on its four-table join).
 *
 * A finished job's row never changes: every UPDATE of async_jobs is conditional on the job being pending
 * (repository.ts), and no code deletes jobs (no job expunge exists; the test helper that rewinds a finished job,
 * as a kill -9 after its commit would leave it, forgets it here). What the answer joins to the row does change: the
 * account's and domain's names and uuids, the user's uuid. So a remembered job is answered from memory only to the
 * user who queued it (same user, account and domain ids as the row), and its account, user and domain fields are
 * taken from that caller, which the request has just authenticated as it is now (on SQLite read afresh after any
 * change to users/accounts/domains; on PostgreSQL/MariaDB confirmed by the caller check before the answer,
 * caller-check.ts), i.e. exactly what the join would read. Anybody else (an admin polling a user's job, another
 * account, who is refused) is answered by the read, as before.
 */
import type { Caller } from '../command.js';
import type { Store } from '../../store/db.js';
import type { JOB_FAILED, JOB_SUCCEEDED } from './repository.js';

/** What the job's row holds once finished, as stored (`result` is the stored JSON text). */
export interface FinishedJobRow {
  uuid: string;
  command: string;
  userId: number;
  accountId: number;
  domainId: number;
  instanceType: string | null;
  instanceId: string | null;
  created: number;
  status: typeof JOB_SUCCEEDED | typeof JOB_FAILED;
  resultCode: number;
  result: string;
  completed: number;
}

/** The columns queryAsyncJobResult's read gives (commands.ts jobQuery), for jobResponse. */
export interface JobAnswerRow {
  uuid: string;
  command: string;
  status: number;
  result_code: number;
  result: string | null;
  instance_type: string | null;
  instance_id: string | null;
  created: number;
  completed: number | null;
  account_uuid: string | null;
  account_name: string | null;
  user_uuid: string | null;
  domain_uuid: string | null;
}

/** Jobs remembered per store; past it the oldest is forgotten (its poll reads the row, as before). */
export const FINISHED_MAX = 4096;

export class FinishedJobs {
  private readonly rows = new Map<string, FinishedJobRow>();

  constructor(private readonly max = FINISHED_MAX) {}

  remember(row: FinishedJobRow): void {
    this.rows.delete(row.uuid);
    this.rows.set(row.uuid, row);
    if (this.rows.size > this.max) this.rows.delete(this.rows.keys().next().value as string);
  }

  forget(uuid: string): void {
    this.rows.delete(uuid);
  }

  get size(): number {
    return this.rows.size;
  }

  /** The job's row as the read would give it to `caller`, when remembered and `caller` is who queued it. */
  answerFor(uuid: string, caller: Caller): JobAnswerRow | undefined {
    const r = this.rows.get(uuid);
    if (
      !r ||
      r.userId !== caller.userId ||
      r.accountId !== caller.accountId ||
      r.domainId !== caller.domainId
    )
      return undefined;
    return {
      uuid: r.uuid,
      command: r.command,
      status: r.status,
      result_code: r.resultCode,
      result: r.result,
      instance_type: r.instanceType,
      instance_id: r.instanceId,
      created: r.created,
      completed: r.completed,
      account_uuid: caller.accountUuid,
      account_name: caller.accountName,
      user_uuid: caller.userUuid,
      domain_uuid: caller.domainUuid,
    };
  }
}

const perStore = new WeakMap<Store, FinishedJobs>();

/** The jobs finished by this server on `store` (one memory per store: the API and the runner share it). */
export function finishedJobs(store: Store): FinishedJobs {
  let f = perStore.get(store);
  if (!f) perStore.set(store, (f = new FinishedJobs()));
  return f;
}
