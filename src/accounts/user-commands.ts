/**
 * The commands on one user: registerUserKeys, getUserKeys, updateUser, deleteUser, moveUser, disableUser,
 * enableUser, lockUser. Who may act on a user is who may act on its account (access.ts).
 */
import {
  adminRoles,
  allRoles,
  defineCommand,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand, Caller, CommandContext } from '../api/command.js';
import { CloudStackError, invalidParameter, permissionDenied } from '../errors/catalogue.js';
import { recordEvent } from '../events/record.js';
import type { EventType } from '../events/event-types.js';
import { isUniqueViolation } from '../store/db.js';
import type { Executor, Tx } from '../store/db.js';
import { checkAccountAccess, checkName, checkTimezone, userForAction } from './access.js';
import { generateApiKey, hashPassword, verifyPassword } from './credentials.js';
import { loginSucceeded } from './login-throttle.js';
import { openSecretKey, sealSecretKey } from './repository.js';
import { accountQuery, userQuery, userResponse } from './responses.js';
import type { UserRow } from './responses.js';

const ownerOf = (u: UserRow) => ({
  accountId: Number(u.account_id),
  accountName: u.account_name,
  domainId: Number(u.domain_id),
  domainPath: u.domain_path,
});

async function userEvent(tx: Tx, caller: Caller, u: UserRow, type: EventType, description: string) {
  await recordEvent(tx, {
    type,
    actor: caller,
    owner: ownerOf(u),
    description,
    resourceType: 'User',
    resourceId: u.uuid,
    resourceName: u.username,
  });
}

async function userResult(ex: Executor, uuid: string) {
  const row = await userQuery(ex).where('u.uuid', '=', uuid).executeTakeFirstOrThrow();
  return objectResult('user', userResponse(row));
}

/**
 * stacknet's default root admin stands where CloudStack's system user does: the integration port acts as it,
 * and losing it locks everybody out. It is never deleted, moved, disabled or locked.
 */
function refuseDefaultUser(u: UserRow, what: string, kind: 'invalid' | 'denied' = 'invalid'): void {
  if (Number(u.is_default) !== 1) return;
  const text = `User ${u.username} is the default user of the system; it cannot be ${what}`;
  throw kind === 'invalid' ? new CloudStackError('InvalidParameterValue', text) : permissionDenied(text);
}

// ------------------------------------------------------------------------------------------------ API keys

const registerUserKeys = defineCommand({
  name: 'registerUserKeys',
  roles: allRoles,
  params: refParams('registerUserKeys', ['id']),
  async handler(p, ctx) {
    const apikey = generateApiKey();
    const secretkey = generateApiKey();
    await ctx.transaction(async (tx) => {
      const u = await userForAction(tx, ctx.caller, p.id);
      await tx
        .updateTable('users')
        .set({ api_key: apikey, secret_key: sealSecretKey(secretkey) })
        .where('id', '=', Number(u.id))
        .execute();
      await userEvent(tx, ctx.caller, u, 'REGISTER.USER.KEY', `API keys registered for user ${u.username}`);
    });
    return objectResult('userkeys', { apikey, secretkey });
  },
});

/** CloudStack answers a `userkeys` object even when the user has no keys yet (then without fields). */
const getUserKeys = defineCommand({
  name: 'getUserKeys',
  roles: allRoles,
  params: refParams('getUserKeys', ['id']),
  async handler(p, ctx) {
    const u = await userForAction(ctx.store.db, ctx.caller, p.id);
    const keys = await ctx.store.db
      .selectFrom('users')
      .select(['api_key', 'secret_key'])
      .where('id', '=', Number(u.id))
      .executeTakeFirstOrThrow();
    return objectResult('userkeys', {
      apikey: keys.api_key ?? undefined,
      secretkey: keys.secret_key === null ? undefined : openSecretKey(keys.secret_key),
    });
  },
});

// ------------------------------------------------------------------------------------------------ updateUser

function nonBlank(param: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v.trim() === '') throw invalidParameter(param, v, 'cannot be empty');
  return v;
}

const updateUser = defineCommand({
  name: 'updateUser',
  roles: allRoles,
  params: refParams('updateUser', [
    'id',
    'username',
    'firstname',
    'lastname',
    'email',
    'timezone',
    'password',
    'currentpassword',
    'userapikey',
    'usersecretkey',
  ]),
  async handler(p, ctx) {
    const c = ctx.caller;
    const ex = ctx.store.db;
    const target = await userForAction(ex, c, p.id);
    const apiKey = p.userapikey?.trim() ? p.userapikey : undefined;
    const secretKey = p.usersecretkey?.trim() ? p.usersecretkey : undefined;
    if ((apiKey === undefined) !== (secretKey === undefined)) {
      throw new CloudStackError(
        'InvalidParameterValue',
        'userapikey and usersecretkey must be given together (a key pair)',
      );
    }
    const firstname = nonBlank('firstname', p.firstname);
    const lastname = nonBlank('lastname', p.lastname);
    const username = p.username === undefined ? undefined : checkName('username', p.username);
    let passwordHash: string | undefined;
    if (p.password !== undefined) {
      if (p.password.trim() === '') throw invalidParameter('password', '', 'cannot be empty or blank');
      // Admins set passwords outright; a user proves the current one first (CloudStack does the same).
      if (c.role === 'User') {
        if (!p.currentpassword)
          throw new CloudStackError(
            'InvalidParameterValue',
            'currentpassword must be given to set a new password',
          );
        const stored = await ex
          .selectFrom('users')
          .select('password_hash')
          .where('id', '=', Number(target.id))
          .executeTakeFirstOrThrow();
        if (!(await verifyPassword(p.currentpassword, stored.password_hash)))
          throw invalidParameter('currentpassword', '********', 'the current password is incorrect');
      }
      passwordHash = await hashPassword(p.password);
    }
    await ctx.transaction(async (tx) => {
      const u = await userForAction(tx, c, p.id);
      if (apiKey !== undefined) {
        const other = await tx
          .selectFrom('users')
          .select('id')
          .where('api_key', '=', apiKey)
          .where('id', '!=', Number(u.id))
          .executeTakeFirst();
        if (other) throw invalidParameter('userapikey', apiKey, 'another user already has this API key');
      }
      const set: Record<string, string | null> = {};
      if (firstname !== undefined) set.firstname = firstname;
      if (lastname !== undefined) set.lastname = lastname;
      if (username !== undefined) set.username = username;
      if (p.email?.trim()) set.email = p.email;
      const timezone = checkTimezone(p.timezone);
      if (timezone) set.timezone = timezone;
      if (passwordHash !== undefined) set.password_hash = passwordHash;
      if (apiKey !== undefined && secretKey !== undefined) {
        set.api_key = apiKey;
        set.secret_key = sealSecretKey(secretKey);
      }
      if (Object.keys(set).length > 0) {
        try {
          await tx.updateTable('users').set(set).where('id', '=', Number(u.id)).execute();
        } catch (e) {
          if (isUniqueViolation(e))
            throw invalidParameter(
              'username',
              username,
              'a user with this name already exists in the domain',
            );
          throw e;
        }
      }
      await userEvent(tx, c, u, 'USER.UPDATE', `User ${u.username} updated`);
    });
    return userResult(ex, p.id);
  },
});

// ------------------------------------------------------------------------------------------------ delete, move

const deleteUser = defineCommand({
  name: 'deleteUser',
  roles: adminRoles,
  params: refParams('deleteUser', ['id']),
  async handler(p, ctx) {
    await ctx.transaction(async (tx) => {
      const u = await userForAction(tx, ctx.caller, p.id);
      refuseDefaultUser(u, 'deleted');
      if (Number(u.id) === ctx.caller.userId)
        throw invalidParameter('id', p.id, 'a user cannot delete itself');
      await tx.deleteFrom('sessions').where('user_id', '=', Number(u.id)).execute();
      await tx.deleteFrom('users').where('id', '=', Number(u.id)).execute();
      await userEvent(
        tx,
        ctx.caller,
        u,
        'USER.DELETE',
        `User ${u.username} deleted from account ${u.account_name}`,
      );
    });
    return successResult();
  },
});

/** Moves a user to another account of the same domain; it keeps its id, password and keys. */
const moveUser = defineCommand({
  name: 'moveUser',
  roles: adminRoles,
  params: refParams('moveUser', ['id', 'account', 'accountid']),
  async handler(p, ctx) {
    if (p.account === undefined && p.accountid === undefined) {
      throw new CloudStackError('InvalidParameterValue', 'Either account or accountid must be given');
    }
    await ctx.transaction(async (tx) => {
      const u = await userForAction(tx, ctx.caller, p.id);
      refuseDefaultUser(u, 'moved');
      let q = accountQuery(tx);
      q =
        p.account !== undefined
          ? q.where('a.name', '=', p.account).where('a.domain_id', '=', Number(u.domain_id))
          : q.where('a.uuid', '=', p.accountid!);
      const to = await q.executeTakeFirst();
      if (!to) {
        throw p.account !== undefined
          ? invalidParameter('account', p.account, `no account with this name in domain ${u.domain_name}`)
          : invalidParameter('accountid', p.accountid, 'no account has this id');
      }
      if (Number(to.domain_id) !== Number(u.domain_id)) {
        throw invalidParameter(
          p.account !== undefined ? 'account' : 'accountid',
          p.account ?? p.accountid,
          'a user can be moved only to an account of its own domain',
        );
      }
      checkAccountAccess(ctx.caller, {
        id: Number(to.id),
        name: to.name,
        type: Number(to.type),
        domainPath: to.domain_path,
      });
      if (Number(to.id) === Number(u.account_id)) return;
      await tx
        .updateTable('users')
        .set({ account_id: Number(to.id) })
        .where('id', '=', Number(u.id))
        .execute();
      await userEvent(
        tx,
        ctx.caller,
        u,
        'USER.MOVE',
        `User ${u.username} moved from account ${u.account_name} to ${to.name}`,
      );
    });
    return successResult();
  },
});

// ------------------------------------------------------------------------------------------------ state

async function setUserState(
  ctx: CommandContext,
  id: string,
  change: (tx: Tx, u: UserRow) => Promise<{ type: EventType; description: string } | undefined>,
) {
  await ctx.transaction(async (tx) => {
    const u = await userForAction(tx, ctx.caller, id);
    const ev = await change(tx, u);
    if (ev) await userEvent(tx, ctx.caller, u, ev.type, ev.description);
  });
  return userResult(ctx.store.db, id);
}

const disableUser = defineCommand({
  name: 'disableUser',
  roles: adminRoles,
  params: refParams('disableUser', ['id']),
  jobInstance: (p) => ({ type: 'User', id: p.id }),
  handler: (p, ctx) =>
    setUserState(ctx, p.id, async (tx, u) => {
      refuseDefaultUser(u, 'disabled');
      await tx.updateTable('users').set({ state: 'disabled' }).where('id', '=', Number(u.id)).execute();
      return { type: 'USER.DISABLE', description: `User ${u.username} disabled` };
    }),
});

/** Enabling a user enables its account too, and clears its failed-login count (as CloudStack does). */
const enableUser = defineCommand({
  name: 'enableUser',
  roles: adminRoles,
  params: refParams('enableUser', ['id']),
  async handler(p, ctx) {
    const r = await setUserState(ctx, p.id, async (tx, u) => {
      await tx.updateTable('users').set({ state: 'enabled' }).where('id', '=', Number(u.id)).execute();
      await tx
        .updateTable('accounts')
        .set({ state: 'enabled' })
        .where('id', '=', Number(u.account_id))
        .execute();
      return { type: 'USER.ENABLE', description: `User ${u.username} enabled` };
    });
    const u = await userQuery(ctx.store.db).where('u.uuid', '=', p.id).executeTakeFirstOrThrow();
    await loginSucceeded(ctx.store, [{ kind: 'user', name: `user #${Number(u.id)}`, limit: 1 }]);
    return r;
  },
});

/**
 * Locking an enabled user; when it was the account's last enabled user the account is locked too. A locked user
 * stays locked; a disabled one cannot be locked (CloudStack's lockUser).
 */
const lockUser = defineCommand({
  name: 'lockUser',
  roles: adminRoles,
  params: refParams('lockUser', ['id']),
  handler: (p, ctx) =>
    setUserState(ctx, p.id, async (tx, u) => {
      refuseDefaultUser(u, 'locked', 'denied');
      if (u.state === 'locked') return undefined;
      if (u.state !== 'enabled')
        throw new CloudStackError(
          'InternalError',
          `Unable to lock user ${u.username}: it is ${u.state}, not enabled`,
        );
      await tx.updateTable('users').set({ state: 'locked' }).where('id', '=', Number(u.id)).execute();
      const stillEnabled = await tx
        .selectFrom('users')
        .select('id')
        .where('account_id', '=', Number(u.account_id))
        .where('state', '=', 'enabled')
        .executeTakeFirst();
      if (!stillEnabled)
        await tx
          .updateTable('accounts')
          .set({ state: 'locked' })
          .where('id', '=', Number(u.account_id))
          .execute();
      return { type: 'USER.LOCK', description: `User ${u.username} locked` };
    }),
});

export const userCommands: AnyCommand[] = [
  registerUserKeys,
  getUserKeys,
  updateUser,
  deleteUser,
  moveUser,
  disableUser,
  enableUser,
  lockUser,
];
