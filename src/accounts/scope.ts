/**
 * Caller scoping, in the query itself (never by filtering results afterwards): a user sees its own account's
 * rows, a domain admin its domain subtree, a root admin everything. Every concern's list and mutation queries
 * go through `scopeToCaller`, and list commands resolve CloudStack's account/domainid/isrecursive/listall
 * parameters with `resolveListScope` + `applyListScope`.
 */
import { sql } from 'kysely';
import type { Expression, SqlBool } from 'kysely';
import { invalidParameter, permissionDenied } from '../errors/catalogue.js';
import type { Executor } from '../store/db.js';
import type { Caller } from '../api/command.js';

export interface ScopeColumns {
  /** e.g. `networks.account_id` */
  accountColumn: string;
  /** e.g. `networks.domain_id` */
  domainColumn: string;
}

/** Something with Kysely's `where(expression)` (select, update and delete builders all qualify). */
export interface Whereable<QB> {
  where(expression: Expression<SqlBool>): QB;
}

/** True when `path` is `root` or below it. Domain paths: `/`, `/a/`, `/a/b/`. */
export function pathInSubtree(path: string, root: string): boolean {
  return path.startsWith(root);
}

/** `domainColumn` is a domain in the subtree rooted at `rootPath` (a subquery on domains.path). */
export function domainSubtreeCondition(domainColumn: string, rootPath: string): Expression<SqlBool> {
  if (rootPath === '/') return sql<SqlBool>`1 = 1`;
  // substr instead of LIKE: no escaping of `_`/`%` in domain names, and the same on all three databases.
  const len = [...rootPath].length;
  return sql<SqlBool>`${sql.ref(domainColumn)} in (select sd.id from domains sd where substr(sd.path, 1, ${sql.lit(len)}) = ${rootPath})`;
}

/** The condition a caller's rows satisfy, or undefined for a root admin (everything). */
export function callerCondition(caller: Caller, cols: ScopeColumns): Expression<SqlBool> | undefined {
  switch (caller.role) {
    case 'Admin':
      return undefined;
    case 'DomainAdmin':
      return domainSubtreeCondition(cols.domainColumn, caller.domainPath);
    case 'User':
      return sql<SqlBool>`${sql.ref(cols.accountColumn)} = ${caller.accountId}`;
  }
}

/**
 * Restricts any select/update/delete to what the caller may see or touch:
 * `scopeToCaller(db.selectFrom('networks').selectAll(), caller, { accountColumn: 'networks.account_id',
 * domainColumn: 'networks.domain_id' })`.
 */
export function scopeToCaller<QB extends Whereable<QB>>(qb: QB, caller: Caller, cols: ScopeColumns): QB {
  const c = callerCondition(caller, cols);
  return c ? qb.where(c) : qb;
}

/** What a list command shows, after CloudStack's account/domainid/isrecursive/listall rules. */
export type ListScope =
  | { kind: 'all' }
  | { kind: 'account'; accountId: number }
  | { kind: 'domain'; domainId: number; path: string; recursive: boolean };

export interface ListScopeParams {
  account?: string;
  domainid?: string;
  isrecursive?: boolean;
  listall?: boolean;
}

export interface DomainRef {
  id: number;
  uuid: string;
  path: string;
}

export async function findDomainByUuid(ex: Executor, uuid: string): Promise<DomainRef | undefined> {
  return ex.selectFrom('domains').select(['id', 'uuid', 'path']).where('uuid', '=', uuid).executeTakeFirst();
}

/** A domain the caller may act in (its own or, for admins, one in its subtree); 431 / 531 otherwise. */
export async function domainForCaller(
  ex: Executor,
  caller: Caller,
  domainUuid: string,
  param = 'domainid',
): Promise<DomainRef> {
  const d = await findDomainByUuid(ex, domainUuid);
  if (!d) throw invalidParameter(param, domainUuid, 'no domain with this id');
  if (caller.role === 'User' ? d.id !== caller.domainId : !pathInSubtree(d.path, caller.domainPath)) {
    throw permissionDenied(
      `The caller's account ${caller.accountName} has no access to domain ${domainUuid}`,
    );
  }
  return d;
}

/**
 * CloudStack's `buildACLSearchParameters`: without `listall` a list shows the caller's own account's
 * resources; admins widen it with `listall=true` (their whole subtree), `domainid` (+`isrecursive`) or
 * `account`+`domainid`. A user naming another account or domain gets 531.
 */
export async function resolveListScope(ex: Executor, caller: Caller, p: ListScopeParams): Promise<ListScope> {
  if (caller.role === 'User') {
    if (p.domainid !== undefined) await domainForCaller(ex, caller, p.domainid);
    if (p.account !== undefined && p.account !== caller.accountName) {
      throw permissionDenied(
        `The caller's account ${caller.accountName} has no access to account ${p.account}`,
      );
    }
    return { kind: 'account', accountId: caller.accountId };
  }
  const domain = p.domainid !== undefined ? await domainForCaller(ex, caller, p.domainid) : undefined;
  if (p.account !== undefined) {
    const domainId = domain?.id ?? caller.domainId;
    const acct = await ex
      .selectFrom('accounts')
      .select('id')
      .where('name', '=', p.account)
      .where('domain_id', '=', domainId)
      .executeTakeFirst();
    if (!acct) throw invalidParameter('account', p.account, 'no such account in the domain');
    return { kind: 'account', accountId: acct.id };
  }
  if (domain)
    return {
      kind: 'domain',
      domainId: domain.id,
      path: domain.path,
      recursive: p.isrecursive === true || p.listall === true,
    };
  if (p.listall === true) {
    return caller.role === 'Admin'
      ? { kind: 'all' }
      : { kind: 'domain', domainId: caller.domainId, path: caller.domainPath, recursive: true };
  }
  return { kind: 'account', accountId: caller.accountId };
}

export function listScopeCondition(scope: ListScope, cols: ScopeColumns): Expression<SqlBool> | undefined {
  switch (scope.kind) {
    case 'all':
      return undefined;
    case 'account':
      return sql<SqlBool>`${sql.ref(cols.accountColumn)} = ${scope.accountId}`;
    case 'domain':
      return scope.recursive
        ? domainSubtreeCondition(cols.domainColumn, scope.path)
        : sql<SqlBool>`${sql.ref(cols.domainColumn)} = ${scope.domainId}`;
  }
}

/** Applies both the list scope and, as a second guard, the caller's own scope. */
export function applyListScope<QB extends Whereable<QB>>(
  qb: QB,
  caller: Caller,
  scope: ListScope,
  cols: ScopeColumns,
): QB {
  const c = listScopeCondition(scope, cols);
  return scopeToCaller(c ? qb.where(c) : qb, caller, cols);
}
