/**
 * createDomain, listDomains, deleteDomain, createAccount, listAccounts, deleteAccount, createUser, listUsers; the
 * user commands (user-commands.ts) and the account state commands (account-commands.ts) join them in `commands`.
 */
import { deletedBeforeRerun } from '../api/jobs/rerun.js';
import { sql } from 'kysely';
import type { Expression, SqlBool } from 'kysely';
import {
  adminRoles,
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand, Caller } from '../api/command.js';
import { keywordMatch, pageOf, pageOfQuery } from '../api/list.js';
import { CloudStackError, invalidParameter, permissionDenied } from '../errors/catalogue.js';
import type { Executor, Tx } from '../store/db.js';
import { recordEvent } from '../events/record.js';
import { hashPassword } from './credentials.js';
import { deleteAccountRows, displayPath, insertAccount, insertDomain, insertUser } from './repository.js';
import { accountQuery, domainQuery, userQuery, userResponse } from './responses.js';
import { roleByUuid } from './roles.js';
import { domainForCaller, domainSubtreeCondition, pathInSubtree, scopeToCaller } from './scope.js';
import {
  accountForAction,
  accountResponseByUuid,
  accountResponses,
  checkName,
  checkTimezone,
  domainResponseByUuid,
  domainResponses,
} from './access.js';
import { wantsResourceFields } from './resource-limits.js';
import { userCommands } from './user-commands.js';
import { accountStateCommands } from './account-commands.js';

const ACCOUNT_COLS = { accountColumn: 'a.id', domainColumn: 'a.domain_id' };
const USER_COLS = { accountColumn: 'u.account_id', domainColumn: 'a.domain_id' };

// ------------------------------------------------------------------------------------------------ domains

const createDomain = defineCommand({
  name: 'createDomain',
  roles: adminRoles,
  params: refParams('createDomain', ['name', 'parentdomainid', 'networkdomain']),
  async handler(p, ctx) {
    const name = checkName('name', p.name);
    const parent = await domainForCaller(
      ctx.store.db,
      ctx.caller,
      p.parentdomainid ?? ctx.caller.domainUuid,
      'parentdomainid',
    );
    const uuid = await ctx.transaction(async (tx) => {
      const level = await tx
        .selectFrom('domains')
        .select('level')
        .where('id', '=', parent.id)
        .executeTakeFirstOrThrow();
      const d = await insertDomain(tx, {
        name,
        parent: { id: parent.id, path: parent.path, level: Number(level.level) },
        networkDomain: p.networkdomain,
      });
      await recordEvent(tx, {
        type: 'DOMAIN.CREATE',
        actor: ctx.caller,
        description: `Domain ${displayPath(d.path)} created`,
        resourceType: 'Domain',
        resourceId: d.uuid,
        resourceName: name,
      });
      return d.uuid;
    });
    return objectResult('domain', await domainResponseByUuid(ctx.store.db, uuid));
  },
});

const listDomains = defineCommand({
  name: 'listDomains',
  roles: allRoles,
  params: refParams('listDomains', [
    'id',
    'name',
    'level',
    'keyword',
    'listall',
    'details',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    const ex = ctx.store.db;
    const withLimits = wantsResourceFields(p.details);
    const page = await pageOf(ex, p);
    const c = ctx.caller;
    let q = domainQuery(ex).where('d.state', '=', 'Active');
    // CloudStack's searchForDomains: an `id` is checked against the caller's reach and lists that domain only;
    // otherwise a root admin sees every domain, anybody else its own domain (its subtree with listall).
    if (p.id !== undefined) {
      const d = await domainForCaller(ex, c, p.id, 'id');
      q = q.where('d.id', '=', d.id);
    } else if (c.role !== 'Admin') {
      q = p.listall
        ? q.where(domainSubtreeCondition('d.id', c.domainPath))
        : q.where('d.id', '=', c.domainId);
    }
    if (p.name !== undefined) q = q.where('d.name', '=', p.name);
    if (p.level !== undefined) q = q.where('d.level', '=', p.level);
    if (p.keyword !== undefined) q = q.where(keywordMatch(['d.name'], p.keyword));
    const { rows, total } = await pageOfQuery(q, page, (x) => x.orderBy('d.id'));
    return listResult('domain', await domainResponses(ex, rows, withLimits), total);
  },
});

const deleteDomain = defineCommand({
  name: 'deleteDomain',
  roles: adminRoles,
  params: refParams('deleteDomain', ['id', 'cleanup']),
  jobInstance: (p) => ({ type: 'Domain', id: p.id }),
  async handler(p, ctx) {
    if (await deletedBeforeRerun(ctx, ['DOMAIN.DELETE'], p.id)) return successResult();
    await ctx.transaction(async (tx) => {
      const d = await tx.selectFrom('domains').selectAll().where('uuid', '=', p.id).executeTakeFirst();
      if (!d || !pathInSubtree(d.path, ctx.caller.domainPath)) {
        throw invalidParameter('id', p.id, 'no domain with this id that the caller can access');
      }
      if (d.path === '/') throw invalidParameter('id', p.id, 'the ROOT domain cannot be deleted');
      if (Number(d.id) === ctx.caller.domainId)
        throw permissionDenied('A domain admin cannot delete its own domain');
      const len = [...d.path].length;
      const inSubtree = sql<SqlBool>`substr(path, 1, ${sql.lit(len)}) = ${d.path}`;
      const subIds = (await tx.selectFrom('domains').select('id').where(inSubtree).execute()).map((r) =>
        Number(r.id),
      );
      const accounts = await tx
        .selectFrom('accounts')
        .select(['id', 'uuid', 'domain_id'])
        .where('domain_id', 'in', subIds)
        .execute();
      if ((accounts.length > 0 || subIds.length > 1) && p.cleanup !== true) {
        throw new CloudStackError(
          'InvalidParameterValue',
          `Cannot delete domain ${displayPath(d.path)}: it still has ${accounts.length} account(s) and ${subIds.length - 1} sub-domain(s); delete them first or pass cleanup=true`,
        );
      }
      for (const a of accounts) {
        await deleteAccountRows(tx, { id: Number(a.id), uuid: a.uuid, domainId: Number(a.domain_id) });
      }
      await tx.deleteFrom('domains').where('id', 'in', subIds).execute();
      await recordEvent(tx, {
        type: 'DOMAIN.DELETE',
        actor: ctx.caller,
        description: `Domain ${displayPath(d.path)} deleted`,
        resourceType: 'Domain',
        resourceId: d.uuid,
        resourceName: d.name,
      });
    });
    return successResult();
  },
});

// ------------------------------------------------------------------------------------------------ accounts

const createAccount = defineCommand({
  name: 'createAccount',
  roles: adminRoles,
  params: refParams('createAccount', [
    'username',
    'password',
    'email',
    'firstname',
    'lastname',
    'account',
    'accounttype',
    'roleid',
    'domainid',
    'networkdomain',
    'timezone',
  ]),
  async handler(p, ctx) {
    const c = ctx.caller;
    let type: 0 | 1 | 2 = 0;
    if (p.roleid !== undefined) {
      const role = roleByUuid(p.roleid);
      if (!role) throw invalidParameter('roleid', p.roleid, 'no such role (see the roleid of listAccounts)');
      type = role.accountType;
    } else if (p.accounttype !== undefined) {
      if (![0, 1, 2].includes(p.accounttype)) {
        throw invalidParameter(
          'accounttype',
          p.accounttype,
          'must be 0 (user), 1 (root admin) or 2 (domain admin)',
        );
      }
      type = p.accounttype as 0 | 1 | 2;
    }
    if (type === 1 && c.role !== 'Admin')
      throw permissionDenied('Only a root admin can create root admin accounts');
    const domain = await domainForCaller(ctx.store.db, c, p.domainid ?? c.domainUuid);
    if (type === 1 && domain.path !== '/') {
      throw invalidParameter('accounttype', type, 'root admin accounts belong to the ROOT domain');
    }
    const username = checkName('username', p.username);
    const accountName = checkName('account', p.account ?? username);
    const timezone = checkTimezone(p.timezone);
    const hash = await hashPassword(p.password);
    const uuid = await ctx.transaction(async (tx) => {
      const a = await insertAccount(tx, {
        name: accountName,
        domainId: domain.id,
        type,
        networkDomain: p.networkdomain,
      });
      await insertUser(
        tx,
        {
          accountId: a.id,
          domainId: domain.id,
          username,
          password: p.password,
          firstname: p.firstname,
          lastname: p.lastname,
          email: p.email,
          timezone,
          isDefault: false,
        },
        hash,
      );
      await recordEvent(tx, {
        type: 'ACCOUNT.CREATE',
        actor: c,
        description: `Account ${accountName} created in domain ${displayPath(domain.path)}`,
        resourceType: 'Account',
        resourceId: a.uuid,
        resourceName: accountName,
      });
      return a.uuid;
    });
    return objectResult('account', await accountResponseByUuid(ctx.store.db, uuid));
  },
});

const listAccounts = defineCommand({
  name: 'listAccounts',
  roles: allRoles,
  // A read: started from the remembered caller, its check confirmed before the answer by a read shared with the
  // other requests' checks (api/fingerprint-batch.ts) instead of a caller read of its own first.
  foldsCallerCheck: true,
  params: refParams('listAccounts', [
    'id',
    'name',
    'domainid',
    'isrecursive',
    'listall',
    'accounttype',
    'state',
    'keyword',
    'details',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    const ex = ctx.store.db;
    const c = ctx.caller;
    const withLimits = wantsResourceFields(p.details);
    const page = await pageOf(ex, p);
    let q = scopeToCaller(accountQuery(ex), c, ACCOUNT_COLS);
    if (c.role !== 'User') q = q.where(await listDomainCondition(ex, c, p));
    if (p.id !== undefined) q = q.where('a.uuid', '=', p.id);
    if (p.name !== undefined) q = q.where('a.name', '=', p.name);
    if (p.accounttype !== undefined) q = q.where('a.type', '=', knownAccountType(p.accounttype));
    if (p.state !== undefined) q = q.where('a.state', '=', p.state.toLowerCase());
    if (p.keyword !== undefined) q = q.where(keywordMatch(['a.name'], p.keyword));
    const { rows, total } = await pageOfQuery(q, page, (x) => x.orderBy('a.id'));
    return listResult('account', await accountResponses(ex, rows, withLimits), total);
  },
});

const deleteAccount = defineCommand({
  name: 'deleteAccount',
  roles: adminRoles,
  params: refParams('deleteAccount', ['id']),
  jobInstance: (p) => ({ type: 'Account', id: p.id }),
  async handler(p, ctx) {
    if (await deletedBeforeRerun(ctx, ['ACCOUNT.DELETE'], p.id)) return successResult();
    await ctx.transaction(async (tx: Tx) => {
      const row = await accountForAction(tx, ctx.caller, { id: p.id });
      if (Number(row.id) === ctx.caller.accountId)
        throw invalidParameter('id', p.id, 'an account cannot delete itself');
      if (Number(row.is_default) === 1)
        throw invalidParameter('id', p.id, `the default account ${row.name} cannot be deleted`);
      await deleteAccountRows(tx, { id: Number(row.id), uuid: row.uuid, domainId: Number(row.domain_id) });
      await recordEvent(tx, {
        type: 'ACCOUNT.DELETE',
        actor: ctx.caller,
        description: `Account ${row.name} deleted from domain ${displayPath(row.domain_path)}`,
        resourceType: 'Account',
        resourceId: row.uuid,
        resourceName: row.name,
      });
    });
    return successResult();
  },
});

// ------------------------------------------------------------------------------------------------ users

const createUser = defineCommand({
  name: 'createUser',
  roles: adminRoles,
  params: refParams('createUser', [
    'account',
    'username',
    'password',
    'email',
    'firstname',
    'lastname',
    'domainid',
    'timezone',
  ]),
  async handler(p, ctx) {
    const c = ctx.caller;
    const domain = await domainForCaller(ctx.store.db, c, p.domainid ?? c.domainUuid);
    const acct = await accountQuery(ctx.store.db)
      .where('a.name', '=', p.account)
      .where('a.domain_id', '=', domain.id)
      .executeTakeFirst();
    if (!acct)
      throw invalidParameter('account', p.account, `no such account in domain ${displayPath(domain.path)}`);
    const username = checkName('username', p.username);
    const timezone = checkTimezone(p.timezone);
    const hash = await hashPassword(p.password);
    const uuid = await ctx.transaction(async (tx) => {
      const u = await insertUser(
        tx,
        {
          accountId: Number(acct.id),
          domainId: domain.id,
          username,
          password: p.password,
          firstname: p.firstname,
          lastname: p.lastname,
          email: p.email,
          timezone,
        },
        hash,
      );
      await recordEvent(tx, {
        type: 'USER.CREATE',
        actor: c,
        owner: {
          accountId: Number(acct.id),
          accountName: acct.name,
          domainId: domain.id,
          domainPath: domain.path,
        },
        description: `User ${username} created in account ${acct.name}`,
        resourceType: 'User',
        resourceId: u.uuid,
        resourceName: username,
      });
      return u.uuid;
    });
    const row = await userQuery(ctx.store.db).where('u.uuid', '=', uuid).executeTakeFirstOrThrow();
    return objectResult('user', userResponse(row));
  },
});

const listUsers = defineCommand({
  name: 'listUsers',
  roles: allRoles,
  params: refParams('listUsers', [
    'id',
    'username',
    'account',
    'domainid',
    'isrecursive',
    'listall',
    'accounttype',
    'state',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    const ex = ctx.store.db;
    const c = ctx.caller;
    const page = await pageOf(ex, p);
    let q = scopeToCaller(userQuery(ex), c, USER_COLS);
    if (c.role !== 'User') q = q.where(await listDomainCondition(ex, c, p));
    else if (p.account !== undefined && p.account !== c.accountName) {
      throw permissionDenied(`The caller's account ${c.accountName} has no access to account ${p.account}`);
    }
    if (p.id !== undefined) q = q.where('u.uuid', '=', p.id);
    if (p.username !== undefined) q = q.where('u.username', '=', p.username);
    if (p.account !== undefined) q = q.where('a.name', '=', p.account);
    if (p.accounttype !== undefined) q = q.where('a.type', '=', knownAccountType(p.accounttype));
    if (p.state !== undefined) q = q.where('u.state', '=', p.state.toLowerCase());
    if (p.keyword !== undefined)
      q = q.where(keywordMatch(['u.username', 'u.firstname', 'u.lastname', 'u.email'], p.keyword));
    const { rows, total } = await pageOfQuery(q, page, (x) => x.orderBy('u.id'));
    return listResult('user', rows.map(userResponse), total);
  },
});

export const commands: AnyCommand[] = [
  createDomain,
  listDomains,
  deleteDomain,
  createAccount,
  listAccounts,
  deleteAccount,
  createUser,
  listUsers,
  ...userCommands,
  ...accountStateCommands,
];

/**
 * CloudStack's searchForAccounts/searchForUsers domain rule for admins: the caller's domain (or `domainid`), the
 * whole subtree with isrecursive/listall; asking for an `id` searches the caller's subtree.
 */
async function listDomainCondition(
  ex: Executor,
  c: Caller,
  p: { domainid?: string; isrecursive?: boolean; listall?: boolean; id?: string },
): Promise<Expression<SqlBool>> {
  const domain = p.domainid !== undefined ? await domainForCaller(ex, c, p.domainid) : undefined;
  const root = domain ?? { id: c.domainId, path: c.domainPath };
  if (p.isrecursive || p.listall || (p.id !== undefined && !domain))
    return domainSubtreeCondition('a.domain_id', root.path);
  return sql<SqlBool>`${sql.ref('a.domain_id')} = ${root.id}`;
}

/**
 * CloudStack's account types are 0-5; any other number lists nothing. It is mapped to -1 here because the column
 * is a small integer: PostgreSQL refuses to compare it with a value out of that type's range.
 */
function knownAccountType(t: number): number {
  return Number.isInteger(t) && t >= 0 && t <= 5 ? t : -1;
}
