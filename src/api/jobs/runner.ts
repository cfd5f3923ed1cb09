/**
 * The job runner: claims queued jobs with a lease, runs their handlers, stores the results. It wakes at once
 * when this server queues a job and polls the table for jobs queued by other servers (or left behind by a
 * server that died).
 */
import { randomUUID } from 'node:crypto';
import type { Store, Tx } from '../../store/db.js';
import { nowMs, transaction } from '../../store/db.js';
import { toCloudStackError } from '../../errors/catalogue.js';
import type { CommandContext, PreparedObject } from '../command.js';
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
import type { ClaimedJob } from './repository.js';
import { setJobAttempt } from './rerun.js';

export interface JobRunnerOptions {
  store: Store;
  registry: CommandRegistry;
  /** This server's identity in leases (default: a random uuid per process). */
  owner?: string;
  leaseMs?: number;
  pollMs?: number;
  concurrency?: number;
  maxAttempts?: number;
  log?: (msg: string) => void;
  /** Called when a job's result is stored (metrics and the job log: src/server wires them). */
  onFinished?: (j: FinishedJob) => void;
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

/** Parameter key under which a BaseAsyncCreateCmd's prepared object travels with the job. */
export const PREPARED_PARAM = '__prepared';

export class JobRunner {
  readonly owner: string;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly concurrency: number;
  private readonly maxAttempts: number;
  private readonly inflight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private pumping = false;
  private again = false;

  constructor(private readonly opts: JobRunnerOptions) {
    this.owner = opts.owner ?? randomUUID();
    this.leaseMs = opts.leaseMs ?? 60_000;
    this.pollMs = opts.pollMs ?? 500;
    this.concurrency = opts.concurrency ?? 16;
    this.maxAttempts = opts.maxAttempts ?? 3;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Something was queued here: look now rather than at the next poll. */
  wake(): void {
    if (this.running) void this.pump();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
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
        await failAbandonedJobs(this.opts.store.db, this.maxAttempts);
        const free = this.concurrency - this.inflight.size;
        const jobs = await claimJobs(this.opts.store, this.owner, this.leaseMs, free, this.maxAttempts);
        for (const job of jobs) {
          const p = this.run(job).finally(() => {
            this.inflight.delete(p);
            // A slot freed up: there may be more queued work.
            this.wake();
          });
          this.inflight.add(p);
        }
        if (jobs.length === free && free > 0) this.again = true;
      } while (this.again && this.running);
    } catch (e) {
      this.opts.log?.(`job runner: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.pumping = false;
      this.schedule(this.pollMs);
    }
  }

  private async run(job: ClaimedJob): Promise<void> {
    const { store, registry } = this.opts;
    const started = performance.now();
    const renew = setInterval(() => {
      void renewLease(store, job.id, this.owner, this.leaseMs).catch(() => undefined);
    }, this.leaseMs / 3);
    renew.unref?.();
    try {
      let outcome: {
        status: typeof JOB_SUCCEEDED | typeof JOB_FAILED;
        resultCode: number;
        result: Record<string, never> | ReturnType<typeof resultBody>;
      };
      try {
        const cmd = registry.get(job.command);
        if (!cmd) throw new Error(`command ${job.command} is not served by this server`);
        const found = await callerByUserId(store.db, job.userId);
        if (!found) throw new Error(`the user that queued job ${job.uuid} no longer exists`);
        const raw = new Map(Object.entries(job.params));
        const prepared = raw.has(PREPARED_PARAM)
          ? (JSON.parse(raw.get(PREPARED_PARAM)!) as PreparedObject)
          : undefined;
        const params = parseParams(cmd.params, raw);
        const ctx: CommandContext = {
          store,
          caller: found.caller,
          jobId: job.uuid,
          prepared,
          now: nowMs,
          transaction: <T>(fn: (tx: Tx) => Promise<T>) =>
            transaction(store, async (tx) => {
              await assertLease(tx, job.id, this.owner);
              return fn(tx);
            }),
        };
        setJobAttempt(ctx, job.attempts);
        const result = await cmd.def.handler(params, ctx);
        outcome = { status: JOB_SUCCEEDED, resultCode: 0, result: resultBody(result) };
      } catch (e) {
        if (e instanceof LeaseLostError) throw e;
        const err = toCloudStackError(e, `running ${job.command} (job ${job.uuid})`);
        if (err.kind === 'InternalError') this.opts.log?.(`job ${job.uuid} ${job.command}: ${err.message}`);
        outcome = { status: JOB_FAILED, resultCode: err.httpCode, result: errorBody(err, true) };
      }
      await transaction(store, (tx) => finishJob(tx, job.id, this.owner, outcome), {
        doing: 'storing a job result',
      });
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
