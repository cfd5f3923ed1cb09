/**
 * VPC network ACLs: lists (createNetworkACLList/deleteNetworkACLList/updateNetworkACLList/listNetworkACLLists),
 * their items (createNetworkACL/updateNetworkACLItem/deleteNetworkACL/moveNetworkAclItem/listNetworkACLs) and
 * which list a tier enforces (replaceNetworkACLList). Checks and texts follow CloudStack's
 * NetworkACLServiceImpl. A list belongs to its VPC: whoever may act on the VPC may act on its lists; the
 * built-ins default_allow and default_deny are everyone's to read and no one's to change. Every change to what
 * a tier enforces bumps that tier's routers in the same transaction.
 */
import { sql } from 'kysely';
import type { Expression, SqlBool } from 'kysely';
import { callerCondition, listScopeCondition, resolveListScope } from '../accounts/scope.js';
import type { ListScopeParams } from '../accounts/scope.js';
import { CloudStackError } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { notFound, pageWindow } from '../infrastructure/context.js';
import type { Owner } from '../infrastructure/owners.js';
import { checkAccess, ownerById } from '../infrastructure/owners.js';
import { networkByUuid, vpcById, vpcByUuid } from '../networks/repository.js';
import type { NetworkRow, VpcRow } from '../networks/repository.js';
import { bumpNetworkRouters } from '../routers/repository.js';
import type { Executor } from '../store/db.js';
import { removeTagsOf, tagsCondition } from '../tags/service.js';
import {
  checkNumber,
  cidrsOrAny,
  icmpDefaults,
  parseAction,
  parseTrafficType,
  validateItem,
} from './item-rules.js';
import type { ItemFields } from './item-rules.js';
import { aclListByUuid, aclListForTier, deleteItemsOfLists, isBuiltIn } from './repository.js';
import { aclDb } from './tables.js';
import type { AclExecutor, AclItemRow, AclListRow } from './tables.js';

const invalid = (message: string) => new CloudStackError('InvalidParameterValue', message);
const A = (ctx: NetCtx): AclExecutor => aclDb(ctx.tx);
const VPC_COLS = { accountColumn: 'vpcs.account_id', domainColumn: 'vpcs.domain_id' };

async function vpcAccess(ctx: NetCtx, vpc: VpcRow): Promise<Owner> {
  const owner = await ownerById(ctx.tx, vpc.account_id);
  await checkAccess(ctx.tx, ctx.caller, owner, `VPC '${vpc.name}'`);
  return owner;
}

/** A list the caller may read: a built-in, or one of a VPC the caller may act on. */
async function readableList(ctx: NetCtx, uuid: string, param: string): Promise<AclListRow> {
  const list = await aclListByUuid(ctx.tx, uuid, param);
  if (!isBuiltIn(list)) await vpcAccess(ctx, await vpcById(ctx.tx, list.vpc_id!));
  return list;
}

/** A list the caller may change; `builtIn` is CloudStack's refusal for the default lists. */
async function writableList(
  ctx: NetCtx,
  list: AclListRow,
  builtIn: string,
): Promise<{ list: AclListRow; owner: Owner; vpc: VpcRow }> {
  if (isBuiltIn(list)) throw invalid(builtIn);
  const vpc = await vpcById(ctx.tx, list.vpc_id!);
  return { list, owner: await vpcAccess(ctx, vpc), vpc };
}

/** The live tiers enforcing list `aclId`. */
async function tiersUsing(ctx: NetCtx, aclId: number) {
  return A(ctx)
    .selectFrom('networks')
    .select(['id', 'uuid', 'name'])
    .where('network_acl_id', '=', aclId)
    .where('removed', 'is', null)
    .execute();
}

/** What the tiers of `aclId` enforce changed: their routers get a new desired generation. */
async function bumpTiersOf(ctx: NetCtx, aclId: number): Promise<void> {
  for (const t of await tiersUsing(ctx, aclId)) await bumpNetworkRouters(ctx.tx as unknown as Executor, t.id);
}

async function event(
  ctx: NetCtx,
  type: Parameters<NetCtx['recorder']['event']>[1]['type'],
  owner: Owner,
  what: { description: string; resourceType: string; resourceId: string; resourceName?: string },
): Promise<void> {
  await ctx.recorder.event(ctx.tx, { type, owner, ...what });
}

// ------------------------------------------------------------------------------------------------ lists

export async function createAclList(
  ctx: NetCtx,
  p: {
    name: string;
    vpcid: string;
    description?: string | undefined;
    fordisplay?: boolean | undefined;
    uuid: string;
  },
): Promise<AclListRow> {
  const vpc = await vpcByUuid(ctx.tx, p.vpcid);
  const owner = await vpcAccess(ctx, vpc);
  await A(ctx)
    .insertInto('network_acl_lists')
    .values({
      uuid: p.uuid,
      name: p.name,
      description: p.description ?? null,
      vpc_id: vpc.id,
      for_display: p.fordisplay === false ? 0 : 1,
      created: ctx.now,
      removed: null,
    })
    .execute();
  await event(ctx, 'NETWORK.ACL.CREATE', owner, {
    description: `Network ACL list ${p.name} created in VPC ${vpc.name}`,
    resourceType: 'NetworkAcl',
    resourceId: p.uuid,
    resourceName: p.name,
  });
  return aclListByUuid(ctx.tx, p.uuid);
}

export async function deleteAclList(ctx: NetCtx, p: { id: string }): Promise<void> {
  const { list, owner } = await writableList(
    ctx,
    await aclListByUuid(ctx.tx, p.id, 'id'),
    'Default ACL cannot be removed',
  );
  const tiers = await tiersUsing(ctx, list.id);
  if (tiers.length > 0) {
    // NetworkACLManagerImpl.deleteNetworkACL: a CloudRuntimeException, so CloudStack answers 530.
    throw new CloudStackError(
      'InternalError',
      `ACL is still associated with ${tiers.length} tier(s). Cannot delete network ACL: ${list.uuid}`,
    );
  }
  await deleteItemsOfLists(ctx.tx, [list.id]);
  await A(ctx).updateTable('network_acl_lists').set({ removed: ctx.now }).where('id', '=', list.id).execute();
  await event(ctx, 'NETWORK.ACL.DELETE', owner, {
    description: `Network ACL list ${list.name} deleted`,
    resourceType: 'NetworkAcl',
    resourceId: list.uuid,
    resourceName: list.name,
  });
}

export async function updateAclList(
  ctx: NetCtx,
  p: {
    id: string;
    name?: string | undefined;
    description?: string | undefined;
    fordisplay?: boolean | undefined;
  },
): Promise<AclListRow> {
  const { list, owner } = await writableList(
    ctx,
    await aclListByUuid(ctx.tx, p.id, 'id'),
    'Default ACL cannot be modified',
  );
  const set: { name?: string; description?: string; for_display?: number } = {};
  // CloudStack ignores a blank name or description.
  if (p.name?.trim()) set.name = p.name;
  if (p.description?.trim()) set.description = p.description;
  if (p.fordisplay !== undefined) set.for_display = p.fordisplay ? 1 : 0;
  if (Object.keys(set).length)
    await A(ctx).updateTable('network_acl_lists').set(set).where('id', '=', list.id).execute();
  await event(ctx, 'NETWORK.ACL.UPDATE', owner, {
    description: `Network ACL list ${list.name} updated`,
    resourceType: 'NetworkAcl',
    resourceId: list.uuid,
    resourceName: set.name ?? list.name,
  });
  return aclListByUuid(ctx.tx, list.uuid);
}

/** Lists in the caller's scope: the built-ins always, and those of the VPCs the scope covers. */
function scopeOverVpcs(
  ctx: NetCtx,
  scope: Awaited<ReturnType<typeof resolveListScope>>,
): Expression<SqlBool> | undefined {
  const conds = [listScopeCondition(scope, VPC_COLS), callerCondition(ctx.caller, VPC_COLS)].filter(
    (c): c is Expression<SqlBool> => c !== undefined,
  );
  if (conds.length === 0) return undefined;
  return sql<SqlBool>`(l.vpc_id is null or (${sql.join(conds, sql` and `)}))`;
}

export async function listAclLists(
  ctx: NetCtx,
  p: ListScopeParams & {
    id?: string | undefined;
    name?: string | undefined;
    vpcid?: string | undefined;
    networkid?: string | undefined;
    keyword?: string | undefined;
    fordisplay?: boolean | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<AclListRow>> {
  let q = A(ctx)
    .selectFrom('network_acl_lists as l')
    .leftJoin('vpcs', 'vpcs.id', 'l.vpc_id')
    .where('l.removed', 'is', null);
  if (p.vpcid) {
    const vpc = await vpcByUuid(ctx.tx, p.vpcid);
    await vpcAccess(ctx, vpc);
    // CloudStack includes the global lists (vpc_id 0) with a VPC's.
    q = q.where((eb) => eb.or([eb('l.vpc_id', '=', vpc.id), eb('l.vpc_id', 'is', null)]));
  } else {
    const scoped = scopeOverVpcs(ctx, await resolveListScope(ctx.tx as unknown as Executor, ctx.caller, p));
    if (scoped) q = q.where(scoped);
  }
  if (p.id) q = q.where('l.uuid', '=', p.id);
  if (p.name) q = q.where('l.name', '=', p.name);
  if (p.fordisplay !== undefined) q = q.where('l.for_display', '=', p.fordisplay ? 1 : 0);
  if (p.keyword) {
    const k = `%${p.keyword}%`;
    q = q.where((eb) => eb.or([eb('l.name', 'like', k), eb('l.description', 'like', k)]));
  }
  if (p.networkid) {
    const n = await networkByUuid(ctx.tx, p.networkid);
    q = q.where('l.id', '=', n.network_acl_id ?? -1);
  }
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  // CloudStack's Filter(NetworkACLVO, "id", false): newest first.
  let rq = q.selectAll('l').orderBy('l.id', 'desc').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: (await rq.execute()) as AclListRow[] };
}

// ------------------------------------------------------------------------------------------------ items

export interface CreateItemParams {
  aclid?: string | undefined;
  networkid?: string | undefined;
  protocol: string;
  startport?: number | undefined;
  endport?: number | undefined;
  icmptype?: number | undefined;
  icmpcode?: number | undefined;
  cidrlist?: string[] | undefined;
  traffictype?: string | undefined;
  action?: string | undefined;
  number?: number | undefined;
  reason?: string | undefined;
  fordisplay?: boolean | undefined;
}

/**
 * createAclListIfNeeded: an item for a tier without a list gets the tier its own list first, named as
 * CloudStack names it, and the tier enforces it from then on.
 */
async function listForNewItem(ctx: NetCtx, p: CreateItemParams, newListUuid: string): Promise<AclListRow> {
  if (p.aclid) return aclListByUuid(ctx.tx, p.aclid);
  if (!p.networkid) throw invalid('Cannot create Network ACL Item. ACL Id or network Id is required');
  const network = await networkByUuid(ctx.tx, p.networkid);
  if (network.vpc_id === null) throw invalid(`Network: ${network.uuid} does not belong to VPC`);
  if (network.network_acl_id !== null) return listById(ctx, network.network_acl_id);
  const vpc = await vpcById(ctx.tx, network.vpc_id);
  await vpcAccess(ctx, vpc);
  const name = `VPC_${vpc.name}_Tier_${network.name}_ACL_${network.uuid}`;
  const list = await createAclList(ctx, {
    name,
    description: `ACL for ${name}`,
    vpcid: vpc.uuid,
    fordisplay: p.fordisplay,
    uuid: newListUuid,
  });
  await assignList(ctx, network, list, await ownerById(ctx.tx, vpc.account_id));
  return list;
}

async function numberTaken(ctx: NetCtx, aclId: number, n: number, except?: number): Promise<boolean> {
  let q = A(ctx)
    .selectFrom('network_acl_items')
    .select('id')
    .where('acl_id', '=', aclId)
    .where('number', '=', n);
  if (except !== undefined) q = q.where('id', '!=', except);
  return (await q.executeTakeFirst()) !== undefined;
}

export async function createAclItem(
  ctx: NetCtx,
  p: CreateItemParams & { uuid: string; newListUuid: string },
): Promise<AclItemRow> {
  const { list, owner } = await writableList(
    ctx,
    await listForNewItem(ctx, p, p.newListUuid),
    'Default ACL cannot be modified',
  );
  if (p.number !== undefined) {
    checkNumber(p.number);
    if (await numberTaken(ctx, list.id, p.number))
      throw invalid(`ACL item with number ${p.number} already exists in ACL: ${list.uuid}`);
  }
  const action = parseAction(p.action);
  const traffic = parseTrafficType(p.traffictype);
  const number =
    p.number ??
    Number(
      (
        await A(ctx)
          .selectFrom('network_acl_items')
          .select((eb) => eb.fn.max('number').as('m'))
          .where('acl_id', '=', list.id)
          .executeTakeFirst()
      )?.m ?? 0,
    ) + 1;
  const fields = icmpDefaults({
    protocol: p.protocol.trim().toLowerCase(),
    startPort: p.startport ?? null,
    endPort: p.endport ?? null,
    icmpType: p.icmptype ?? null,
    icmpCode: p.icmpcode ?? null,
    cidrs: cidrsOrAny(p.cidrlist),
  });
  validateItem(fields);
  await A(ctx)
    .insertInto('network_acl_items')
    .values({
      uuid: p.uuid,
      acl_id: list.id,
      number,
      action,
      traffic_type: traffic,
      ...columnsOf(fields),
      reason: p.reason ?? null,
      for_display: p.fordisplay === false ? 0 : 1,
      state: 'Active',
      created: ctx.now,
    })
    .execute();
  await bumpTiersOf(ctx, list.id);
  await event(ctx, 'NETWORK.ACL.ITEM.CREATE', owner, {
    description: `Network ACL item ${number} (${action} ${traffic} ${fields.protocol}) created in list ${list.name}`,
    resourceType: 'NetworkAclItem',
    resourceId: p.uuid,
  });
  return itemByUuid(ctx, p.uuid);
}

const columnsOf = (f: ItemFields) => ({
  protocol: f.protocol,
  start_port: f.startPort,
  end_port: f.endPort,
  icmp_type: f.icmpType,
  icmp_code: f.icmpCode,
  cidrs: f.cidrs.join(','),
});

async function itemByUuid(ctx: NetCtx, uuid: string, param = 'id'): Promise<AclItemRow> {
  const i = await A(ctx)
    .selectFrom('network_acl_items')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!i) throw notFound(param, uuid, 'network ACL item');
  return i as AclItemRow;
}

async function listById(ctx: NetCtx, id: number): Promise<AclListRow> {
  return (await A(ctx)
    .selectFrom('network_acl_lists')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow()) as AclListRow;
}

async function itemById(ctx: NetCtx, id: number): Promise<AclItemRow> {
  return (await A(ctx)
    .selectFrom('network_acl_items')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow()) as AclItemRow;
}

const listOfItem = (ctx: NetCtx, item: { acl_id: number }) => listById(ctx, item.acl_id);

export async function updateAclItem(
  ctx: NetCtx,
  p: Omit<CreateItemParams, 'aclid' | 'networkid' | 'protocol'> & {
    id: string;
    protocol?: string | undefined;
    partialupgrade?: boolean | undefined;
    customid?: string | undefined;
  },
): Promise<AclItemRow> {
  const item = await itemByUuid(ctx, p.id);
  const { list, owner } = await writableList(
    ctx,
    await listOfItem(ctx, item),
    'Default ACL cannot be modified',
  );
  // transferDataToNetworkAclRulePojo: without partialupgrade=true (its default is true in 4.18's command) every
  // field not given is cleared; number and id are kept either way.
  const partial = p.partialupgrade !== false;
  const keep = <T>(given: T | undefined, current: T): T | null | undefined =>
    given !== undefined ? given : partial ? current : null;
  let number = item.number;
  if (p.number !== undefined) {
    checkNumber(p.number);
    if (await numberTaken(ctx, list.id, p.number, item.id))
      throw invalid(`ACL item with number ${p.number} already exists in ACL: ${list.uuid}`);
    number = p.number;
  }
  const protocol = p.protocol?.trim() ? p.protocol.trim().toLowerCase() : partial ? item.protocol : '';
  if (!protocol)
    throw invalid('Unable to execute API command updateNetworkACLItem due to missing parameter protocol');
  const fields = icmpDefaults({
    protocol,
    startPort: keep(p.startport, item.start_port) ?? null,
    endPort: keep(p.endport, item.end_port) ?? null,
    icmpType: keep(p.icmptype, item.icmp_type) ?? null,
    icmpCode: keep(p.icmpcode, item.icmp_code) ?? null,
    cidrs: p.cidrlist?.length ? cidrsOrAny(p.cidrlist) : partial ? item.cidrs.split(',') : ['0.0.0.0/0'],
  });
  const action = p.action?.trim()
    ? parseAction(p.action)
    : partial
      ? (item.action as 'Allow' | 'Deny')
      : 'Allow';
  const traffic =
    p.traffictype !== undefined ? parseTrafficType(p.traffictype) : partial ? item.traffic_type : 'Ingress';
  validateItem(fields);
  await A(ctx)
    .updateTable('network_acl_items')
    .set({
      number,
      action,
      traffic_type: traffic,
      ...columnsOf(fields),
      reason: p.reason?.trim() ? p.reason : partial ? item.reason : null,
      for_display: p.fordisplay !== undefined ? (p.fordisplay ? 1 : 0) : partial ? item.for_display : 1,
      ...(p.customid?.trim() && ctx.caller.role === 'Admin' ? { uuid: p.customid } : {}),
    })
    .where('id', '=', item.id)
    .execute();
  await bumpTiersOf(ctx, list.id);
  await event(ctx, 'NETWORK.ACL.ITEM.UPDATE', owner, {
    description: `Network ACL item ${number} of list ${list.name} updated`,
    resourceType: 'NetworkAclItem',
    resourceId: item.uuid,
  });
  return itemById(ctx, item.id);
}

export async function deleteAclItem(ctx: NetCtx, p: { id: string }): Promise<void> {
  const item = await itemByUuid(ctx, p.id);
  const { list, owner } = await writableList(
    ctx,
    await listOfItem(ctx, item),
    'ACL Items in default ACL cannot be deleted',
  );
  await removeTagsOf(ctx.tx as unknown as Executor, 'NetworkACL', item.id);
  await A(ctx).deleteFrom('network_acl_items').where('id', '=', item.id).execute();
  await bumpTiersOf(ctx, list.id);
  await event(ctx, 'NETWORK.ACL.ITEM.DELETE', owner, {
    description: `Network ACL item ${item.number} of list ${list.name} deleted`,
    resourceType: 'NetworkAclItem',
    resourceId: item.uuid,
  });
}

/**
 * moveNetworkAclItem (CloudStack's moveNetworkAclRuleToNewPosition): the item goes right after `previous` /
 * right before `next`, to the top (number 1) without `previous`, to the bottom without `next`, shifting the
 * items in the way up by one. `aclconsistencyhash`, when given, must be the md5 of the list's item uuids in
 * number order (the list the caller saw).
 */
export async function moveAclItem(
  ctx: NetCtx,
  p: {
    id: string;
    previousaclruleid?: string | undefined;
    nextaclruleid?: string | undefined;
    aclconsistencyhash?: string | undefined;
  },
  md5: (s: string) => string,
): Promise<AclItemRow> {
  if (!p.previousaclruleid?.trim() && !p.nextaclruleid?.trim())
    throw invalid('Both previous and next ACL rule IDs cannot be blank.');
  const moved = await A(ctx)
    .selectFrom('network_acl_items')
    .selectAll()
    .where('uuid', '=', p.id)
    .executeTakeFirst();
  if (!moved) throw invalid(`Could not find a rule with ID[${p.id}]`);
  const neighbour = async (uuid: string | undefined) => {
    if (!uuid?.trim()) return undefined;
    const r = await A(ctx)
      .selectFrom('network_acl_items')
      .selectAll()
      .where('uuid', '=', uuid)
      .executeTakeFirst();
    if (!r) throw invalid(`Could not find rule with ID [${uuid}]`);
    return r;
  };
  const previous = await neighbour(p.previousaclruleid);
  const next = await neighbour(p.nextaclruleid);
  if ((next && next.acl_id !== moved.acl_id) || (previous && previous.acl_id !== moved.acl_id))
    throw invalid('Cannot use ACL rules from differentiating ACLs. Rule being moved.');
  const { list, owner } = await writableList(
    ctx,
    await listOfItem(ctx, moved as AclItemRow),
    'Default ACL rules cannot be moved.',
  );
  const all = await A(ctx)
    .selectFrom('network_acl_items')
    .select(['id', 'uuid', 'number'])
    .where('acl_id', '=', list.id)
    .orderBy('number')
    .execute();
  if (p.aclconsistencyhash?.trim() && md5(all.map((r) => r.uuid).join('')) !== p.aclconsistencyhash)
    throw invalid(
      'It seems that the access control list in the database is not in the state that you used to apply the changed. Could you try it again?',
    );
  const renumber = new Map<number, number>();
  if (!next) {
    renumber.set(moved.id, all[all.length - 1]!.number + 1);
  } else {
    const target = previous ? previous.number + 1 : 1;
    const startAt = previous ? all.findIndex((r) => r.id === previous.id) + 1 : 0;
    if (previous && target !== next.number && all.some((r) => r.number === target))
      throw invalid(
        'There are some inconsistencies with the data you sent. The new position calculated already has a ACL rule on it.',
      );
    // Shift the run of consecutive numbers from `target` on up by one, leaving room for the moved item.
    let want = target;
    for (const r of all.slice(startAt)) {
      if (r.id === moved.id) continue;
      if (r.number !== want) break;
      want += 1;
      renumber.set(r.id, want);
    }
    renumber.set(moved.id, target);
  }
  // Highest first, through numbers no item holds, so UNIQUE(acl_id, number) holds after every statement.
  const parked = Math.max(...all.map((r) => r.number), ...renumber.values()) + 1;
  const order = [...renumber.entries()].sort((a, b) => b[1] - a[1]);
  for (const [i, [id]] of order.entries())
    await A(ctx)
      .updateTable('network_acl_items')
      .set({ number: parked + i })
      .where('id', '=', id)
      .execute();
  for (const [id, n] of order)
    await A(ctx).updateTable('network_acl_items').set({ number: n }).where('id', '=', id).execute();
  await bumpTiersOf(ctx, list.id);
  await event(ctx, 'NETWORK.ACL.ITEM.UPDATE', owner, {
    description: `Network ACL item ${moved.number} of list ${list.name} moved to ${renumber.get(moved.id)}`,
    resourceType: 'NetworkAclItem',
    resourceId: moved.uuid,
  });
  return itemById(ctx, moved.id);
}

export async function listAclItems(
  ctx: NetCtx,
  p: ListScopeParams & {
    id?: string | undefined;
    aclid?: string | undefined;
    networkid?: string | undefined;
    traffictype?: string | undefined;
    protocol?: string | undefined;
    action?: string | undefined;
    fordisplay?: boolean | undefined;
    tags?: Record<string, string>[] | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<AclItemRow>> {
  let aclId: number | undefined;
  if (p.networkid) {
    const n: NetworkRow = await networkByUuid(ctx.tx, p.networkid);
    // A tier without a list has no items (CloudStack answers an empty list).
    if (n.network_acl_id === null) return { count: 0, items: [] };
    aclId = n.network_acl_id;
  }
  let q = A(ctx)
    .selectFrom('network_acl_items as i')
    .innerJoin('network_acl_lists as l', 'l.id', 'i.acl_id')
    .leftJoin('vpcs', 'vpcs.id', 'l.vpc_id');
  if (p.aclid) {
    const list = await readableList(ctx, p.aclid, 'aclid');
    if (aclId !== undefined && aclId !== list.id) return { count: 0, items: [] };
    aclId = list.id;
  } else if (aclId === undefined) {
    const scoped = scopeOverVpcs(ctx, await resolveListScope(ctx.tx as unknown as Executor, ctx.caller, p));
    if (scoped) q = q.where(scoped);
  } else {
    await readableList(ctx, (await listById(ctx, aclId)).uuid, 'networkid');
  }
  if (aclId !== undefined) q = q.where('i.acl_id', '=', aclId);
  if (p.id) q = q.where('i.uuid', '=', p.id);
  if (p.traffictype) q = q.where('i.traffic_type', '=', parseTrafficType(p.traffictype));
  if (p.protocol) q = q.where('i.protocol', '=', p.protocol.toLowerCase());
  if (p.action) q = q.where('i.action', '=', parseAction(p.action));
  if (p.fordisplay !== undefined) q = q.where('i.for_display', '=', p.fordisplay ? 1 : 0);
  const tagged = tagsCondition('NetworkACL', 'i.id', p.tags);
  if (tagged) q = q.where(tagged);
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  // CloudStack's Filter(NetworkACLItemVO, "id", false): newest first.
  let rq = q.selectAll('i').orderBy('i.id', 'desc').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: (await rq.execute()) as AclItemRow[] };
}

// ------------------------------------------------------------------------------------------------ tiers

async function assignList(ctx: NetCtx, network: NetworkRow, list: AclListRow, owner: Owner): Promise<void> {
  await A(ctx)
    .updateTable('networks')
    .set({ network_acl_id: list.id })
    .where('id', '=', network.id)
    .execute();
  await bumpNetworkRouters(ctx.tx as unknown as Executor, network.id);
  await event(ctx, 'NETWORK.ACL.REPLACE', owner, {
    description: `Network ACL list ${list.name} assigned to tier ${network.name}`,
    resourceType: 'Network',
    resourceId: network.uuid,
    resourceName: network.name,
  });
}

export async function replaceAclList(
  ctx: NetCtx,
  p: { aclid: string; networkid?: string | undefined; gatewayid?: string | undefined },
): Promise<void> {
  if (p.gatewayid !== undefined && p.networkid !== undefined)
    throw invalid('Network ID and private gateway can not be passed at the same time');
  if (p.gatewayid !== undefined)
    throw new CloudStackError(
      'InvalidParameterValue',
      `Invalid parameter gatewayid value=${p.gatewayid}: stacknet has no VPC private gateways, so no ACL can be replaced on one; give networkid`,
    );
  if (p.networkid === undefined) throw invalid('Network ID or private gateway ID is required');
  const network = await networkByUuid(ctx.tx, p.networkid);
  await aclListByUuid(ctx.tx, p.aclid);
  if (network.vpc_id === null) throw invalid(`Network is not part of a VPC: ${network.uuid}`);
  const vpc = await vpcById(ctx.tx, network.vpc_id);
  const owner = await vpcAccess(ctx, vpc);
  const list = await aclListForTier(ctx.tx, p.aclid, { vpcId: vpc.id, networkUuid: network.uuid });
  if (network.network_acl_id === list.id) return;
  await assignList(ctx, network, list, owner);
}
