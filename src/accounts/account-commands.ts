/**
 * disableAccount (lock=true locks), enableAccount, lockAccount, updateAccount. A disabled or locked account keeps
 * everything it owns (networks, addresses, VMs); its users are refused at login and on every API-key call
 * (repository.ts toCallerRecord: a caller needs its user and its account enabled).
 */
import { adminRoles, defineCommand, objectResult, refParams } from '../api/command.js';
import type { AnyCommand, CommandContext } from '../api/command.js';
import { invalidParameter, permissionDenied } from '../errors/catalogue.js';
import { recordEvent } from '../events/record.js';
import type { EventType } from '../events/event-types.js';
import { isUniqueViolation } from '../store/db.js';
import type { Tx } from '../store/db.js';
import { accountForAction, accountResponseByUuid, checkName } from './access.js';
import { displayPath } from './repository.js';
import type { AccountRow } from './responses.js';
import { roleByUuid } from './roles.js';

async function accountEvent(
  tx: Tx,
  ctx: CommandContext,
  a: AccountRow,
  type: EventType,
  description: string,
): Promise<void> {
  await recordEvent(tx, {
    type,
    actor: ctx.caller,
    owner: {
      accountId: Number(a.id),
      accountName: a.name,
      domainId: Number(a.domain_id),
      domainPath: a.domain_path,
    },
    description,
    resourceType: 'Account',
    resourceId: a.uuid,
    resourceName: a.name,
  });
}

/**
 * stacknet's default root admin account stands where CloudStack's system account does (the integration port acts
 * as its user): it is never disabled or locked.
 */
function refuseDefaultAccount(a: AccountRow, what: string): void {
  if (Number(a.is_default) === 1)
    throw permissionDenied(`Account ${a.name} is the default account of the system; it cannot be ${what}`);
}

type AccountRef = { id?: string; account?: string; domainid?: string };

async function setAccountState(
  ctx: CommandContext,
  ref: AccountRef,
  state: 'enabled' | 'disabled' | 'locked',
  type: EventType,
) {
  const uuid = await ctx.transaction(async (tx) => {
    const a = await accountForAction(tx, ctx.caller, ref);
    if (state !== 'enabled') refuseDefaultAccount(a, state);
    await tx.updateTable('accounts').set({ state }).where('id', '=', Number(a.id)).execute();
    await accountEvent(
      tx,
      ctx,
      a,
      type,
      `Account ${a.name} in domain ${displayPath(a.domain_path)} ${state === 'enabled' ? 'enabled' : state}`,
    );
    return a.uuid;
  });
  return objectResult('account', await accountResponseByUuid(ctx.store.db, uuid));
}

const disableAccount = defineCommand({
  name: 'disableAccount',
  roles: adminRoles,
  params: refParams('disableAccount', ['id', 'account', 'domainid', 'lock']),
  jobInstance: (p) => (p.id === undefined ? undefined : { type: 'Account', id: p.id }),
  handler: (p, ctx) => setAccountState(ctx, p, p.lock ? 'locked' : 'disabled', 'ACCOUNT.DISABLE'),
});

const enableAccount = defineCommand({
  name: 'enableAccount',
  roles: adminRoles,
  params: refParams('enableAccount', ['id', 'account', 'domainid']),
  handler: (p, ctx) => setAccountState(ctx, p, 'enabled', 'ACCOUNT.ENABLE'),
});

/** CloudStack records a lock as ACCOUNT.DISABLE too. */
const lockAccount = defineCommand({
  name: 'lockAccount',
  roles: adminRoles,
  params: refParams('lockAccount', ['account', 'domainid']),
  handler: (p, ctx) => setAccountState(ctx, p, 'locked', 'ACCOUNT.DISABLE'),
});

/** RFC 1123 labels, at most 190 characters in all (CloudStack's check of a network domain). */
function checkNetworkDomain(v: string): void {
  const label = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
  if (v.length > 190 || !v.split('.').every((l) => label.test(l))) {
    throw invalidParameter(
      'networkdomain',
      v,
      "must be dot-separated labels of 1-63 letters, digits and '-' (not at either end), 190 characters at most",
    );
  }
}

const updateAccount = defineCommand({
  name: 'updateAccount',
  roles: adminRoles,
  params: refParams('updateAccount', ['id', 'account', 'domainid', 'newname', 'networkdomain', 'roleid']),
  async handler(p, ctx) {
    const c = ctx.caller;
    const newName = p.newname === undefined ? undefined : checkName('newname', p.newname);
    if (p.networkdomain) checkNetworkDomain(p.networkdomain);
    const role = p.roleid === undefined ? undefined : roleByUuid(p.roleid);
    if (p.roleid !== undefined && !role)
      throw invalidParameter('roleid', p.roleid, 'no such role (see the roleid of listAccounts)');
    const uuid = await ctx.transaction(async (tx) => {
      const a = await accountForAction(tx, c, p);
      const set: { name?: string; network_domain?: string | null; type?: number } = {};
      if (newName !== undefined) set.name = newName;
      // An empty networkdomain clears it (CloudStack's updateAccount).
      if (p.networkdomain !== undefined) set.network_domain = p.networkdomain === '' ? null : p.networkdomain;
      if (role && role.accountType !== Number(a.type)) {
        if (Number(a.is_default) === 1)
          throw invalidParameter('roleid', p.roleid, `the default account ${a.name} keeps its role`);
        if (role.accountType === 1 || Number(a.type) === 1) {
          if (c.role !== 'Admin')
            throw permissionDenied('Only a root admin can give or take the root admin role');
          if (role.accountType === 1 && a.domain_path !== '/')
            throw invalidParameter('roleid', p.roleid, 'root admin accounts belong to the ROOT domain');
        }
        set.type = role.accountType;
      }
      if (Object.keys(set).length > 0) {
        try {
          await tx.updateTable('accounts').set(set).where('id', '=', Number(a.id)).execute();
        } catch (e) {
          if (isUniqueViolation(e))
            throw invalidParameter(
              'newname',
              newName,
              `an account with this name already exists in domain ${displayPath(a.domain_path)}`,
            );
          throw e;
        }
      }
      await accountEvent(
        tx,
        ctx,
        a,
        'ACCOUNT.UPDATE',
        `Account ${a.name} updated${newName && newName !== a.name ? ` (renamed ${newName})` : ''}`,
      );
      return a.uuid;
    });
    return objectResult('account', await accountResponseByUuid(ctx.store.db, uuid));
  },
});

export const accountStateCommands: AnyCommand[] = [disableAccount, enableAccount, lockAccount, updateAccount];
