/**
 * One API request, transport-free: parameters and cookies in, status + body + cookies out. The Fastify route
 * (http.ts) is a thin adapter around `handleApiRequest`, so the whole pipeline — authentication, role check,
 * validation, sync execution or job queueing, envelopes — is one function. Who calls is worked out in
 * authentication.ts (with login and logout); answers are built by reply.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Store, Tx } from '../store/db.js';
import { nowMs, transaction } from '../store/db.js';
import { CloudStackError, toCloudStackError } from '../errors/catalogue.js';
import { anonymousCaller } from './command.js';
import type { Caller, CommandContext, ParamSpecs, Params, PreparedObject } from './command.js';
import { resultBody, responseFormat, responseName } from './envelope.js';
import { caseFolded, parseParams, resolveInternalIds } from './params.js';
import type { CommandRegistry, ResolvedCommand } from './registry.js';
import { JOB_SUCCEEDED, enqueueJob } from './jobs/repository.js';
import type { NewJob, StoredOutcome } from './jobs/repository.js';
import { setJobAttempt } from './jobs/rerun.js';
import type { ApiThrottle } from './throttle.js';
import { PREPARED_PARAM } from './jobs/runner.js';
import type { FinishedJob, JobSlot, QueuedJobRow } from './jobs/runner.js';
import { groupedTransaction } from './jobs/commit-group.js';
import { checksCallers, StaleCaller } from './caller-check.js';
import type { CallerCheck } from './caller-check.js';
import { projectScope } from '../projects/commands.js';
import { authenticate, login, logout } from './authentication.js';
import { errorReply, reply } from './reply.js';
import type { ApiRequest, ApiResponse } from './reply.js';

export interface ApiServerDeps {
  store: Store;
  registry: CommandRegistry;
  /** Called after a job is queued without a slot of this server's runner, to wake the runner. */
  onJobQueued?: () => void;
  /**
   * This server's job runner, when it runs jobs: a job queued while it has a free slot is queued leased to it and
   * started as soon as the queuing transaction commits (no claim, no poll).
   */
  jobSlots?: () => JobSlot | undefined;
  log?: (msg: string) => void;
  /**
   * The integration port (`integration.api.port`): no authentication, every request runs as this caller
   * (CloudStack runs them as SYSTEM; stacknet as the default root admin). Only ever bound to 127.0.0.1.
   */
  trustedCaller?: () => Promise<Caller>;
  /** Set when `api.throttling.enabled` was true at start. */
  throttle?: ApiThrottle;
  /** Called once per request after it is answered (metrics and the request log: src/server wires them). */
  observe?: (o: RequestObservation) => void;
}

/** What one answered request was: for metrics and the structured request log. */
export interface RequestObservation {
  /** The command's registered name; `unknown` when none was sent or it is not served (bounded label values). */
  command: string;
  /** 0 for a success, else the CloudStack errorcode (the HTTP status). */
  errorcode: number;
  /** The error's text when it failed. */
  errortext?: string;
  seconds: number;
  /** Who called, once authenticated. */
  caller?: Caller;
  /** The job an async command queued. */
  jobId?: string;
  remoteAddress?: string;
}

/** Filled in by the pipeline as it learns who calls and which job it queued. */
interface Seen {
  caller?: Caller;
  jobId?: string;
  errortext?: string;
}

/** The parameters a job keeps: the declared ones, as sent (they are parsed again when the job runs). */
function jobParams(cmd: ResolvedCommand, raw: Map<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of raw) {
    const bracket = k.indexOf('[');
    if (Object.hasOwn(cmd.params, bracket < 0 ? k : k.slice(0, bracket))) out[k] = v;
  }
  return out;
}

/** A request's command context: the store, who calls, the clock, and the store's transactions. */
function commandContext(deps: ApiServerDeps, caller: Caller, callerCheck?: CallerCheck): CommandContext {
  return {
    store: deps.store,
    caller,
    callerCheck,
    now: nowMs,
    transaction: <T>(fn: (tx: Tx) => Promise<T>) => transaction(deps.store, fn),
  };
}

/** An async request's job as its queuing transaction committed it. */
interface QueuedJob {
  id: number;
  row: QueuedJobRow;
  raw: Record<string, string>;
  prepared?: PreparedObject;
  /** Set when the job ran in the queuing transaction (`inline`) and was inserted finished. */
  finished?: { stored: StoredOutcome; report: FinishedJob };
}

/**
 * BaseAsyncCreateCmd: `prepare` writes its object in the transaction that queues the job (a refusal queues
 * nothing). With `inline` the handler runs in that transaction too, as the runner would run it (ctx.jobId,
 * ctx.prepared, attempt 1; its transactions are this one), and the job row is inserted finished: one transaction
 * and one statement of the job row per job, instead of a queuing transaction and a result transaction that
 * updates the row. Undefined when the handler (or the finished row's insert) failed there: nothing committed
 * (only ever with `inline`).
 */
async function queueJob(
  deps: ApiServerDeps,
  cmd: ResolvedCommand,
  params: Params<ParamSpecs>,
  rawParams: Map<string, string>,
  ctx: CommandContext,
  slot: JobSlot | undefined,
  inline: boolean,
): Promise<QueuedJob | undefined> {
  const { caller, callerCheck: check } = ctx;
  let handlerFailed = false;
  try {
    // On SQLite in one COMMIT with the other requests' and jobs' that queue meanwhile (commit-group.ts).
    return await groupedTransaction(deps.store, async (tx) => {
      handlerFailed = false;
      const prepared = cmd.def.prepare
        ? await cmd.def.prepare(params, { ...ctx, transaction: (fn) => fn(tx), inline })
        : undefined;
      const instance =
        cmd.def.jobInstance?.(params) ??
        (prepared ? { type: prepared.instanceType ?? '', id: prepared.id } : undefined);
      const raw = jobParams(cmd, rawParams);
      if (prepared) raw[PREPARED_PARAM] = JSON.stringify(prepared);
      const job: NewJob = {
        command: cmd.name,
        params: raw,
        caller,
        instanceType: instance?.type,
        // An id parameter CloudStack types as a string (moveNetworkAclItem's) may be anything a caller sends;
        // what no uuid can be is not recorded as the job's instance (the column holds 64 characters).
        instanceId: instance?.id !== undefined && instance.id.length <= 64 ? instance.id : undefined,
      };
      let finished: (StoredOutcome & { created: number }) | undefined;
      const started = performance.now();
      if (inline) {
        job.uuid = randomUUID();
        const created = nowMs();
        const jobCtx: CommandContext = {
          store: deps.store,
          caller,
          jobId: job.uuid,
          prepared,
          now: nowMs,
          transaction: (fn) => fn(tx),
          resultTransaction: (fn) => fn(tx),
        };
        setJobAttempt(jobCtx, 1);
        handlerFailed = true;
        const result = await cmd.def.handler(params, jobCtx);
        finished = {
          status: JOB_SUCCEEDED,
          resultCode: 0,
          result: JSON.stringify(resultBody(result)),
          created,
          completed: nowMs(),
        };
      }
      const queued = await enqueueJob(tx, job, inline ? undefined : slot, finished);
      handlerFailed = false;
      // Before the COMMIT: the remembered caller is still the caller, or nothing commits.
      await check?.ensure(tx);
      const row: QueuedJobRow = {
        uuid: queued.uuid,
        command: cmd.name,
        userId: caller.userId,
        accountId: caller.accountId,
        domainId: caller.domainId,
        instanceType: job.instanceType ?? null,
        instanceId: job.instanceId ?? null,
        created: queued.created,
      };
      return {
        id: queued.id,
        row,
        raw,
        prepared,
        finished: finished && {
          stored: finished,
          report: {
            uuid: queued.uuid,
            command: cmd.name,
            ok: true,
            resultCode: 0,
            seconds: (performance.now() - started) / 1000,
            attempt: 1,
          },
        },
      };
    });
  } catch (e) {
    if (handlerFailed) return undefined;
    throw e;
  }
}

export async function handleApiRequest(deps: ApiServerDeps, req: ApiRequest): Promise<ApiResponse> {
  const observe = deps.observe;
  if (!observe) return runRequest(deps, req, {});
  const started = performance.now();
  const seen: Seen = {};
  const r = await runRequest(deps, req, seen);
  const sent = req.params.get('command');
  observe({
    command: (sent !== undefined && deps.registry.get(sent)?.name) || 'unknown',
    errorcode: r.status === 200 ? 0 : r.status,
    errortext: seen.errortext,
    seconds: (performance.now() - started) / 1000,
    caller: seen.caller,
    jobId: seen.jobId,
    remoteAddress: req.remoteAddress,
  });
  return r;
}

async function runRequest(deps: ApiServerDeps, req: ApiRequest, seen: Seen): Promise<ApiResponse> {
  try {
    return await runRequestOnce(deps, req, seen, true);
  } catch (e) {
    // The remembered caller changed: nothing of the request committed or was answered; run it again with the
    // caller read afresh.
    if (e instanceof StaleCaller) return runRequestOnce(deps, req, seen, false);
    throw e;
  }
}

async function runRequestOnce(
  deps: ApiServerDeps,
  req: ApiRequest,
  seen: Seen,
  mayRemember: boolean,
): Promise<ApiResponse> {
  const format = responseFormat(req.params.get('response'));
  const command = req.params.get('command');
  if (!command) {
    seen.errortext = 'Invalid request, no command sent';
    return errorReply(new CloudStackError('UnsupportedAction', seen.errortext), 'errorresponse', format);
  }
  const known = deps.registry.get(command);
  const name = known ? (known.def.responseName ?? responseName(command)) : 'errorresponse';
  // A remembered caller's check (caller-check.ts), confirmed before anything is committed or answered.
  let check: CallerCheck | undefined;
  try {
    if (known?.def.public && !deps.trustedCaller) {
      if (command === 'login') return await login(deps, known, req, format);
      if (command === 'logout') return await logout(deps, req, format);
      const result = await known.def.handler(
        parseParams(known.params, req.params),
        commandContext(deps, anonymousCaller),
      );
      return reply(200, name, resultBody(result), format);
    }
    let caller: Caller;
    try {
      if (deps.trustedCaller) caller = await deps.trustedCaller();
      else {
        const remembered = mayRemember && known?.def.foldsCallerCheck === true && checksCallers(deps.store);
        ({ caller, check } = await authenticate(deps, req, remembered));
      }
    } catch (e) {
      throw toCloudStackError(e, 'authenticating the request');
    }
    seen.caller = caller;
    if (deps.throttle && caller.role !== 'Admin' && !deps.throttle.allow(caller.accountId, nowMs())) {
      throw new CloudStackError(
        'ApiLimitExceeded',
        'There are too many API calls made within the interval (api.throttling.max per api.throttling.interval); please retry later',
      );
    }
    const cmd = deps.registry.forRole(command, caller.role);
    if (!cmd) {
      await check?.ensure();
      // Unknown and not-allowed look the same, as in CloudStack: the caller learns nothing about other roles.
      seen.errortext = `The given command ${command} does not exist or it is not available for the user`;
      return errorReply(new CloudStackError('UnsupportedAction', seen.errortext), 'errorresponse', format);
    }
    if (projectScope(cmd.name, cmd.params, req.params) === 'none') {
      await check?.ensure();
      return reply(200, name, {}, format);
    }
    // Internal ids become UUIDs here, once, so the handler and a queued job both see the UUIDs.
    const rawParams = await resolveInternalIds(deps.store.db, cmd.params, caseFolded(req.params));
    const params = parseParams(cmd.params, rawParams);
    const ctx = commandContext(deps, caller, check);
    if (cmd.isAsync) {
      // The job is queued leased to this server's runner when it has a slot free; a command whose job is only
      // database work is run in the queuing transaction then (completesInline), or queued as any other when its
      // handler fails there (the whole transaction rolled back: the job fails as it always did).
      const slot = deps.jobSlots?.();
      let q: QueuedJob;
      try {
        q =
          (slot &&
            cmd.def.completesInline &&
            (await queueJob(deps, cmd, params, rawParams, ctx, slot, true))) ||
          (await queueJob(deps, cmd, params, rawParams, ctx, slot, false))!;
      } catch (e) {
        slot?.cancel();
        throw e;
      }
      const jobid = q.row.uuid;
      seen.jobId = jobid;
      if (q.finished) slot!.finished(q.finished.report, { ...q.row, ...q.finished.stored });
      else if (slot)
        slot.start(
          { id: q.id, uuid: jobid, command: cmd.name, params: q.raw, userId: caller.userId, attempts: 1 },
          caller,
          q.row,
        );
      else deps.onJobQueued?.();
      return reply(200, name, q.prepared ? { id: q.prepared.id, jobid } : { jobid }, format);
    }
    const result = await cmd.def.handler(params, ctx);
    await check?.ensure();
    return reply(200, name, resultBody(result), format);
  } catch (e) {
    if (e instanceof StaleCaller) throw e;
    // An error is answered only to a confirmed caller: a stale one's request is run again (StaleCaller).
    if (check && !check.confirmed) {
      try {
        await check.ensure();
      } catch (e2) {
        if (e2 instanceof StaleCaller) throw e2;
        const err2 = toCloudStackError(e2, 'authenticating the request');
        seen.errortext = err2.message;
        return errorReply(err2, name, format);
      }
    }
    const err = toCloudStackError(e, `running ${command}`);
    seen.errortext = err.message;
    if (err.kind === 'InternalError')
      deps.log?.(`${command}: ${err.message}${e instanceof Error && e.stack ? `\n${e.stack}` : ''}`);
    return errorReply(err, name, format);
  }
}
