/**
 * Dedicated guest VLAN ranges (CloudStack's account_guest_vlan_map): dedicateGuestVlanRange /
 * listDedicatedGuestVlanRanges / releaseDedicatedGuestVlanRange, and the VLANs a network may take
 * (`vnetCandidates`): its account's dedicated spans first, then the spans nobody has dedicated — other
 * accounts never get a dedicated VLAN.
 */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { pageFrom, pageOfQuery } from '../api/list.js';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import type { NetDatabase, NetExecutor as Executor } from '../networks/tables.js';
import type { Listed, NetCtx } from './context.js';
import { notFound, requireRootAdmin } from './context.js';
import type { Owner } from './owners.js';
import { ownerFields, ownerNames, resolveOwner } from './owners.js';
import { physicalNetworkByUuid, vnetSpansOf } from './physical-networks.js';
import type { VnetSpan } from './vnet-ranges.js';
import { formatSpan, intersectSpans, parseDedicatedSpan, subtractSpans } from './vnet-ranges.js';
import { zoneByUuid } from './zones.js';

export type DedicatedVlanRow = Selectable<NetDatabase['dedicated_guest_vlan_ranges']>;

const spanOf = (r: Pick<DedicatedVlanRow, 'vnet_start' | 'vnet_end'>): VnetSpan => ({
  start: r.vnet_start,
  end: r.vnet_end,
});

/** CloudStack writes a dedicated range as `start-end` even for one VLAN. */
const rangeText = (s: VnetSpan): string => `${s.start}-${s.end}`;

async function dedicationsOf(db: Executor, physicalNetworkId: number): Promise<DedicatedVlanRow[]> {
  return db
    .selectFrom('dedicated_guest_vlan_ranges')
    .selectAll()
    .where('physical_network_id', '=', physicalNetworkId)
    .orderBy('vnet_start')
    .execute();
}

/** The owner of a dedication: `account`+`domainid`, or a project (stacknet has none, so never found). */
async function dedicationOwner(
  ctx: NetCtx,
  p: { account?: string | undefined; domainid?: string | undefined; projectid?: string | undefined },
): Promise<Owner> {
  if (p.projectid !== undefined) {
    if (p.account !== undefined) {
      throw new CloudStackError('InvalidParameterValue', 'account and projectid are mutually exclusive');
    }
    throw notFound('projectid', p.projectid, 'project');
  }
  if (p.account === undefined || p.domainid === undefined) {
    throw new CloudStackError(
      'InvalidParameterValue',
      'give the account (account and domainid) or the project (projectid) to dedicate the range to',
    );
  }
  return resolveOwner(ctx.tx, ctx.caller, { account: p.account, domainid: p.domainid });
}

export interface DedicateGuestVlanRangeParams {
  vlanrange: string;
  physicalnetworkid: string;
  account?: string | undefined;
  domainid?: string | undefined;
  projectid?: string | undefined;
}

export async function dedicateGuestVlanRange(
  ctx: NetCtx,
  p: DedicateGuestVlanRangeParams,
): Promise<DedicatedVlanRow> {
  requireRootAdmin(ctx.caller, 'dedicateGuestVlanRange');
  const tx = ctx.tx;
  const owner = await dedicationOwner(ctx, p);
  const pn = await physicalNetworkByUuid(tx, p.physicalnetworkid);
  const span = parseDedicatedSpan(p.vlanrange);
  const spans = await vnetSpansOf(tx, pn.id);
  if (!spans.some((s) => span.start >= s.start && span.end <= s.end)) {
    throw invalidParameter(
      'vlanrange',
      p.vlanrange,
      `the range is not inside one of the guest VLAN ranges of physical network '${pn.name}' (${spans.map(formatSpan).join(',') || 'none'})`,
    );
  }
  // VLANs networks of other accounts hold now cannot become this account's.
  const held = await tx
    .selectFrom('vnet_allocations')
    .select(['vnet', 'account_id'])
    .where('physical_network_id', '=', pn.id)
    .where('vnet', '>=', span.start)
    .where('vnet', '<=', span.end)
    .where((eb) => eb.or([eb('account_id', 'is', null), eb('account_id', '!=', owner.accountId)]))
    .orderBy('vnet')
    .executeTakeFirst();
  if (held) {
    throw invalidParameter(
      'vlanrange',
      p.vlanrange,
      `guest VLAN ${held.vnet} of the range is allocated to a different account; only a range whose VLANs are free or held by account '${owner.accountName}' can be dedicated to it`,
    );
  }
  const existing = await dedicationsOf(tx, pn.id);
  const clash = existing.find((d) => span.start <= d.vnet_end && d.vnet_start <= span.end);
  if (clash) {
    throw invalidParameter(
      'vlanrange',
      p.vlanrange,
      `the VLAN range is already dedicated (${rangeText(spanOf(clash))}, id ${clash.uuid}); release it first`,
    );
  }
  // Like CloudStack, a range touching one of the same account's dedications extends it instead of adding a row.
  const left = existing.find((d) => d.account_id === owner.accountId && d.vnet_end === span.start - 1);
  const right = existing.find((d) => d.account_id === owner.accountId && d.vnet_start === span.end + 1);
  let id: string;
  if (left || right) {
    const keep = (left ?? right)!;
    const merged = { start: left?.vnet_start ?? span.start, end: right?.vnet_end ?? span.end };
    if (left && right) {
      await tx.deleteFrom('dedicated_guest_vlan_ranges').where('id', '=', right.id).execute();
    }
    await tx
      .updateTable('dedicated_guest_vlan_ranges')
      .set({ vnet_start: merged.start, vnet_end: merged.end })
      .where('id', '=', keep.id)
      .execute();
    id = keep.uuid;
  } else {
    id = randomUUID();
    await tx
      .insertInto('dedicated_guest_vlan_ranges')
      .values({
        uuid: id,
        physical_network_id: pn.id,
        account_id: owner.accountId,
        vnet_start: span.start,
        vnet_end: span.end,
        created: ctx.now,
      })
      .execute();
  }
  await ctx.recorder.event(tx, {
    type: 'GUEST.VLAN.RANGE.DEDICATE',
    description: `Dedicating guest VLAN range ${rangeText(span)} of physical network ${pn.name} to account ${owner.accountName}`,
    resourceType: 'GuestVlanRange',
    resourceId: id,
    owner,
  });
  return dedicationByUuid(tx, id);
}

async function dedicationByUuid(db: Executor, uuid: string, param = 'id'): Promise<DedicatedVlanRow> {
  const r = await db
    .selectFrom('dedicated_guest_vlan_ranges')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!r) throw notFound(param, uuid, 'dedicated guest VLAN range');
  return r;
}

export interface ListDedicatedGuestVlanRangesParams {
  id?: string | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  projectid?: string | undefined;
  guestvlanrange?: string | undefined;
  physicalnetworkid?: string | undefined;
  zoneid?: string | undefined;
  keyword?: string | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

export async function listDedicatedGuestVlanRanges(
  ctx: NetCtx,
  p: ListDedicatedGuestVlanRangesParams,
): Promise<Listed<DedicatedVlanRow>> {
  requireRootAdmin(ctx.caller, 'listDedicatedGuestVlanRanges');
  const tx = ctx.tx;
  let q = tx
    .selectFrom('dedicated_guest_vlan_ranges')
    .innerJoin(
      'physical_networks',
      'physical_networks.id',
      'dedicated_guest_vlan_ranges.physical_network_id',
    );
  if (p.id) q = q.where('dedicated_guest_vlan_ranges.uuid', '=', p.id);
  if (p.projectid !== undefined) {
    if (p.account !== undefined)
      throw new CloudStackError('InvalidParameterValue', "account and projectid can't be given together");
    throw notFound('projectid', p.projectid, 'project');
  }
  if (p.account !== undefined && p.domainid !== undefined) {
    const owner = await resolveOwner(tx, ctx.caller, { account: p.account, domainid: p.domainid });
    q = q.where('dedicated_guest_vlan_ranges.account_id', '=', owner.accountId);
  }
  if (p.guestvlanrange !== undefined) {
    const s = parseDedicatedSpan(p.guestvlanrange, 'guestvlanrange');
    q = q
      .where('dedicated_guest_vlan_ranges.vnet_start', '=', s.start)
      .where('dedicated_guest_vlan_ranges.vnet_end', '=', s.end);
  }
  if (p.physicalnetworkid) {
    const pn = await physicalNetworkByUuid(tx, p.physicalnetworkid);
    q = q.where('dedicated_guest_vlan_ranges.physical_network_id', '=', pn.id);
  }
  if (p.zoneid) q = q.where('physical_networks.zone_id', '=', (await zoneByUuid(tx, p.zoneid)).id);
  const { rows, total } = await pageOfQuery(
    q.selectAll('dedicated_guest_vlan_ranges'),
    pageFrom(p, 500),
    (x) => x.orderBy('dedicated_guest_vlan_ranges.id'),
  );
  return { count: total, items: rows };
}

export async function releaseDedicatedGuestVlanRange(ctx: NetCtx, p: { id: string }): Promise<void> {
  requireRootAdmin(ctx.caller, 'releaseDedicatedGuestVlanRange');
  const d = await dedicationByUuid(ctx.tx, p.id);
  await ctx.tx.deleteFrom('dedicated_guest_vlan_ranges').where('id', '=', d.id).execute();
  const owner = (await ownerNames(ctx.tx, [d.account_id])).get(d.account_id);
  await ctx.recorder.event(ctx.tx, {
    type: 'GUEST.VLAN.RANGE.RELEASE',
    description: `Releasing dedicated guest VLAN range ${rangeText(spanOf(d))}`,
    resourceType: 'GuestVlanRange',
    resourceId: d.uuid,
    owner: owner ?? ctx.caller,
  });
}

/**
 * GuestVlanRangeResponse. CloudStack fills physicalnetworkid and zoneid with the internal (numeric) ids, not the
 * uuids, and listApis types them `long`: so do we.
 */
export async function dedicatedVlanResponses(
  db: Executor,
  rows: readonly DedicatedVlanRow[],
): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  const owners = await ownerNames(
    db,
    rows.map((r) => r.account_id),
  );
  const pnIds = [...new Set(rows.map((r) => r.physical_network_id))];
  const zoneOf = new Map(
    (
      await db.selectFrom('physical_networks').select(['id', 'zone_id']).where('id', 'in', pnIds).execute()
    ).map((x) => [x.id, x.zone_id]),
  );
  return rows.map((r) => {
    const o = ownerFields(owners.get(r.account_id));
    return {
      id: r.uuid,
      guestvlanrange: rangeText(spanOf(r)),
      account: o.account,
      domainid: o.domainid,
      domain: o.domain,
      physicalnetworkid: Number(r.physical_network_id),
      zoneid: Number(zoneOf.get(r.physical_network_id)),
    };
  });
}

/**
 * The VLAN spans a network of `accountId` may take, in order of preference: the account's own dedicated spans,
 * then (when `useSystemVlans`, CloudStack's use.system.guest.vlans) every span nobody has dedicated.
 */
export async function vnetCandidates(
  db: Executor,
  physicalNetworkId: number,
  accountId: number | null,
  useSystemVlans: boolean,
): Promise<VnetSpan[]> {
  const spans = await vnetSpansOf(db, physicalNetworkId);
  const dedications = await dedicationsOf(db, physicalNetworkId);
  if (dedications.length === 0) return spans;
  const own = dedications.filter((d) => d.account_id === accountId).map(spanOf);
  const free = subtractSpans(spans, dedications.map(spanOf));
  return [...intersectSpans(own, spans), ...(own.length === 0 || useSystemVlans ? free : [])];
}

/** Refuses a VLAN chosen by an admin (createNetwork vlan=) that is dedicated to an account other than `accountId`. */
export async function checkVlanNotDedicatedToOther(
  db: Executor,
  physicalNetworkId: number,
  vnet: number,
  accountId: number | null,
): Promise<void> {
  const d = await db
    .selectFrom('dedicated_guest_vlan_ranges')
    .select(['uuid', 'account_id', 'vnet_start', 'vnet_end'])
    .where('physical_network_id', '=', physicalNetworkId)
    .where('vnet_start', '<=', vnet)
    .where('vnet_end', '>=', vnet)
    .executeTakeFirst();
  if (d && d.account_id !== accountId) {
    throw invalidParameter(
      'vlan',
      String(vnet),
      `VLAN ${vnet} is dedicated to another account (dedicated guest VLAN range ${rangeText(spanOf(d))}, id ${d.uuid})`,
    );
  }
}
