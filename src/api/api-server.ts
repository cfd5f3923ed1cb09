/**
 * One API request, transport-free: parameters and cookies in, status + body + cookies out. The Fastify route
 * (http.ts) is a thin adapter around `handleApiRequest`, so the whole pipeline — authentication, role check,
 * validation, sync execution or job queueing, envelopes — is one function.
 */
import { randomUUID } from 'node:crypto';
import type { Executor, Store, Tx } from '../store/db.js';
import { nowMs, transaction } from '../store/db.js';
import { CloudStackError, invalidParameter, toCloudStackError } from '../errors/catalogue.js';
import { anonymousCaller } from './command.js';
import type {
  Caller,
  CommandContext,
  ParamSpecs,
  Params,
  PreparedObject,
  ResponseObject,
} from './command.js';
import { errorBody, resultBody, responseFormat, responseName, serialize } from './envelope.js';
import type { ResponseFormat } from './envelope.js';
import { caseFolded, parseParams, parseIsoWithZone, isUuid, resolveInternalIds } from './params.js';
import type { CommandRegistry, ResolvedCommand } from './registry.js';
import { verifySignature } from './signature.js';
import { JOB_SUCCEEDED, enqueueJob } from './jobs/repository.js';
import type { NewJob, StoredOutcome } from './jobs/repository.js';
import { setJobAttempt } from './jobs/rerun.js';
import type { ApiThrottle } from './throttle.js';
import { PREPARED_PARAM } from './jobs/runner.js';
import type { FinishedJob, JobSlot, QueuedJobRow } from './jobs/runner.js';
import { groupedTransaction } from './jobs/commit-group.js';
import { callerByLogin, callerByUserId, displayPath } from '../accounts/repository.js';
import {
  callerOfApiKey,
  checksCallers,
  readCallerChecked,
  rememberedCaller,
  StaleCaller,
} from './caller-check.js';
import type { CallerCheck } from './caller-check.js';
import { dummyPasswordHash, generateSessionKey, sha256Hex, verifyPassword } from '../accounts/credentials.js';
import {
  beginLoginAttempt,
  loginFailed,
  loginSucceeded,
  loginThrottleSettings,
  throttleKeys,
} from '../accounts/login-throttle.js';
import type { ThrottleKey } from '../accounts/login-throttle.js';
import { recordEvent } from '../events/record.js';
import { getSetting } from '../configuration/repository.js';
import { projectScope } from '../projects/commands.js';

export const SESSION_TIMEOUT_SECONDS = 1800;
/**
 * How far ahead a signatureversion=3 `expires` may be: CloudStack's ApiServer refuses one more than 15 minutes
 * ahead (when `enforce.post.requests.and.timestamps`); stacknet always does, or a signed URL that leaks would
 * stay valid for as long as its author chose. cloudstack-go signs with exactly now + 15 min, so a client clock a
 * little ahead of ours gets a minute of grace rather than a 401 on every call.
 */
export const MAX_EXPIRES_AHEAD_MS = 15 * 60 * 1000;
const CLOCK_SKEW_MS = 60 * 1000;
const UNAUTHORIZED_TEXT = 'unable to verify user credentials and/or request signature';

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

export interface ApiRequest {
  /** First value of each parameter, query string and form body merged (query first). */
  params: Map<string, string>;
  cookies: Record<string, string>;
  /** The client's address (the login throttle counts per address); absent when the transport does not know. */
  remoteAddress?: string;
}

export interface ApiResponse {
  status: number;
  contentType: string;
  body: string;
  headers: Record<string, string>;
  setCookies: string[];
}

function reply(
  status: number,
  name: string,
  body: ResponseObject,
  format: ResponseFormat,
  extra: Partial<Pick<ApiResponse, 'headers' | 'setCookies'>> = {},
): ApiResponse {
  const s = serialize(name, body, format);
  return {
    status,
    contentType: s.contentType,
    body: s.body,
    headers: extra.headers ?? {},
    setCookies: extra.setCookies ?? [],
  };
}

function errorReply(err: CloudStackError, name: string, format: ResponseFormat): ApiResponse {
  // X-Description repeats the text (CloudStack sets it on every error); header values must be one ASCII line.
  const header = err.message.replace(/[^\x20-\x7e]/g, ' ').slice(0, 1000);
  return reply(err.httpCode, name, errorBody(err), format, { headers: { 'X-Description': header } });
}

/** Case-insensitive lookup of the auth parameters (`apiKey`, `signatureVersion`: clients differ). */
function authParam(params: Map<string, string>, lower: string): string | undefined {
  for (const [k, v] of params) if (k.toLowerCase() === lower) return v;
  return undefined;
}

function unauthorized(why?: string): CloudStackError {
  return new CloudStackError('Unauthorized', why ? `${UNAUTHORIZED_TEXT}: ${why}` : UNAUTHORIZED_TEXT);
}

/**
 * Who calls. With `remembered` (a command that folds its caller check, on PostgreSQL/MariaDB) a signed request
 * whose signature checks with the secret this server remembers for its key starts from the remembered caller and
 * a check the request must confirm (caller-check.ts); otherwise the caller is read now, as always.
 */
async function authenticate(
  deps: ApiServerDeps,
  req: ApiRequest,
  remembered = false,
): Promise<{ caller: Caller; check?: CallerCheck }> {
  const { store } = deps;
  const signature = authParam(req.params, 'signature');
  const apiKey = authParam(req.params, 'apikey');
  if (signature !== undefined || apiKey !== undefined) {
    if (!signature || !apiKey) throw unauthorized();
    const version = authParam(req.params, 'signatureversion');
    if (version === '3') {
      const expires = authParam(req.params, 'expires');
      if (expires === undefined) throw unauthorized('signatureversion=3 needs an expires parameter');
      const at = parseIsoWithZone(expires);
      if (!at) throw unauthorized('expires is not a date such as 2026-01-02T10:00:00+0000');
      const now = nowMs();
      if (at.getTime() < now) throw unauthorized('the request expired (expires is in the past)');
      if (at.getTime() > now + MAX_EXPIRES_AHEAD_MS + CLOCK_SKEW_MS)
        throw unauthorized('expires may be at most 15 minutes ahead of the server clock');
    }
    if (remembered) {
      const hit = rememberedCaller(store, apiKey);
      // A signature that fails with the remembered secret is judged by the secret read now (it may be new).
      if (hit && verifySignature(req.params, hit.record.secretKey!, signature))
        return { caller: hit.record.caller, check: hit.check };
    }
    const rec = remembered ? await readCallerChecked(store, apiKey) : await callerOfApiKey(store, apiKey);
    if (!rec || !rec.enabled || !rec.secretKey) throw unauthorized();
    if (!verifySignature(req.params, rec.secretKey, signature)) throw unauthorized();
    return { caller: rec.caller };
  }
  const key = await sessionKeyOf(store.db, req);
  if (!key) throw unauthorized();
  const now = nowMs();
  const session = await store.db
    .selectFrom('sessions')
    .select(['id', 'user_id', 'last_seen', 'expires'])
    .where('key_hash', '=', sha256Hex(key))
    .executeTakeFirst();
  if (!session || Number(session.expires) < now) throw unauthorized();
  const rec = await callerByUserId(store.db, Number(session.user_id));
  if (!rec || !rec.enabled) throw unauthorized();
  // Sliding expiry, written at most once a minute so that busy sessions do not turn every read into a write.
  if (now - Number(session.last_seen) > 60_000) {
    await transaction(store, (tx) =>
      tx
        .updateTable('sessions')
        .set({ last_seen: now, expires: now + SESSION_TIMEOUT_SECONDS * 1000 })
        .where('id', '=', Number(session.id))
        .execute(),
    );
  }
  return { caller: rec.caller };
}

/**
 * The session key of a request, checked as CloudStack's HttpUtils.validateSessionKey does with the option
 * (ApiSessionKeyCheckOption) set by `stacknet.api.session.key.check`:
 * - `CookieAndParameter` (the default): the `sessionkey` cookie and the `sessionkey` parameter, equal. The cookie
 *   alone is what a cross-site request carries, the parameter is what a page of another origin cannot read:
 *   requiring both is the CSRF defence. cmk and CloudStack's current UI send both.
 * - `CookieOrParameter` (CloudStack's behaviour from CLOUDSTACK-8622, 4.6, until its later security fixes): either
 *   one; where both come they must be equal. The UIs of that era (Primate, 4.15…) send the cookie only.
 * - `ParameterOnly`: the parameter; a cookie, if sent, must be equal.
 * The setting is read only when the strict check fails, so the usual request costs no query for it.
 */
async function sessionKeyOf(ex: Executor, req: ApiRequest): Promise<string | undefined> {
  const param = req.params.get('sessionkey') || undefined;
  const cookie = req.cookies.sessionkey || undefined;
  if (param && cookie) return param === cookie ? param : undefined;
  if (!param && !cookie) return undefined;
  const check = await getSetting(ex, 'stacknet.api.session.key.check');
  if (check === 'CookieOrParameter') return param ?? cookie;
  if (check === 'ParameterOnly') return param;
  return undefined;
}

function normaliseDomainPath(raw: string | undefined): string {
  if (raw === undefined || raw.trim() === '' || raw.trim() === '/') return '/';
  let p = raw.trim().replace(/^\/?ROOT(?=\/|$)/i, '');
  if (!p.startsWith('/')) p = `/${p}`;
  if (!p.endsWith('/')) p = `${p}/`;
  return p;
}

function cookie(name: string, value: string, maxAge?: number): string {
  return `${name}=${value}; Path=/client; HttpOnly; SameSite=Lax${maxAge === undefined ? '' : `; Max-Age=${maxAge}`}`;
}

function lockedOut(
  key: ThrottleKey,
  until: number,
  username: string,
  domain: string | undefined,
): CloudStackError {
  const when = new Date(until).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return new CloudStackError(
    'PermissionDenied',
    key.kind === 'user'
      ? `User ${username} in domain ${domain} is locked after too many incorrect login attempts (incorrect.login.attempts.allowed); try again after ${when}`
      : `Too many incorrect login attempts from this address (incorrect.login.attempts.allowed.per.address); try again after ${when}`,
  );
}

async function login(
  deps: ApiServerDeps,
  cmd: ResolvedCommand,
  req: ApiRequest,
  format: ResponseFormat,
): Promise<ApiResponse> {
  const p = parseParams(cmd.params, req.params) as {
    username: string;
    password: string;
    domain?: string;
    domainId?: string;
  };
  let domain: { path?: string; id?: number };
  if (p.domainId !== undefined) {
    // Checked before the query: PostgreSQL and MariaDB refuse a non-number for a bigint column with an error.
    const uuid = isUuid(p.domainId);
    if (!uuid && !/^\d{1,15}$/.test(p.domainId))
      throw invalidParameter('domainId', p.domainId, 'expected the id or the uuid of a domain');
    const row = await deps.store.db
      .selectFrom('domains')
      .select('id')
      .where(uuid ? 'uuid' : 'id', '=', uuid ? p.domainId.toLowerCase() : Number(p.domainId))
      .executeTakeFirst();
    domain = { id: row ? Number(row.id) : -1 };
  } else domain = { path: normaliseDomainPath(p.domain) };
  const domainText = domain.path ? displayPath(domain.path) : p.domainId;
  const rec = await callerByLogin(deps.store.db, p.username, domain);
  const settings = await loginThrottleSettings(deps.store.db);
  // A user that exists is counted by its id (whichever way the domain was named); a name that matches nobody by
  // what was asked, so guessing unknown names meets the same limit as guessing known ones.
  const keys = throttleKeys(
    settings,
    rec ? `#${rec.caller.userId}` : `${domainText} ${p.username}`,
    req.remoteAddress,
  );
  const now = nowMs();
  const verdict = await beginLoginAttempt(deps.store, keys, now, settings.lockMs);
  if (!verdict.allowed) throw lockedOut(verdict.key, verdict.until, p.username, domainText);
  // The same scrypt work whether or not the user exists or may log in: the timing must not tell them apart.
  const passwordOk = await verifyPassword(p.password, rec?.passwordHash ?? (await dummyPasswordHash()));
  // CloudStack says a user is disabled or locked only to whoever gave its right password.
  if (rec && passwordOk && !rec.enabled) {
    await loginSucceeded(deps.store, keys);
    throw new CloudStackError(
      'PermissionDenied',
      `User ${p.username} (or its account) in domain ${domainText} is disabled or locked; ask an administrator to enable it`,
    );
  }
  if (!rec || !rec.enabled || !passwordOk) {
    const locked = await loginFailed(deps.store, keys, now, settings.lockMs);
    // What CloudStack's log says when it disables a user: the operator hears about a lock as it starts.
    if (locked)
      deps.log?.(
        `login: ${lockedOut(locked.key, locked.until, p.username, domainText).message}${locked.key.kind === 'address' && req.remoteAddress ? ` (${req.remoteAddress})` : ''}`,
      );
    throw new CloudStackError(
      'PermissionDenied',
      `Failed to authenticate user ${p.username} in domain ${domainText}; please provide valid credentials`,
    );
  }
  await loginSucceeded(deps.store, keys);
  const key = generateSessionKey();
  await transaction(deps.store, async (tx) => {
    await tx
      .insertInto('sessions')
      .values({
        key_hash: sha256Hex(key),
        user_id: rec.caller.userId,
        created: now,
        last_seen: now,
        expires: now + SESSION_TIMEOUT_SECONDS * 1000,
      })
      .execute();
    // Old sessions die lazily; sweep the expired ones of this user while we are here.
    await tx
      .deleteFrom('sessions')
      .where('user_id', '=', rec.caller.userId)
      .where('expires', '<', now)
      .execute();
    await recordEvent(tx, {
      type: 'USER.LOGIN',
      actor: rec.caller,
      description: `user ${rec.caller.username} has logged in`,
    });
  });
  const c = rec.caller;
  const user = await deps.store.db
    .selectFrom('users')
    .select(['firstname', 'lastname', 'timezone'])
    .where('id', '=', c.userId)
    .executeTakeFirstOrThrow();
  // CloudStack's LoginCmdResponse is not wrapped in an object name.
  return reply(
    200,
    'loginresponse',
    {
      timeout: SESSION_TIMEOUT_SECONDS,
      sessionkey: key,
      userid: c.userUuid,
      domainid: c.domainUuid,
      username: c.username,
      account: c.accountName,
      type: String(c.accountType),
      firstname: user.firstname,
      lastname: user.lastname,
      registered: 'false',
      timezone: user.timezone ?? undefined,
      timezoneoffset: timezoneOffsetHours(user.timezone, now),
      is2faenabled: 'false',
    },
    format,
    {
      setCookies: [
        cookie('JSESSIONID', randomUUID().replace(/-/g, '').toUpperCase()),
        cookie('sessionkey', key),
      ],
    },
  );
}

/**
 * The user's timezone offset from UTC now, in hours, as CloudStack's login answers it (a Java float's text:
 * "0.0", "5.5", "-8.0"); "0.0" when the user has no timezone or one Java would not know (it falls back to GMT).
 * The CloudStack UI stores it at login and stops if it is missing.
 */
export function timezoneOffsetHours(timezone: string | null | undefined, at: number): string {
  let minutes = 0;
  if (timezone) {
    try {
      const part = new Intl.DateTimeFormat('en-US', { timeZone: timezone, timeZoneName: 'longOffset' })
        .formatToParts(at)
        .find((x) => x.type === 'timeZoneName')?.value;
      const m = /^GMT([+-])(\d{2}):(\d{2})$/.exec(part ?? '');
      if (m) minutes = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
    } catch {
      minutes = 0;
    }
  }
  const hours = minutes / 60;
  return Number.isInteger(hours) ? hours.toFixed(1) : String(hours);
}

async function logout(deps: ApiServerDeps, req: ApiRequest, format: ResponseFormat): Promise<ApiResponse> {
  // Only a request that could use the session may end it (the same check as authenticate's).
  const key = await sessionKeyOf(deps.store.db, req);
  if (key) {
    await transaction(deps.store, async (tx) => {
      const s = await tx
        .selectFrom('sessions')
        .select(['id', 'user_id'])
        .where('key_hash', '=', sha256Hex(key))
        .executeTakeFirst();
      if (!s) return;
      await tx.deleteFrom('sessions').where('id', '=', Number(s.id)).execute();
      const rec = await callerByUserId(tx, Number(s.user_id));
      if (rec)
        await recordEvent(tx, {
          type: 'USER.LOGOUT',
          actor: rec.caller,
          description: `user ${rec.caller.username} has logged out`,
        });
    });
  }
  return reply(200, 'logoutresponse', { description: 'success' }, format, {
    setCookies: [cookie('JSESSIONID', '', 0), cookie('sessionkey', '', 0)],
  });
}

/** The parameters a job keeps: the declared ones, as sent (they are parsed again when the job runs). */
function jobParams(cmd: ResolvedCommand, raw: Map<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of raw) {
    const base = k.replace(/\[.*$/, '');
    if (Object.hasOwn(cmd.params, base)) out[k] = v;
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
 * updates the row. Undefined when the handler (or the finished row's insert) failed there: nothing committed.
 */
function queueJob(
  deps: ApiServerDeps,
  cmd: ResolvedCommand,
  params: Params<ParamSpecs>,
  rawParams: Map<string, string>,
  ctx: CommandContext,
  slot: JobSlot | undefined,
  inline: false,
): Promise<QueuedJob>;
function queueJob(
  deps: ApiServerDeps,
  cmd: ResolvedCommand,
  params: Params<ParamSpecs>,
  rawParams: Map<string, string>,
  ctx: CommandContext,
  slot: JobSlot,
  inline: true,
): Promise<QueuedJob | undefined>;
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
          // As the runner hands it over: what travels with the job.
          prepared: prepared && (JSON.parse(raw[PREPARED_PARAM]!) as PreparedObject),
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
      await check?.ensure(deps.store.db);
      // Unknown and not-allowed look the same, as in CloudStack: the caller learns nothing about other roles.
      seen.errortext = `The given command ${command} does not exist or it is not available for the user`;
      return errorReply(new CloudStackError('UnsupportedAction', seen.errortext), 'errorresponse', format);
    }
    if (projectScope(cmd.name, cmd.params, req.params) === 'none') {
      await check?.ensure(deps.store.db);
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
          (await queueJob(deps, cmd, params, rawParams, ctx, slot, false));
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
    await check?.ensure(deps.store.db);
    return reply(200, name, resultBody(result), format);
  } catch (e) {
    if (e instanceof StaleCaller) throw e;
    // An error is answered only to a confirmed caller: a stale one's request is run again (StaleCaller).
    if (check && !check.confirmed) {
      try {
        await check.ensure(deps.store.db);
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
