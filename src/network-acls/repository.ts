/**
 * Network ACL lookups the networks concern needs too (createNetwork's aclid, a tier's aclid/aclname in network
 * answers, deleteVPC removing the VPC's lists): this file imports only the tables, so networks/ and
 * network-acls/service.ts can both use it without importing each other.
 */
import { CloudStackError } from '../errors/catalogue.js';
import { notFound } from '../infrastructure/context.js';
import type { Executor } from '../store/db.js';
import { removeTagsOf } from '../tags/service.js';
import { aclDb } from './tables.js';
import type { AclListRow } from './tables.js';

export const BUILT_IN_LISTS = ['default_allow', 'default_deny'] as const;

/** The built-ins are the only lists without a VPC (createNetworkACLList requires vpcid). */
export const isBuiltIn = (l: { vpc_id: number | null }): boolean => l.vpc_id === null;

export async function aclListByUuid(db: unknown, uuid: string, param = 'aclid'): Promise<AclListRow> {
  const l = await aclDb(db)
    .selectFrom('network_acl_lists')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!l) throw notFound(param, uuid, 'network ACL list');
  return l as AclListRow;
}

/**
 * The list a new or re-assigned tier of VPC `vpcId` may get: a built-in or one of that VPC's (CloudStack:
 * "Network: ... and ACL: ... do not belong to the same VPC").
 */
export async function aclListForTier(
  db: unknown,
  aclUuid: string,
  tier: { vpcId: number; networkUuid?: string },
  param = 'aclid',
): Promise<AclListRow> {
  const l = await aclListByUuid(db, aclUuid, param);
  if (!isBuiltIn(l) && l.vpc_id !== tier.vpcId) {
    throw new CloudStackError(
      'InvalidParameterValue',
      tier.networkUuid
        ? `Network: ${tier.networkUuid} and ACL: ${aclUuid} do not belong to the same VPC`
        : `ACL: ${aclUuid} do not belong to the VPC`,
    );
  }
  return l;
}

/** id → {uuid, name} of the lists, for the aclid/aclname of network answers. */
export async function aclListNames(
  db: unknown,
  ids: readonly (number | null)[],
): Promise<Map<number, { uuid: string; name: string }>> {
  const wanted = [...new Set(ids.filter((i): i is number => i !== null))];
  if (wanted.length === 0) return new Map();
  const rows = await aclDb(db)
    .selectFrom('network_acl_lists')
    .select(['id', 'uuid', 'name'])
    .where('id', 'in', wanted)
    .execute();
  return new Map(rows.map((r) => [Number(r.id), { uuid: r.uuid, name: r.name }]));
}

/** The items of these lists go, and their tags with them (CloudStack removes a resource's tags with it). */
export async function deleteItemsOfLists(tx: unknown, listIds: readonly number[]): Promise<void> {
  const db = aclDb(tx);
  const items = await db
    .selectFrom('network_acl_items')
    .select('id')
    .where('acl_id', 'in', listIds)
    .execute();
  await removeTagsOf(
    tx as Executor,
    'NetworkACL',
    items.map((i) => Number(i.id)),
  );
  await db.deleteFrom('network_acl_items').where('acl_id', 'in', listIds).execute();
}

/** deleteVPC: the VPC's lists and their items go with it (CloudStack's VpcManagerImpl.destroyVpc). */
export async function removeVpcAclLists(tx: unknown, vpcId: number, now: number): Promise<void> {
  const db = aclDb(tx);
  const lists = await db
    .selectFrom('network_acl_lists')
    .select('id')
    .where('vpc_id', '=', vpcId)
    .where('removed', 'is', null)
    .execute();
  if (lists.length === 0) return;
  const ids = lists.map((l) => Number(l.id));
  await deleteItemsOfLists(tx, ids);
  await db.updateTable('network_acl_lists').set({ removed: now }).where('id', 'in', ids).execute();
}
