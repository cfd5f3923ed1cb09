/**
 * Finding the account or user a command acts on and checking the caller may act on it (CloudStack's
 * AccountManagerImpl.checkAccess with OperateEntry): a root admin acts on everything, a domain admin on accounts
 * of its domain subtree, a user on its own account only. A missing object is 431, one out of reach 531. No caller
 * below root admin acts on a root admin account (CloudStack refuses that escalation since its 2024 key fixes).
 */
import type { Caller, ResponseObject } from '../api/command.js';
import { CloudStackError, invalidParameter, permissionDenied } from '../errors/catalogue.js';
import type { Executor } from '../store/db.js';
import { displayPath } from './repository.js';
import { accountQuery, accountResponse, domainQuery, domainResponse, userQuery } from './responses.js';
import type { AccountRow, DomainRow, UserRow } from './responses.js';
import { accountLimits, accountTotals, domainTotals, limitFields, zeroTotals } from './resource-limits.js';
import { pathInSubtree } from './scope.js';

export function checkName(param: string, v: string): string {
  const t = v.trim();
  if (t === '' || /[/\\]/.test(t))
    throw invalidParameter(param, v, 'must be non-empty and contain no slashes');
  return t;
}

/**
 * A user's time zone: an IANA name the server knows (`UTC`, `Europe/Berlin`, `Etc/GMT+12`: the CloudStack UI's
 * list), as it is stored; undefined when not given. CloudStack maps an unknown name to GMT without a word; stacknet
 * says so instead.
 */
export function checkTimezone(v: string | undefined): string | undefined {
  const t = v?.trim();
  if (!t) return undefined;
  if (t.length <= 64 && isTimeZone(t)) return t;
  throw invalidParameter('timezone', v, 'not a time zone (use an IANA name such as UTC or Europe/Berlin)');
}

function isTimeZone(name: string): boolean {
  try {
    Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** May `caller` operate on `account` (its users, its state, its settings)? 531 when not. */
export function checkAccountAccess(
  caller: Caller,
  account: { id: number; name: string; type: number; domainPath: string },
): void {
  if (caller.role === 'Admin') return;
  const denied = (why: string) =>
    permissionDenied(
      `Account ${caller.accountName} does not have permission to operate on account ${account.name} in domain ${displayPath(account.domainPath)}: ${why}`,
    );
  if (account.type === 1) throw denied('it is a root admin account');
  if (caller.role === 'User') {
    if (account.id !== caller.accountId) throw denied('a user may act only on its own account');
    return;
  }
  if (!pathInSubtree(account.domainPath, caller.domainPath))
    throw denied("it is outside the caller's domain");
}

const accountRef = (r: AccountRow | UserRow, id: number) => ({
  id,
  name: 'name' in r ? r.name : r.account_name,
  type: Number('type' in r ? r.type : r.account_type),
  domainPath: r.domain_path,
});

/** The user `uuid` (431 when there is none) after checking the caller may act on its account (531). */
export async function userForAction(ex: Executor, caller: Caller, uuid: string): Promise<UserRow> {
  const u = await userQuery(ex).where('u.uuid', '=', uuid).executeTakeFirst();
  if (!u) throw invalidParameter('id', uuid, 'no user has this id');
  checkAccountAccess(caller, accountRef(u, Number(u.account_id)));
  return u;
}

/**
 * The account named by `id`, or by `account` + `domainid` (CloudStack's disable/enable/lock/updateAccount),
 * after checking the caller may act on it.
 */
export async function accountForAction(
  ex: Executor,
  caller: Caller,
  p: { id?: string; account?: string; domainid?: string },
): Promise<AccountRow> {
  let q = accountQuery(ex);
  if (p.id !== undefined) q = q.where('a.uuid', '=', p.id);
  else if (p.account !== undefined && p.domainid !== undefined)
    q = q.where('a.name', '=', p.account).where('d.uuid', '=', p.domainid);
  else
    throw new CloudStackError(
      'InvalidParameterValue',
      'Either id, or account and domainid together, must be given to name the account',
    );
  const row = await q.executeTakeFirst();
  if (!row) {
    throw p.id !== undefined
      ? invalidParameter('id', p.id, 'no account has this id')
      : invalidParameter('account', p.account, `no account with this name in domain ${p.domainid}`);
  }
  checkAccountAccess(caller, accountRef(row, Number(row.id)));
  return row;
}

/** Users of each account, in creation order. */
export async function usersOf(ex: Executor, accountIds: number[]): Promise<Map<number, UserRow[]>> {
  const out = new Map<number, UserRow[]>();
  if (accountIds.length === 0) return out;
  const rows = await userQuery(ex).where('u.account_id', 'in', accountIds).orderBy('u.id').execute();
  for (const r of rows) {
    const list = out.get(Number(r.account_id)) ?? [];
    list.push(r);
    out.set(Number(r.account_id), list);
  }
  return out;
}

/** Account responses with their users and (unless `withLimits` is false) their resource-limit fields. */
export async function accountResponses(
  ex: Executor,
  rows: AccountRow[],
  withLimits = true,
): Promise<ResponseObject[]> {
  const ids = rows.map((r) => Number(r.id));
  const users = await usersOf(ex, ids);
  const totals = withLimits ? await accountTotals(ex, ids) : undefined;
  const out: ResponseObject[] = [];
  for (const r of rows) {
    const id = Number(r.id);
    const extra = totals
      ? limitFields(
          await accountLimits(ex, { id, type: Number(r.type) }),
          totals.get(id) ?? zeroTotals(),
          true,
        )
      : {};
    out.push(accountResponse(r, users.get(id) ?? [], extra));
  }
  return out;
}

export async function accountResponseByUuid(ex: Executor, uuid: string): Promise<ResponseObject> {
  const row = await accountQuery(ex).where('a.uuid', '=', uuid).executeTakeFirstOrThrow();
  return (await accountResponses(ex, [row]))[0]!;
}

/** Domain responses with `haschild` and (unless `withLimits` is false) the resource-limit fields. */
export async function domainResponses(
  ex: Executor,
  rows: DomainRow[],
  withLimits = true,
): Promise<ResponseObject[]> {
  const withChildren = new Set<number>();
  if (rows.length > 0) {
    const kids = await ex
      .selectFrom('domains')
      .select('parent_id')
      .where(
        'parent_id',
        'in',
        rows.map((r) => Number(r.id)),
      )
      .groupBy('parent_id')
      .execute();
    for (const k of kids) withChildren.add(Number(k.parent_id));
  }
  const totals = withLimits
    ? await domainTotals(
        ex,
        rows.map((r) => ({ id: Number(r.id), path: r.path })),
      )
    : undefined;
  return rows.map((r) => {
    const t = totals?.get(Number(r.id));
    // stacknet enforces no domain limits: every one is "Unlimited" (CloudStack's -1).
    return domainResponse(r, withChildren.has(Number(r.id)), t ? limitFields({}, t) : {});
  });
}

export async function domainResponseByUuid(ex: Executor, uuid: string): Promise<ResponseObject> {
  const row = await domainQuery(ex).where('d.uuid', '=', uuid).executeTakeFirstOrThrow();
  return (await domainResponses(ex, [row]))[0]!;
}
