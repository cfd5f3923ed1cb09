/** queryAsyncJobResult and listAsyncJobs. */
import { allRoles, defineCommand, listResult, rawResult, refParams } from '../command.js';
import type { AnyCommand, Caller, CommandContext, ResponseObject } from '../command.js';
import { callerChecked } from '../caller-check.js';
import { csDate, withJsonText } from '../envelope.js';
import { pageOf, pageOfQuery, keywordMatch } from '../list.js';
import { invalidParameter } from '../../errors/catalogue.js';
import type { Executor } from '../../store/db.js';
import { applyListScope, resolveListScope, scopeToCaller } from '../../accounts/scope.js';
import { runningJobs } from './runner.js';
import { finishedJobs } from './finished.js';
import type { JobAnswerRow } from './finished.js';
import { preparedQuery } from '../../store/prepared.js';

const JOB_COLS = { accountColumn: 'j.account_id', domainColumn: 'j.domain_id' };

function jobQuery(ex: Executor) {
  return ex
    .selectFrom('async_jobs as j')
    .leftJoin('accounts as a', 'a.id', 'j.account_id')
    .leftJoin('users as u', 'u.id', 'j.user_id')
    .leftJoin('domains as d', 'd.id', 'j.domain_id')
    .select([
      'j.id',
      'j.uuid',
      'j.command',
      'j.status',
      'j.result_code',
      'j.result',
      'j.instance_type',
      'j.instance_id',
      'j.created',
      'j.completed',
      'a.uuid as account_uuid',
      'a.name as account_name',
      'u.uuid as user_uuid',
      'd.uuid as domain_uuid',
      'd.path as domain_path',
    ]);
}
type JobRow = Awaited<ReturnType<ReturnType<typeof jobQuery>['executeTakeFirstOrThrow']>>;

/** CloudStack reports the Java command class; stacknet names the same class CloudStack would. */
export function commandClass(command: string): string {
  return `org.apache.cloudstack.api.command.${command.charAt(0).toUpperCase()}${command.slice(1)}Cmd`;
}

/**
 * `spliced`: the stored result goes into the answer as the text it is stored as (envelope.ts jsonTextMember)
 * when it has no null in it, for a response that is the whole answer (queryAsyncJobResult), not a list item.
 */
export function jobResponse(r: JobRow | JobAnswerRow, spliced = false): ResponseObject {
  const status = Number(r.status);
  const o: ResponseObject = {
    jobid: r.uuid,
    accountid: r.account_uuid ?? undefined,
    account: r.account_name ?? undefined,
    userid: r.user_uuid ?? undefined,
    domainid: r.domain_uuid ?? undefined,
    cmd: commandClass(r.command),
    jobstatus: status,
    jobprocstatus: 0,
    jobresultcode: Number(r.result_code),
    jobresulttype: 'object',
    jobinstancetype: r.instance_type ?? undefined,
    jobinstanceid: r.instance_id ?? undefined,
    created: csDate(Number(r.created)),
    completed: r.completed === null ? undefined : csDate(Number(r.completed)),
  };
  if (status !== 0 && r.result) {
    // A result stored with a null member (or the word in a string: then merely parsed as before) is parsed so
    // that serialising drops its nulls, as CloudStack's Gson does.
    if (spliced && !r.result.includes('null')) return withJsonText(o, 'jobresult', r.result);
    o.jobresult = JSON.parse(r.result) as ResponseObject;
  }
  return o;
}

/**
 * How long queryAsyncJobResult waits for a job that this server is running to finish before it answers with the
 * job as it stands. A poll that would answer "pending" (and be sent again, signed, authenticated and read again a
 * moment later) answers the result as soon as it is stored instead: fewer polls per job, each answered sooner.
 * Short enough that a client polling a long job sees it still pending within its usual HTTP timeouts.
 */
export const JOB_RESULT_WAIT_MS = 500;

async function settledOrTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]).catch(() => undefined);
  clearTimeout(timer);
}

// queryAsyncJobResult's read, prepared (src/store/prepared.ts) for the callers whose scope is one shape: a root
// admin (everything) and a user (its account; the condition scopeToCaller writes for one). A domain admin's scope
// carries its domain's path length in the SQL text, and is built per call.
const jobByUuid = preparedQuery((ex: Executor, uuid: string) => jobQuery(ex).where('j.uuid', '=', uuid));
const accountJobByUuid = preparedQuery((ex: Executor, uuid: string, accountId: number) =>
  scopeToCaller(jobQuery(ex).where('j.uuid', '=', uuid), { role: 'User', accountId } as Caller, JOB_COLS),
);
// The same, carrying the remembered caller's check (caller-check.ts): the poll is one statement.
const jobByUuidChecked = preparedQuery((ex: Executor, uuid: string, apiKey: string) =>
  callerChecked(jobQuery(ex).where('j.uuid', '=', uuid), apiKey),
);
const accountJobByUuidChecked = preparedQuery(
  (ex: Executor, uuid: string, accountId: number, apiKey: string) =>
    callerChecked(
      scopeToCaller(jobQuery(ex).where('j.uuid', '=', uuid), { role: 'User', accountId } as Caller, JOB_COLS),
      apiKey,
    ),
);

/** The job `uuid` if the caller may see it, with a remembered caller's check confirmed by the same read. */
async function jobForCaller(ctx: CommandContext, uuid: string): Promise<JobRow | undefined> {
  const c = ctx.caller;
  const ex = ctx.store.db;
  const check = ctx.callerCheck;
  if (check && (c.role === 'Admin' || c.role === 'User')) {
    const row =
      c.role === 'Admin'
        ? await jobByUuidChecked.first(ex, uuid, check.apiKey)
        : await accountJobByUuidChecked.first(ex, uuid, c.accountId, check.apiKey);
    // No row carries no check: it is confirmed on its own before the answer (api-server.ts).
    if (row) check.confirm(row.caller_fp);
    return row;
  }
  return c.role === 'Admin'
    ? jobByUuid.first(ex, uuid)
    : c.role === 'User'
      ? accountJobByUuid.first(ex, uuid, c.accountId)
      : scopeToCaller(jobQuery(ex).where('j.uuid', '=', uuid), c, JOB_COLS).executeTakeFirst();
}

const queryAsyncJobResult = defineCommand({
  name: 'queryAsyncJobResult',
  roles: allRoles,
  params: refParams('queryAsyncJobResult', ['jobid']),
  foldsCallerCheck: true,
  async handler(p, ctx) {
    // Only a job running here is waited for (no database read, no connection held while waiting); whether the
    // caller may see it is checked by the read after, as for any other.
    const running = runningJobs.get(p.jobid);
    if (running) await settledOrTimeout(running, JOB_RESULT_WAIT_MS);
    // A job this server finished, polled by whoever queued it: answered from memory (finished.ts).
    const known = finishedJobs(ctx.store).answerFor(p.jobid, ctx.caller);
    if (known) return rawResult(jobResponse(known, true));
    const row = await jobForCaller(ctx, p.jobid);
    if (!row)
      throw invalidParameter('jobid', p.jobid, 'no async job with this id that the caller can access');
    return rawResult(jobResponse(row, true));
  },
});

const listAsyncJobs = defineCommand({
  name: 'listAsyncJobs',
  roles: allRoles,
  params: refParams('listAsyncJobs', [
    'account',
    'domainid',
    'isrecursive',
    'listall',
    'keyword',
    'startdate',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    const ex = ctx.store.db;
    const page = await pageOf(ex, p);
    const scope = await resolveListScope(ex, ctx.caller, p);
    let q = applyListScope(jobQuery(ex), ctx.caller, scope, JOB_COLS);
    if (p.startdate !== undefined) q = q.where('j.created', '>=', p.startdate.getTime());
    if (p.keyword !== undefined) q = q.where(keywordMatch(['j.command'], p.keyword));
    const { rows, total } = await pageOfQuery(q, page, (x) => x.orderBy('j.id', 'desc'));
    return listResult(
      'asyncjobs',
      rows.map((r) => jobResponse(r)),
      total,
    );
  },
});

export const commands: AnyCommand[] = [queryAsyncJobResult, listAsyncJobs];
