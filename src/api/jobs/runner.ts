/**
 * The job runner: claims queued jobs with a lease, runs their handlers, stores the results. A job this server
 * queues while a slot is free is queued already leased to it and started at once (`reserveSlot`): no claim, no
 * wait. Otherwise it claims in batches when woken, when a slot frees up with work left behind, and every
 * `pollMs` (jobs queued by other servers, or left behind by a server that died). Jobs abandoned `maxAttempts`
 * times are failed by a sweep every `sweepMs`.
 */
import { randomUUID } from 'node:crypto';
import type { Store, Tx } from '../../store/db.js';
import { autocommit, nowMs, transaction } from '../../store/db.js';
import { toCloudStackError } from '../../errors/catalogue.js';
import type { Caller, CommandContext, CommandResult, PreparedObject } from '../command.js';
import { errorBody, resultBody } from '../envelope.js';
import { parseParams } from '../params.js';
import type { CommandRegistry } from '../registry.js';
import { callerByUserId } from '../../accounts/repository.js';
import {
  JOB_FAILED,
  JOB_SUCCEEDED,
  LeaseLostError,
  assertLease,
  claimJobs,
  failAbandonedJobs,
  finishJob,
  renewLease,
} from './repository.js';
import type { ClaimedJob, StoredOutcome } from './repository.js';
import { setJobAttempt } from './rerun.js';
import { commitGroups } from './commit-group.js';
import type { CommitGroups } from './commit-group.js';
import { finishedJobs } from './finished.js';
import type { FinishedJobRow, FinishedJobs } from './finished.js';

export interface JobRunnerOptions {
  store: Store;
  registry: CommandRegistry;
  /** This server's identity in leases (default: a random uuid per process). */
  owner?: string;
  leaseMs?: number;
  pollMs?: number;
  /** How often jobs abandoned `maxAttempts` times are failed (default 5 s). */
  sweepMs?: number;
  concurrency?: number;
  maxAttempts?: number;
  log?: (msg: string) => void;
  /** Called when a job's result is stored (metrics and the job log: src/server wires them). */
  onFinished?: (j: FinishedJob) => void;
  /**
   * SQLite: the jobs' result transactions that queue meanwhile share a COMMIT, with the API's queuing transactions
   * (commit-group.ts; default true).
   */
  groupCommits?: boolean;
  /**
   * Where the jobs this runner finishes are remembered for queryAsyncJobResult (finished.ts): the API's store's
   * memory when the runner has a store of its own (default: its store's).
   */
  finished?: FinishedJobs;
}

export interface FinishedJob {
  uuid: string;
  command: string;
  ok: boolean;
  /** 0, or the CloudStack errorcode it failed with. */
  resultCode: number;
  errortext?: string;
  seconds: number;
  /** 1 on the first run; more when a server died holding it. */
  attempt: number;
}

/** What a job's row says once queued, apart from its outcome: what queryAsyncJobResult answers besides it. */
export type QueuedJobRow = Omit<FinishedJobRow, keyof StoredOutcome>;

/** A runner slot held for a job the API is queuing (`JobRunner.reserveSlot`). */
export interface JobSlot {
  /** The lease to queue the job with. */
  owner: string;
  until: number;
  /**
   * The queuing transaction committed: run the job now. `caller` is who queued it (no need to look it up), `row`
   * the job as queued (its result is remembered with it for queryAsyncJobResult, finished.ts).
   */
  start(job: ClaimedJob, caller: Caller, row: QueuedJobRow): void;
  /**
   * The job was run and finished in its queuing transaction, which committed (api-server.ts, `completesInline`):
   * give the slot back, remember the job's row and report it as the runner reports the jobs it runs.
   */
  finished(job: FinishedJob, row: FinishedJobRow): void;
  /** It did not commit: give the slot back. */
  cancel(): void;
}

type Outcome = {
  status: typeof JOB_SUCCEEDED | typeof JOB_FAILED;
  resultCode: number;
  result: ReturnType<typeof resultBody>;
};

/**
 * The jobs running in this process, by uuid, settled when each one's result is stored (or its run given up):
 * queryAsyncJobResult waits a moment for one of these rather than answering "pending" to be asked again.
 */
export const runningJobs = new Map<string, Promise<void>>();

/** Parameter key under which a BaseAsyncCreateCmd's prepared object travels with the job. */
export const PREPARED_PARAM = '__prepared';

export class JobRunner {
  readonly owner: string;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly sweepMs: number;
  private readonly concurrency: number;
  private readonly maxAttempts: number;
  private readonly inflight = new Set<Promise<void>>();
  /** Slots promised to jobs being queued by this server's API (reserveSlot). */
  private reserved = 0;
  private timer: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private running = false;
  private pumping = false;
  private again = false;
  /** The last claim filled every free slot, or work was turned away: claim again as soon as a slot frees up. */
  private backlog = true;
  /** SQLite: the jobs' result transactions that queue meanwhile share a COMMIT (commit-group.ts). */
  private readonly groups: CommitGroups | undefined;
  private readonly finished: FinishedJobs;

  constructor(private readonly opts: JobRunnerOptions) {
    this.owner = opts.owner ?? randomUUID();
    this.leaseMs = opts.leaseMs ?? 60_000;
    this.pollMs = opts.pollMs ?? 500;
    this.sweepMs = opts.sweepMs ?? 5_000;
    this.concurrency = opts.concurrency ?? 16;
    this.maxAttempts = opts.maxAttempts ?? 3;
    this.groups = opts.groupCommits === false ? undefined : commitGroups(opts.store);
    this.finished = opts.finished ?? finishedJobs(opts.store);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
    void this.sweep();
  }

  /** Something was queued here: look now rather than at the next poll. */
  wake(): void {
    if (this.running) void this.pump();
  }

  /**
   * A slot for a job the caller is about to queue in its own transaction, when one is free now: the job is to
   * be queued with the slot's lease (enqueueJob's `lease`), then started or the slot cancelled. Undefined when
   * every slot is taken (queue it unleased and wake the runner).
   */
  reserveSlot(): JobSlot | undefined {
    if (!this.running || this.inflight.size + this.reserved >= this.concurrency) {
      this.backlog = true;
      return undefined;
    }
    this.reserved++;
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.reserved--;
      return true;
    };
    return {
      owner: this.owner,
      until: nowMs() + this.leaseMs,
      start: (job, caller, row) => {
        // Stopped meanwhile: the lease runs out and whoever runs next takes the job over.
        if (settle() && this.running) this.launch(job, caller, row);
      },
      finished: (job, row) => {
        settle();
        this.finished.remember(row);
        this.opts.onFinished?.(job);
      },
      cancel: () => void settle(),
    };
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.sweeper) clearTimeout(this.sweeper);
    while (this.inflight.size > 0 || this.pumping) {
      await Promise.allSettled([...this.inflight]);
      if (this.pumping) await new Promise((r) => setTimeout(r, 5));
    }
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.pump(), ms);
    this.timer.unref?.();
  }

  /** Fails the jobs abandoned too often; on a timer of its own, not on every claim. */
  private async sweep(): Promise<void> {
    try {
      await failAbandonedJobs(this.opts.store.db, this.maxAttempts);
    } catch (e) {
      this.opts.log?.(`job runner: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!this.running) return;
    this.sweeper = setTimeout(() => void this.sweep(), this.sweepMs);
    this.sweeper.unref?.();
  }

  private launch(job: ClaimedJob, caller?: Caller, row?: QueuedJobRow): void {
    const p = this.run(job, caller, row).finally(() => {
      this.inflight.delete(p);
      if (runningJobs.get(job.uuid) === p) runningJobs.delete(job.uuid);
      // A slot freed up: claim more if work was left behind (jobs from elsewhere wait for the next poll).
      if (this.backlog) this.wake();
    });
    this.inflight.add(p);
    runningJobs.set(job.uuid, p);
  }

  private async pump(): Promise<void> {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        if (!this.running) break;
        const free = this.concurrency - this.inflight.size - this.reserved;
        const jobs = await claimJobs(this.opts.store, this.owner, this.leaseMs, free, this.maxAttempts);
        for (const job of jobs) this.launch(job);
        this.backlog = jobs.length === free;
        if (jobs.length === free && free > 0) this.again = true;
      } while (this.again && this.running);
    } catch (e) {
      this.opts.log?.(`job runner: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.pumping = false;
      this.schedule(this.pollMs);
    }
  }

  /** `queued`: the job's row as this server queued it a moment ago, to remember with its result (finished.ts). */
  private async run(job: ClaimedJob, queuedBy?: Caller, queued?: QueuedJobRow): Promise<void> {
    const { store, registry } = this.opts;
    const started = performance.now();
    const renew = setInterval(() => {
      void renewLease(store, job.id, this.owner, this.leaseMs).catch(() => undefined);
    }, this.leaseMs / 3);
    renew.unref?.();
    // The result as committed by the handler's resultTransaction, with its work: nothing left to store.
    let committed: { outcome: Outcome; stored: StoredOutcome } | undefined;
    try {
      let outcome: Outcome;
      try {
        const cmd = registry.get(job.command);
        if (!cmd) throw new Error(`command ${job.command} is not served by this server`);
        // Queued here a moment ago: the caller was just authenticated. Else (another server, a take-over) look up
        // the user, who may be gone.
        const caller = queuedBy ?? (await callerByUserId(store.db, job.userId))?.caller;
        if (!caller) throw new Error(`the user that queued job ${job.uuid} no longer exists`);
        const raw = new Map(Object.entries(job.params));
        const prepared = raw.has(PREPARED_PARAM)
          ? (JSON.parse(raw.get(PREPARED_PARAM)!) as PreparedObject)
          : undefined;
        const params = parseParams(cmd.params, raw);
        const ctx: CommandContext = {
          store,
          caller,
          jobId: job.uuid,
          prepared,
          now: nowMs,
          transaction: <T>(fn: (tx: Tx) => Promise<T>) =>
            transaction(store, async (tx) => {
              await assertLease(tx, job.id, this.owner);
              return fn(tx);
            }),
          resultTransaction: async <T extends CommandResult>(fn: (tx: Tx) => Promise<T>) => {
            let stored: { outcome: Outcome; stored: StoredOutcome } | undefined;
            let lost: LeaseLostError | undefined;
            try {
              const commit = this.groups
                ? <V>(f: (tx: Tx) => Promise<V>) => this.groups!.run(f)
                : <V>(f: (tx: Tx) => Promise<V>) => transaction(store, f);
              const value = await commit(async (tx) => {
                stored = undefined;
                const v = await fn(tx);
                const o: Outcome = { status: JOB_SUCCEEDED, resultCode: 0, result: resultBody(v) };
                // The lease check and the result in one conditional UPDATE, last: it fails (and the whole
                // transaction rolls back) when another server has taken the job over, and from here to the
                // COMMIT its row lock keeps any other server from claiming it (SKIP LOCKED passes it by).
                const s = await finishJob(tx, job.id, this.owner, o).catch((e: unknown) => {
                  if (e instanceof LeaseLostError) lost = e;
                  throw e;
                });
                stored = { outcome: o, stored: s };
                return v;
              });
              committed = stored;
              return value;
            } catch (e) {
              // transaction() reports what it does not know as an internal error: the lease is what was lost.
              throw lost ?? e;
            }
          },
        };
        setJobAttempt(ctx, job.attempts);
        const result = await cmd.def.handler(params, ctx);
        outcome = { status: JOB_SUCCEEDED, resultCode: 0, result: resultBody(result) };
      } catch (e) {
        if (e instanceof LeaseLostError) throw e;
        const err = toCloudStackError(e, `running ${job.command} (job ${job.uuid})`);
        if (err.kind === 'InternalError') this.opts.log?.(`job ${job.uuid} ${job.command}: ${err.message}`);
        // A handler that failed after its resultTransaction committed: the committed result is the job's.
        outcome = committed?.outcome ?? {
          status: JOB_FAILED,
          resultCode: err.httpCode,
          result: errorBody(err, true),
        };
      }
      let stored: StoredOutcome;
      if (committed) ({ outcome, stored } = committed);
      else stored = await autocommit(store, (db) => finishJob(db, job.id, this.owner, outcome));
      if (queued) this.finished.remember({ ...queued, ...stored });
      this.opts.onFinished?.({
        uuid: job.uuid,
        command: job.command,
        ok: outcome.status === JOB_SUCCEEDED,
        resultCode: outcome.resultCode,
        errortext: outcome.status === JOB_FAILED ? String(outcome.result.errortext ?? '') : undefined,
        seconds: (performance.now() - started) / 1000,
        attempt: job.attempts,
      });
    } catch (e) {
      // Lost the lease (another server took the job over) or the database is gone: the lease expiring hands
      // the job to whoever runs next; nothing to store here.
      this.opts.log?.(`job ${job.uuid}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      clearInterval(renew);
    }
  }
}
