/**
 * Accounts and domains as the networking API sees them: resolving `account`+`domainid` to an owner, checking
 * that a caller may act for/on an owner (users: their account; domain admins: their subtree; root: all), and
 * the names responses show.
 */
import { displayPath } from '../accounts/repository.js';
import { CloudStackError, invalidParameter, permissionDenied } from '../errors/catalogue.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import type { NetCaller } from './context.js';
import { preparedQuery } from '../store/prepared.js';

export interface Owner {
  accountId: number;
  accountUuid: string;
  accountName: string;
  accountType: number;
  domainId: number;
  domainUuid: string;
  domainName: string;
  domainPath: string;
}

function ownerQuery(db: Executor) {
  return db
    .selectFrom('accounts')
    .innerJoin('domains', 'domains.id', 'accounts.domain_id')
    .select([
      'accounts.id as accountId',
      'accounts.uuid as accountUuid',
      'accounts.name as accountName',
      'accounts.type as accountType',
      'domains.id as domainId',
      'domains.uuid as domainUuid',
      'domains.name as domainName',
      'domains.path as domainPath',
    ]);
}

// Prepared (src/store/prepared.ts): read twice per associateIpAddress, among others.
const ownerOfAccount = preparedQuery((db: Executor, accountId: number) =>
  ownerQuery(db).where('accounts.id', '=', accountId),
);

export async function ownerById(db: Executor, accountId: number): Promise<Owner> {
  const o = await ownerOfAccount.first(db, accountId);
  if (!o) throw new Error(`account ${accountId} does not exist`);
  return o;
}

export async function callerDomainPath(db: Executor, caller: NetCaller): Promise<string> {
  if ('domainPath' in caller && typeof (caller as { domainPath?: unknown }).domainPath === 'string') {
    return (caller as unknown as { domainPath: string }).domainPath;
  }
  const d = await db
    .selectFrom('domains')
    .select('path')
    .where('id', '=', caller.domainId)
    .executeTakeFirstOrThrow();
  return d.path;
}

/** May `caller` act on resources owned by `owner`? */
export async function checkAccess(
  db: Executor,
  caller: NetCaller,
  owner: { accountId: number; domainPath: string },
  what: string,
): Promise<void> {
  if (caller.role === 'Admin') return;
  if (caller.role === 'User') {
    if (owner.accountId !== caller.accountId) {
      throw permissionDenied(
        `Account '${caller.accountName}' does not have permission to operate on ${what}: it belongs to another account`,
      );
    }
    return;
  }
  const path = await callerDomainPath(db, caller);
  if (!owner.domainPath.startsWith(path)) {
    throw permissionDenied(
      `Account '${caller.accountName}' does not have permission to operate on ${what}: it is outside its domain`,
    );
  }
}

/**
 * The owner a new resource is created for (CloudStack's AccountManagerImpl.finalizeOwner): `account` in
 * `domainid` (admins: an account in reach; users: only their own), or the caller itself when no account is
 * named. `domainid` alone is allowed and leaves the caller the owner, once the caller's reach over that domain
 * is checked; `account` without `domainid` is refused.
 */
export async function resolveOwner(
  db: Executor,
  caller: NetCaller,
  p: { account?: string | undefined; domainid?: string | undefined },
): Promise<Owner> {
  if (p.account === undefined && p.domainid === undefined) return ownerById(db, caller.accountId);
  if (p.domainid === undefined) {
    throw new CloudStackError('InvalidParameterValue', 'account and domainid must be specified together');
  }
  const domain = await db
    .selectFrom('domains')
    .select(['id', 'path'])
    .where('uuid', '=', p.domainid)
    .executeTakeFirst();
  if (!domain) throw invalidParameter('domainid', p.domainid, 'no domain has this id');
  if (p.account === undefined) {
    await checkDomainAccess(db, caller, domain, p.domainid);
    return ownerById(db, caller.accountId);
  }
  const acct = await ownerQuery(db)
    .where('accounts.name', '=', p.account)
    .where('accounts.domain_id', '=', domain.id)
    .where('accounts.state', '!=', 'removed')
    .executeTakeFirst();
  if (!acct) throw invalidParameter('account', p.account, 'no such account in the given domain');
  await checkAccess(db, caller, acct, `account '${acct.accountName}'`);
  return acct;
}

/** A user acts in its own domain only; a domain admin in its subtree; a root admin anywhere. */
async function checkDomainAccess(
  db: Executor,
  caller: NetCaller,
  domain: { id: number; path: string },
  uuid: string,
): Promise<void> {
  if (caller.role === 'Admin') return;
  const allowed =
    caller.role === 'User'
      ? domain.id === caller.domainId
      : domain.path.startsWith(await callerDomainPath(db, caller));
  if (!allowed)
    throw permissionDenied(
      `Account '${caller.accountName}' does not have permission to act in domain ${uuid}`,
    );
}

/** Account/domain names for responses, for many owners at once. */
export async function ownerNames(
  db: Executor,
  accountIds: readonly (number | null)[],
): Promise<Map<number, Owner>> {
  const ids = [...new Set(accountIds.filter((a): a is number => a !== null))];
  const out = new Map<number, Owner>();
  if (ids.length === 0) return out;
  for (const o of await ownerQuery(db).where('accounts.id', 'in', ids).execute()) out.set(o.accountId, o);
  return out;
}

export async function domainById(db: Executor, id: number) {
  return db
    .selectFrom('domains')
    .select(['id', 'uuid', 'name', 'path'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
}

/** Domains by id, for many rows at once (responses of domain-wide resources, which have no account). */
export async function domainsByIds(db: Executor, domainIds: readonly (number | null)[]) {
  const ids = [...new Set(domainIds.filter((d): d is number => d !== null))];
  return new Map(
    ids.length
      ? (
          await db
            .selectFrom('domains')
            .select(['id', 'uuid', 'name', 'path'])
            .where('id', 'in', ids)
            .execute()
        ).map((d) => [d.id, d])
      : [],
  );
}

/** Response fields naming an owner (CloudStack's ControlledEntityResponse). */
export function ownerFields(o: Owner | undefined): Record<string, string | undefined> {
  if (!o) return {};
  return {
    account: o.accountName,
    domainid: o.domainUuid,
    domain: o.domainName,
    domainpath: displayPath(o.domainPath),
  };
}
