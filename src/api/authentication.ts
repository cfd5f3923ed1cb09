/**
 * Who calls the API: a signed request's key and signature (signatureversion 3 with `expires`), a session's key
 * from login, the remembered caller of a key (caller-check.ts); and login/logout, which make and end sessions.
 * The pipeline in api-server.ts calls these before it runs a command.
 */
import { randomUUID } from 'node:crypto';
import type { Executor } from '../store/db.js';
import { nowMs, transaction } from '../store/db.js';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import type { Caller } from './command.js';
import type { ResponseFormat } from './envelope.js';
import { parseParams, parseIsoWithZone, isUuid } from './params.js';
import type { ResolvedCommand } from './registry.js';
import { verifySignature } from './signature.js';
import { callerByLogin, callerByUserId, displayPath } from '../accounts/repository.js';
import { callerOfApiKey, readCallerChecked, rememberedCaller } from './caller-check.js';
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
import { reply } from './reply.js';
import type { ApiRequest, ApiResponse } from './reply.js';
import type { ApiServerDeps } from './api-server.js';

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

interface AuthParams {
  signature?: string;
  apikey?: string;
  signatureversion?: string;
  expires?: string;
}

/**
 * The auth parameters, their names in any case (`apiKey`, `signatureVersion`: clients differ), the first of each
 * name; read in one pass over the parameters.
 */
function authParams(params: Map<string, string>): AuthParams {
  const out: AuthParams = {};
  for (const [k, v] of params) {
    const lower = k.toLowerCase();
    if (
      (lower === 'signature' || lower === 'apikey' || lower === 'signatureversion' || lower === 'expires') &&
      out[lower] === undefined
    )
      out[lower] = v;
  }
  return out;
}

function unauthorized(why?: string): CloudStackError {
  return new CloudStackError('Unauthorized', why ? `${UNAUTHORIZED_TEXT}: ${why}` : UNAUTHORIZED_TEXT);
}

/**
 * Who calls. With `remembered` (a command that folds its caller check, on PostgreSQL/MariaDB) a signed request
 * whose signature checks with the secret this server remembers for its key starts from the remembered caller and
 * a check the request must confirm (caller-check.ts); otherwise the caller is read now, as always.
 */
export async function authenticate(
  deps: ApiServerDeps,
  req: ApiRequest,
  remembered = false,
): Promise<{ caller: Caller; check?: CallerCheck }> {
  const { store } = deps;
  const auth = authParams(req.params);
  const { signature, apikey: apiKey } = auth;
  if (signature !== undefined || apiKey !== undefined) {
    if (!signature || !apiKey) throw unauthorized();
    if (auth.signatureversion === '3') {
      const expires = auth.expires;
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
    const rec = remembered
      ? await readCallerChecked(store, apiKey)
      : await callerOfApiKey(store, apiKey, req.arrived);
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

export async function login(
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

export async function logout(
  deps: ApiServerDeps,
  req: ApiRequest,
  format: ResponseFormat,
): Promise<ApiResponse> {
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
