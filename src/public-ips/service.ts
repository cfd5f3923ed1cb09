/**
 * Public and portable IPs: the address's state lives only in its ip_allocations row (scope `pub:<zone>` or
 * `portable:<region>`), taken through src/addresses. Every assign/release writes NET.IPASSIGN/NET.IPRELEASE
 * (PORTABLE.* for portable IPs) and a usage record in the caller's transaction.
 *
 * This file is what other services call (network implement, VPCs, rules, load balancers) and what the API paths
 * share: releasePublicIp, publicIpByUuid, the account limit and the range pools. Assignment (assignPublicIp,
 * finishAssign) is assign.ts; the API's association associate.ts, portable IPs portable-ips.ts, reserve/release
 * reserve.ts.
 */
import { removeTagsOf } from '../tags/service.js';
import { removeRulesOf } from '../rules/repository.js';
import { removeLbChildrenOf } from '../lb/repository.js';
import type { Selectable } from 'kysely';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import type { Family } from '../ipam/address.js';
import { addressFromKey, formatIp } from '../ipam/address.js';
import { RangeSet } from '../ipam/range.js';
import type { IpRange } from '../ipam/range.js';
import type { Executor as PlainExecutor, Tx } from '../store/db.js';
import type { NetCtx } from '../infrastructure/context.js';
import { noSuchEntity } from '../infrastructure/context.js';
import type { Owner } from '../infrastructure/owners.js';
import { ownerById } from '../infrastructure/owners.js';
import { rangeOf } from '../infrastructure/vlan-ip-ranges.js';
import type { RangeRow } from '../infrastructure/vlan-ip-ranges.js';
import type { NetDatabase, NetExecutor as Executor } from '../networks/tables.js';
import { decodePublicIpUuid } from './ids.js';
import { bumpPublicIpRouters } from '../routers/repository.js';
import { preparedQuery } from '../store/prepared.js';
import { recordEventAndUsage } from '../events/record.js';

export type IpRow = Selectable<NetDatabase['ip_allocations']>;

/** The owner finishAssign loaded for a row it returns: the answer rendered from it need not read it again. */
export const knownOwners = new WeakMap<IpRow, Owner>();

/** src/addresses takes the store's own typing of the same transaction. */
export const plain = (ctx: NetCtx): PlainExecutor => ctx.tx as unknown as PlainExecutor;

/** The one region stacknet has (CloudStack's default region id). */
export const REGION_ID = 1;

export const isPortableRow = (r: Pick<IpRow, 'scope'>): boolean => r.scope.startsWith('portable:');

// The statements of associateIpAddress's request and job, prepared (src/store/prepared.ts): the hot path.
const ipByUuid = preparedQuery((db: Executor, uuid: string) =>
  db.selectFrom('ip_allocations').selectAll().where('uuid', '=', uuid).where('owner_kind', '=', 'publicip'),
);
const rangesOfZone = preparedQuery((db: Executor, zoneId: number) =>
  db
    .selectFrom('public_ip_ranges')
    .selectAll()
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .where('vlan_type', '=', 'VirtualNetwork')
    .where('family', '=', 4)
    .where('for_system_vms', '=', 0)
    .orderBy('id'),
);
export async function publicIpByUuid(db: Executor, uuid: string, param = 'id'): Promise<IpRow> {
  const row = await ipByUuid.first(db, uuid);
  if (!row) {
    const d = decodePublicIpUuid(uuid);
    throw noSuchEntity(
      param,
      uuid,
      d ? 'the address is not allocated (it is Free)' : 'no public IP address has this id',
    );
  }
  return row;
}

export async function zoneRanges(db: Executor, zoneId: number): Promise<RangeRow[]> {
  return rangesOfZone.rows(db, zoneId);
}

interface Pools {
  dedicated: { set: RangeSet; ranges: { id: number; range: IpRange }[] };
  system: { set: RangeSet; ranges: { id: number; range: IpRange }[] };
}

/** Dedicated ranges of the owner's account (or its domain) come first; the undedicated ones are the system pool. */
export function poolsFor(ranges: readonly RangeRow[], owner: Owner): Pools {
  const ded: { id: number; range: IpRange }[] = [];
  const sys: { id: number; range: IpRange }[] = [];
  for (const r of ranges) {
    const range = rangeOf(r);
    if (!range) continue;
    if (r.account_id === null && r.domain_id === null) sys.push({ id: r.id, range });
    else if (r.account_id === owner.accountId || (r.account_id === null && r.domain_id === owner.domainId)) {
      ded.push({ id: r.id, range });
    }
  }
  const set = (l: { range: IpRange }[]) =>
    l.length ? RangeSet.of(l.map((x) => x.range)) : RangeSet.empty(4);
  return { dedicated: { set: set(ded), ranges: ded }, system: { set: set(sys), ranges: sys } };
}

export const rangeIdOf =
  (ranges: readonly { id: number; range: IpRange }[]) =>
  (value: bigint): number | null =>
    ranges.find((r) => value >= r.range.start && value <= r.range.end)?.id ?? null;

/**
 * CloudStack's account lock around allocateIp: the limit count and the new row must not interleave with
 * another allocation for the same account, or two callers at limit-1 both pass. Only limited accounts pay it.
 */
export async function checkPublicIpLimit(ctx: NetCtx, owner: Owner): Promise<void> {
  if (owner.accountType === 1) return; // root admin accounts are unlimited, as in CloudStack
  const raw = await ctx.setting('max.account.public.ips', { accountId: owner.accountId });
  const limit = raw === undefined ? 20 : Number(raw);
  if (limit < 0) return;
  const tx = ctx.tx;
  // SQLite transactions already hold the write lock (BEGIN IMMEDIATE).
  if (!(await isSqlite(tx))) {
    await tx.selectFrom('accounts').select('id').where('id', '=', owner.accountId).forUpdate().execute();
  }
  const { n } = await tx
    .selectFrom('ip_allocations')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('account_id', '=', owner.accountId)
    .where('owner_kind', '=', 'publicip')
    .executeTakeFirstOrThrow();
  if (Number(n) + 1 > limit) {
    throw new CloudStackError(
      'AccountLimitExceeded',
      `Maximum number of resources of type 'public_ip' for account '${owner.accountName}' in domain '${owner.domainPath}' is exceeded: limit ${limit} (max.account.public.ips), in use ${Number(n)}, requested 1`,
    );
  }
}

const dialectCache = new WeakMap<object, boolean>();
async function isSqlite(tx: Executor): Promise<boolean> {
  const adapter = tx.getExecutor().adapter;
  let v = dialectCache.get(adapter);
  if (v === undefined) {
    v = adapter.constructor.name.toLowerCase().includes('sqlite');
    dialectCache.set(adapter, v);
  }
  return v;
}

/** Allocated → Releasing → Free, with NET.IPRELEASE (PORTABLE.IPRELEASE) and a usage record. */
export async function releasePublicIp(ctx: NetCtx, row: IpRow): Promise<void> {
  const owner = row.account_id !== null ? await ownerById(ctx.tx, row.account_id) : undefined;
  const ip = formatIp(addressFromKey(row.family as Family, row.address));
  const marked = await ctx.tx
    .updateTable('ip_allocations')
    .set({ state: 'Releasing', updated: ctx.now })
    .where('id', '=', row.id)
    .where('state', 'in', ['Allocating', 'Allocated'])
    .executeTakeFirst();
  if (Number(marked.numUpdatedRows) !== 1) {
    throw invalidParameter(
      'id',
      row.uuid ?? ip,
      `the address ${ip} is ${row.state}, it cannot be released now`,
    );
  }
  await removeTagsOf(plain(ctx), 'PublicIpAddress', row.id);
  // Its port forwards and firewall rules go with it (CloudStack's cleanupIpResources), with their events.
  await removeLbChildrenOf(ctx, 'ip_allocation_id', row.id);
  await removeRulesOf(ctx, 'ip_allocation_id', row.id);
  await bumpPublicIpRouters(plain(ctx), row);
  const portable = isPortableRow(row);
  if (owner) {
    const type = portable ? 'PORTABLE.IPRELEASE' : 'NET.IPRELEASE';
    await recordEventAndUsage(
      ctx.tx as unknown as Tx,
      {
        type,
        description: `${portable ? 'Portable ' : ''}IP address ${ip} released by account ${owner.accountName}`,
        actor: ctx.caller,
        resourceType: 'IpAddress',
        resourceId: row.uuid ?? undefined,
        owner: owner,
      },
      {
        type,
        accountId: owner.accountId,
        domainId: owner.domainId,
        zoneId: row.zone_id ?? undefined,
        resourceId: row.id,
        resourceUuid: row.uuid ?? undefined,
        resourceName: ip,
        resourceType: 'VirtualNetwork',
      },
    );
  }
  await ctx.tx
    .deleteFrom('ip_allocations')
    .where('id', '=', row.id)
    .where('state', '=', 'Releasing')
    .execute();
}
