/**
 * Resource tags: createTags/deleteTags/listTags, the `tags` every taggable response carries (tagsFor), and the
 * `tags[n].key`/`tags[n].value` filter of their list commands (tagsCondition). A tag belongs to its resource's
 * owner: whoever may see or act on the resource may see or change its tags.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Expression, RawBuilder, SqlBool } from 'kysely';
import type { Caller, ResponseObject } from '../api/command.js';
import { keywordMatch, pageOfQuery } from '../api/list.js';
import type { Page } from '../api/list.js';
import { invalidParameter, permissionDenied } from '../errors/catalogue.js';
import { applyListScope, pathInSubtree, resolveListScope } from '../accounts/scope.js';
import type { ListScopeParams } from '../accounts/scope.js';
import { displayPath } from '../accounts/repository.js';
import type { Executor, Tx } from '../store/db.js';
import { recordEvent } from '../events/record.js';
import { preparedQuery } from '../store/prepared.js';
import { dialectOf } from '../store/migrations/helpers.js';
import type { Kysely, SelectQueryBuilder } from 'kysely';
import type { Database } from '../store/schema.js';

/**
 * A taggable resource's own row: its table and what makes it live (createTags takes only live ones), and the
 * query of the live ones' `id, uuid, account_id, domain_id`.
 */
const own = (table: string, live: RawBuilder<unknown>) => ({
  table,
  live,
  rows: sql`select id, uuid, account_id, domain_id from ${sql.table(table)} where ${live}`,
});

/**
 * A VPC's network ACL items belong to the VPC's owner; those of the global built-in lists (default_allow,
 * default_deny: no VPC) to ROOT, so only a root admin tags them.
 */
const aclOwner = sql`v.account_id, coalesce(v.domain_id, (select id from domains where path = '/')) as domain_id`;

/** The resources stacknet tags, by CloudStack's ResourceObjectType name. */
const taggable = {
  UserVm: own('vms', sql`removed is null`),
  Network: own('networks', sql`removed is null`),
  Vpc: own('vpcs', sql`removed is null`),
  PublicIpAddress: own('ip_allocations', sql`owner_kind = 'publicip' and state = 'Allocated'`),
  PortForwardingRule: own('firewall_rules', sql`removed is null and purpose = 'PortForwarding'`),
  // CloudStack tags ingress and egress firewall rules under the one type.
  FirewallRule: own('firewall_rules', sql`removed is null and purpose = 'Firewall'`),
  LoadBalancer: own('firewall_rules', sql`removed is null and purpose = 'LoadBalancing'`),
  // An item's row goes with its list (network-acls/repository.ts deleteItemsOfLists): while it is there it is live.
  NetworkACL: {
    table: 'network_acl_items',
    live: sql`1 = 1`,
    rows: sql`select i.id, i.uuid, ${aclOwner} from network_acl_items i
      join network_acl_lists l on l.id = i.acl_id and l.removed is null left join vpcs v on v.id = l.vpc_id`,
  },
} as const;

export type TaggableType = keyof typeof taggable;

/** CloudStack compares resource type names case-insensitively. */
export function resourceType(raw: string, param = 'resourcetype'): TaggableType {
  const t = (Object.keys(taggable) as TaggableType[]).find(
    (k) => k.toLowerCase() === raw.trim().toLowerCase(),
  );
  if (!t)
    throw invalidParameter(
      param,
      raw,
      `not a resource type stacknet tags (${Object.keys(taggable).join(', ')})`,
    );
  return t;
}

interface TaggedResource {
  id: number;
  uuid: string;
  account_id: number | null;
  domain_id: number;
}

async function resourceFor(
  ex: Executor,
  caller: Caller,
  type: TaggableType,
  uuid: string,
): Promise<TaggedResource> {
  const r = (
    await sql<
      Omit<TaggedResource, 'domain_id'> & { domain_id: number | null }
    >`select * from (${taggable[type].rows}) r
      where r.uuid = ${uuid.toLowerCase()}`.execute(ex)
  ).rows[0];
  if (!r) throw invalidParameter('resourceids', uuid, `no ${type} has this id`);
  if (r.domain_id === null)
    throw invalidParameter('resourceids', uuid, `${type} ${uuid} belongs to no domain`);
  const owner = {
    ...r,
    id: Number(r.id),
    domain_id: Number(r.domain_id),
    account_id: r.account_id === null ? null : Number(r.account_id),
  };
  await checkResourceAccess(ex, caller, type, owner);
  return owner;
}

/** Resources' ids: a list, or a query of them (one column). */
type IdQuery = SelectQueryBuilder<Database, keyof Database, { id: number }>;
type Ids = readonly number[] | IdQuery;

/**
 * A tag and its resource's deletion meet on the resource's row (PostgreSQL, MariaDB; SQLite runs one writer at a
 * time). createTags holds the rows it tags, read again under the lock as live, until it commits; every path that
 * deletes a resource holds its row before deleting its tags (removeTagsOf takes it). Else a deletion committing
 * between createTags' read of the resource and its insert would leave a tag on a resource that is gone, and one
 * whose tag is inserted but not committed when the deletion's own DELETE of the tags runs is not seen by it
 * (PostgreSQL): listTags would show the tag under the gone resource's id (and a public IP's id names the address,
 * so under the next owner's). The rows are taken in id order, as a multi-row UPDATE takes them.
 */
async function lockTagged(
  ex: Executor,
  type: TaggableType,
  ids: Ids,
  live: boolean,
): Promise<Map<number, string>> {
  const { table, live: alive } = taggable[type];
  const only = Array.isArray(ids) ? sql.join(ids as number[]) : (ids as IdQuery);
  const rows = await sql<{ id: number; uuid: string }>`select id, uuid from ${sql.table(table)}
    where id in (${only})${live ? sql` and ${alive}` : sql``} order by id for update`.execute(ex);
  return new Map(rows.rows.map((r) => [Number(r.id), r.uuid]));
}

const locks = (ex: Executor) => dialectOf(ex as unknown as Kysely<unknown>) !== 'sqlite';

/**
 * Resources a transaction knows to have no tags (keyed by the transaction): tagsFor answers `[]` for them without
 * a read. The association job's address is one: it was Allocating when the job read it, createTags takes only
 * Allocated addresses (and holds the row, lockTagged), no other transaction sees it Allocated before this one
 * commits, and a deleted address's tags go with its row on every path (public-ips/service.ts, reclaim.ts).
 */
const knownUntagged = new WeakMap<object, Set<string>>();
const untaggedKey = (type: TaggableType, id: number) => `${type}:${id}`;

/** `id` of `type` has no tags in transaction `tx` (see knownUntagged). */
export function untaggedIn(tx: Executor, type: TaggableType, id: number): void {
  let set = knownUntagged.get(tx);
  if (!set) knownUntagged.set(tx, (set = new Set()));
  set.add(untaggedKey(type, id));
}

async function checkResourceAccess(
  ex: Executor,
  caller: Caller,
  type: string,
  r: TaggedResource,
): Promise<void> {
  if (caller.role === 'Admin') return;
  const denied = () =>
    permissionDenied(
      `Account ${caller.accountName} does not have permission to operate on ${type} ${r.uuid}`,
    );
  if (caller.role === 'User') {
    if (r.account_id !== caller.accountId) throw denied();
    return;
  }
  const d = await ex.selectFrom('domains').select('path').where('id', '=', r.domain_id).executeTakeFirst();
  if (!d || !pathInSubtree(d.path, caller.domainPath)) throw denied();
}

/** `tags[0].key=a&tags[0].value=b` as parsed (map parameter) → pairs; a key is required, as in CloudStack. */
function tagPairs(
  tags: Record<string, string>[] | undefined,
  keyRequired: boolean,
): { key: string; value?: string }[] {
  return (tags ?? []).map((t, i) => {
    const key = t.key?.trim();
    if (!key) throw invalidParameter(`tags[${i}].key`, t.key ?? '', 'a tag needs a key');
    if (keyRequired && (t.value === undefined || t.value === ''))
      throw invalidParameter(`tags[${i}].value`, t.value ?? '', `tag ${key} needs a value`);
    return t.value === undefined ? { key } : { key, value: t.value };
  });
}

export async function createTags(
  tx: Tx,
  caller: Caller,
  p: {
    resourcetype: string;
    resourceids: string[];
    tags: Record<string, string>[];
    customer?: string | undefined;
  },
  now: number,
): Promise<void> {
  const type = resourceType(p.resourcetype);
  const pairs = tagPairs(p.tags, true);
  if (pairs.length === 0)
    throw invalidParameter('tags', '', 'give at least one tags[0].key and tags[0].value');
  if (p.resourceids.length === 0) throw invalidParameter('resourceids', '', 'give at least one resource id');
  const resources: TaggedResource[] = [];
  for (const uuid of new Set(p.resourceids)) resources.push(await resourceFor(tx, caller, type, uuid));
  if (locks(tx)) {
    const held = await lockTagged(
      tx,
      type,
      resources.map((r) => r.id),
      true,
    );
    for (const r of resources) {
      const uuid = held.get(r.id);
      if (uuid === undefined) throw invalidParameter('resourceids', r.uuid, `no ${type} has this id`);
      // Its id as it is now: a customid committed since the first read moved it (tagsFollowUuid).
      r.uuid = uuid;
    }
  }
  for (const r of resources) {
    knownUntagged.get(tx)?.delete(untaggedKey(type, r.id));
    for (const { key, value } of pairs) {
      const dup = await tx
        .selectFrom('resource_tags')
        .select('id')
        .where('resource_type', '=', type)
        .where('resource_id', '=', r.id)
        .where('key', '=', key)
        .executeTakeFirst();
      if (dup) throw invalidParameter('tags', key, `${type} ${r.uuid} already has a tag with key ${key}`);
      await tx
        .insertInto('resource_tags')
        .values({
          uuid: randomUUID(),
          key,
          value: value!,
          resource_type: type,
          resource_id: r.id,
          resource_uuid: r.uuid,
          account_id: r.account_id,
          domain_id: r.domain_id,
          customer: p.customer ?? null,
          created: now,
        })
        .execute();
    }
  }
  await recordEvent(tx, {
    type: 'CREATE_TAGS',
    actor: caller,
    description: `created tags ${pairs.map((t) => t.key).join(', ')} on ${type} ${p.resourceids.join(', ')}`,
    resourceType: type,
  });
}

export async function deleteTags(
  tx: Tx,
  caller: Caller,
  p: { resourcetype: string; resourceids: string[]; tags?: Record<string, string>[] | undefined },
): Promise<void> {
  const type = resourceType(p.resourcetype);
  const pairs = tagPairs(p.tags, false);
  let deleted = 0;
  for (const uuid of new Set(p.resourceids)) {
    const r = await resourceFor(tx, caller, type, uuid);
    let q = tx.deleteFrom('resource_tags').where('resource_type', '=', type).where('resource_id', '=', r.id);
    if (pairs.length > 0)
      q = q.where((eb) =>
        eb.or(
          pairs.map((t) =>
            t.value === undefined
              ? eb('key', '=', t.key)
              : eb.and([eb('key', '=', t.key), eb('value', '=', t.value)]),
          ),
        ),
      );
    deleted += Number((await q.executeTakeFirst()).numDeletedRows);
  }
  if (deleted === 0)
    throw invalidParameter(
      'tags',
      pairs.map((t) => t.key).join(','),
      'no tag matches on the given resources',
    );
  await recordEvent(tx, {
    type: 'DELETE_TAGS',
    actor: caller,
    description: `deleted ${deleted} tag(s) on ${type} ${p.resourceids.join(', ')}`,
    resourceType: type,
  });
}

/**
 * Called when a resource goes away (CloudStack removes its tags with it), in the transaction that deletes it.
 * `resourceIds` may be a query of the ids (one column), when the rows going are chosen by a condition: then call
 * it before deleting them. It holds the resources' rows first (lockTagged): a createTags holding one has committed
 * its tags by then, and this DELETE sees them.
 */
export async function removeTagsOf(
  ex: Executor,
  type: TaggableType,
  resourceIds: number | Ids,
): Promise<void> {
  const ids = typeof resourceIds === 'number' ? [resourceIds] : resourceIds;
  if (Array.isArray(ids) && ids.length === 0) return;
  if (locks(ex)) await lockTagged(ex, type, ids, false);
  await ex
    .deleteFrom('resource_tags')
    .where('resource_type', '=', type)
    .where('resource_id', 'in', ids as readonly number[])
    .execute();
}

/**
 * A resource's id changed (update*Rule's and updateLoadBalancer*'s `customid`): its tags follow it, since listTags
 * names and finds a resource by the id stored with each tag. Else the tags would stay under the old id, which
 * another resource may take next (a customid is any id no live resource has). Call it after the row's UPDATE,
 * which holds the row: a createTags holding it first has committed its tags by then, and one after reads the new id
 * under the lock (lockTagged).
 */
export async function tagsFollowUuid(
  ex: Executor,
  type: TaggableType,
  id: number,
  uuid: string,
): Promise<void> {
  await ex
    .updateTable('resource_tags')
    .set({ resource_uuid: uuid })
    .where('resource_type', '=', type)
    .where('resource_id', '=', id)
    .execute();
}

interface TagRow {
  key: string;
  value: string;
  resource_type: string;
  resource_uuid: string;
  customer: string | null;
  account_name: string | null;
  domain_uuid: string;
  domain_name: string;
  domain_path: string;
}

const tagQuery = (ex: Executor) =>
  ex
    .selectFrom('resource_tags as t')
    .innerJoin('domains as d', 'd.id', 't.domain_id')
    .leftJoin('accounts as a', 'a.id', 't.account_id')
    .select([
      't.key',
      't.value',
      't.resource_type',
      't.resource_uuid',
      't.customer',
      'a.name as account_name',
      'd.uuid as domain_uuid',
      'd.name as domain_name',
      'd.path as domain_path',
    ]);

// One resource's tags, prepared (src/store/prepared.ts): every answer that renders one resource reads them.
const tagsOfOne = preparedQuery((ex: Executor, type: string, id: number) =>
  tagQuery(ex)
    .select('t.resource_id')
    .where('t.resource_type', '=', type)
    .where('t.resource_id', '=', id)
    .orderBy('t.id'),
);

export function tagResponse(t: TagRow): ResponseObject {
  return {
    key: t.key,
    value: t.value,
    resourcetype: t.resource_type,
    resourceid: t.resource_uuid,
    account: t.account_name ?? undefined,
    domainid: t.domain_uuid,
    domain: t.domain_name,
    domainpath: displayPath(t.domain_path),
    customer: t.customer ?? undefined,
  };
}

/** The `tags` of each resource, for its response (resources without tags get `[]`, as CloudStack answers). */
export async function tagsFor(
  ex: Executor,
  type: TaggableType,
  resourceIds: readonly number[],
): Promise<Map<number, ResponseObject[]>> {
  const out = new Map<number, ResponseObject[]>(resourceIds.map((id) => [id, []]));
  const known = knownUntagged.get(ex);
  const ids = [...new Set(resourceIds)].filter((id) => !known?.has(untaggedKey(type, id)));
  if (ids.length === 0) return out;
  const rows =
    ids.length === 1
      ? await tagsOfOne.rows(ex, type, ids[0]!)
      : await tagQuery(ex)
          .select('t.resource_id')
          .where('t.resource_type', '=', type)
          .where('t.resource_id', 'in', ids)
          .orderBy('t.id')
          .execute();
  for (const r of rows) out.get(Number(r.resource_id))?.push(tagResponse(r));
  return out;
}

/**
 * The list commands' `tags[n].key=k&tags[n].value=v` filter: resources carrying every pair given (CloudStack
 * ANDs them). `idColumn` is the listed table's id column, e.g. `networks.id`.
 */
export function tagsCondition(
  type: TaggableType,
  idColumn: string,
  tags: Record<string, string>[] | undefined,
): Expression<SqlBool> | undefined {
  const pairs = tagPairs(tags, false);
  if (pairs.length === 0) return undefined;
  const each = pairs.map(
    (t) => sql<SqlBool>`exists (select 1 from resource_tags rt where rt.resource_type = ${type}
      and rt.resource_id = ${sql.ref(idColumn)} and rt.key = ${t.key}${t.value === undefined ? sql`` : sql` and rt.value = ${t.value}`})`,
  );
  return sql<SqlBool>`(${sql.join(each, sql` and `)})`;
}

export async function listTags(
  ex: Executor,
  caller: Caller,
  p: ListScopeParams & {
    resourcetype?: string | undefined;
    resourceid?: string | undefined;
    key?: string | undefined;
    value?: string | undefined;
    customer?: string | undefined;
    keyword?: string | undefined;
  },
  page: Page,
): Promise<{ items: ResponseObject[]; count: number }> {
  const scope = await resolveListScope(ex, caller, p);
  let q = applyListScope(tagQuery(ex), caller, scope, {
    accountColumn: 't.account_id',
    domainColumn: 't.domain_id',
  });
  if (p.resourcetype !== undefined) q = q.where('t.resource_type', '=', resourceType(p.resourcetype));
  if (p.resourceid !== undefined) q = q.where('t.resource_uuid', '=', p.resourceid.toLowerCase());
  if (p.key !== undefined) q = q.where('t.key', '=', p.key);
  if (p.value !== undefined) q = q.where('t.value', '=', p.value);
  if (p.customer !== undefined) q = q.where('t.customer', '=', p.customer);
  if (p.keyword !== undefined) q = q.where(keywordMatch(['t.key', 't.value'], p.keyword));
  const { rows, total } = await pageOfQuery(q, page, (x) => x.orderBy('t.id'));
  return { items: rows.map(tagResponse), count: total };
}
