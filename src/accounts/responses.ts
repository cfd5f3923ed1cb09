/** Row → CloudStack response objects (domain, account, user). */
import type { ResponseObject } from '../api/command.js';
import { csDate } from '../api/envelope.js';
import type { Executor } from '../store/db.js';
import { roleForAccountType } from './roles.js';
import { displayPath } from './repository.js';

export function domainQuery(ex: Executor) {
  return ex
    .selectFrom('domains as d')
    .leftJoin('domains as p', 'p.id', 'd.parent_id')
    .select([
      'd.id',
      'd.uuid',
      'd.name',
      'd.path',
      'd.level',
      'd.network_domain',
      'd.state',
      'd.created',
      'p.uuid as parent_uuid',
      'p.name as parent_name',
    ]);
}
export type DomainRow = Awaited<ReturnType<ReturnType<typeof domainQuery>['executeTakeFirstOrThrow']>>;

export function domainResponse(r: DomainRow, hasChild: boolean, extra: ResponseObject = {}): ResponseObject {
  return {
    id: r.uuid,
    name: r.name,
    level: Number(r.level),
    parentdomainid: r.parent_uuid ?? undefined,
    parentdomainname: r.parent_name ?? undefined,
    haschild: hasChild,
    path: displayPath(r.path),
    networkdomain: r.network_domain ?? undefined,
    state: r.state,
    created: csDate(Number(r.created)),
    ...extra,
  };
}

export function accountQuery(ex: Executor) {
  return ex
    .selectFrom('accounts as a')
    .innerJoin('domains as d', 'd.id', 'a.domain_id')
    .select([
      'a.id',
      'a.uuid',
      'a.name',
      'a.type',
      'a.state',
      'a.network_domain',
      'a.is_default',
      'a.created',
      'a.domain_id',
      'd.uuid as domain_uuid',
      'd.name as domain_name',
      'd.path as domain_path',
    ]);
}
export type AccountRow = Awaited<ReturnType<ReturnType<typeof accountQuery>['executeTakeFirstOrThrow']>>;

export function userQuery(ex: Executor) {
  return ex
    .selectFrom('users as u')
    .innerJoin('accounts as a', 'a.id', 'u.account_id')
    .innerJoin('domains as d', 'd.id', 'a.domain_id')
    .select([
      'u.id',
      'u.uuid',
      'u.username',
      'u.firstname',
      'u.lastname',
      'u.email',
      'u.timezone',
      'u.api_key',
      'u.state',
      'u.is_default',
      'u.created',
      'u.account_id',
      'a.uuid as account_uuid',
      'a.name as account_name',
      'a.type as account_type',
      'a.domain_id',
      'd.uuid as domain_uuid',
      'd.name as domain_name',
      'd.path as domain_path',
    ]);
}
export type UserRow = Awaited<ReturnType<ReturnType<typeof userQuery>['executeTakeFirstOrThrow']>>;

/** Never carries the secret key or the password: only registerUserKeys/getUserKeys return the secret. */
export function userResponse(r: UserRow): ResponseObject {
  const role = roleForAccountType(Number(r.account_type));
  return {
    id: r.uuid,
    username: r.username,
    firstname: r.firstname,
    lastname: r.lastname,
    email: r.email ?? undefined,
    created: csDate(Number(r.created)),
    state: r.state,
    account: r.account_name,
    accountid: r.account_uuid,
    accounttype: Number(r.account_type),
    roleid: role.uuid,
    rolename: role.name,
    roletype: role.type,
    domainid: r.domain_uuid,
    domain: r.domain_name,
    timezone: r.timezone ?? undefined,
    apikey: r.api_key ?? undefined,
    isdefault: Number(r.is_default) === 1,
    iscallerchilddomain: false,
    usersource: 'native',
  };
}

export function accountResponse(r: AccountRow, users: UserRow[], extra: ResponseObject = {}): ResponseObject {
  const role = roleForAccountType(Number(r.type));
  return {
    id: r.uuid,
    name: r.name,
    accounttype: Number(r.type),
    roleid: role.uuid,
    rolename: role.name,
    roletype: role.type,
    domainid: r.domain_uuid,
    domain: r.domain_name,
    domainpath: displayPath(r.domain_path),
    state: r.state,
    networkdomain: r.network_domain ?? undefined,
    isdefault: Number(r.is_default) === 1,
    created: csDate(Number(r.created)),
    user: users.map(userResponse),
    ...extra,
  };
}
