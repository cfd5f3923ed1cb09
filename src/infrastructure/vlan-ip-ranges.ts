/**
 * Public IP ranges (CloudStack's "VLAN IP ranges", table `vlan`): createVlanIpRange / listVlanIpRanges /
 * deleteVlanIpRange / dedicatePublicIpRange / releasePublicIpRange. A range is only its bounds: addresses get
 * a row in ip_allocations when they leave Free, so a /8 range costs one row.
 */
import { displayPath } from '../accounts/repository.js';
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import { formatIp, parseIpOf, valueKey } from '../ipam/address.js';
import type { Cidr } from '../ipam/cidr.js';
import {
  cidrContains,
  cidrFromGatewayAndNetmask,
  formatCidr,
  netmaskToPrefix,
  parseCidr,
  prefixToNetmask,
} from '../ipam/cidr.js';
import type { IpRange } from '../ipam/range.js';
import { checkRangeInsideCidr, formatRange, parseRange } from '../ipam/range.js';
import type { NetDatabase, NetExecutor as Executor } from '../networks/tables.js';
import type { Listed, NetCtx } from './context.js';
import { notFound, pageWindow, requireRootAdmin } from './context.js';
import type { Owner } from './owners.js';
import { domainsByIds, ownerFields, ownerNames, resolveOwner } from './owners.js';
import { noPhysicalNetwork, physicalNetworkByUuid, physicalNetworkFor } from './physical-networks.js';
import { checkRangeConflicts } from './range-conflicts.js';
import { parseVlanTag } from './vnet-ranges.js';
import { zoneByUuid } from './zones.js';

import type { RangeRow } from './range-rows.js';
import { ip6RangeOf, rangeByUuid, rangeOf, vlanTagText } from './range-rows.js';

export type { RangeRow };
export { ip6RangeOf, rangeByUuid, rangeOf, vlanTagText };

export interface CreateVlanIpRangeParams {
  zoneid?: string | undefined;
  podid?: string | undefined;
  physicalnetworkid?: string | undefined;
  networkid?: string | undefined;
  vlan?: string | undefined;
  gateway?: string | undefined;
  netmask?: string | undefined;
  startip?: string | undefined;
  endip?: string | undefined;
  forvirtualnetwork?: boolean | undefined;
  forsystemvms?: boolean | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  ip6gateway?: string | undefined;
  ip6cidr?: string | undefined;
  startipv6?: string | undefined;
  endipv6?: string | undefined;
}

export async function createVlanIpRange(ctx: NetCtx, p: CreateVlanIpRangeParams): Promise<RangeRow> {
  requireRootAdmin(ctx.caller, 'createVlanIpRange');
  const tx = ctx.tx;
  // Which zone, network and physical network the range belongs to.
  let network: Selectable<NetDatabase['networks']> | undefined;
  if (p.networkid) {
    network = await tx
      .selectFrom('networks')
      .selectAll()
      .where('uuid', '=', p.networkid)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!network) throw notFound('networkid', p.networkid, 'network');
    if (network.type !== 'Shared') {
      throw invalidParameter(
        'networkid',
        p.networkid,
        `network '${network.name}' is ${network.type}; only Shared networks take IP ranges`,
      );
    }
  }
  const forVirtualNetwork = p.forvirtualnetwork ?? network === undefined;
  if (forVirtualNetwork && network) {
    throw invalidParameter(
      'forvirtualnetwork',
      'true',
      'a range added to a shared network (networkid) is DirectAttached: forvirtualnetwork must be false',
    );
  }
  let zone;
  if (p.zoneid) zone = await zoneByUuid(tx, p.zoneid);
  else if (network)
    zone = await tx
      .selectFrom('zones')
      .selectAll()
      .where('id', '=', network.zone_id)
      .executeTakeFirstOrThrow();
  else if (p.physicalnetworkid) {
    const pn = await physicalNetworkByUuid(tx, p.physicalnetworkid);
    zone = await tx.selectFrom('zones').selectAll().where('id', '=', pn.zone_id).executeTakeFirstOrThrow();
  } else if (p.podid) {
    const pod = await tx.selectFrom('pods').select('zone_id').where('uuid', '=', p.podid).executeTakeFirst();
    if (!pod) throw notFound('podid', p.podid, 'pod');
    zone = await tx.selectFrom('zones').selectAll().where('id', '=', pod.zone_id).executeTakeFirstOrThrow();
  } else {
    throw new CloudStackError(
      'InvalidParameterValue',
      'Unable to execute API command createVlanIpRange due to missing parameter zoneid',
    );
  }
  if (network && network.zone_id !== zone.id) {
    throw invalidParameter('zoneid', p.zoneid ?? '', `network '${network.name}' is in another zone`);
  }
  const pn = p.physicalnetworkid
    ? await physicalNetworkByUuid(tx, p.physicalnetworkid)
    : network?.physical_network_id
      ? await tx
          .selectFrom('physical_networks')
          .selectAll()
          .where('id', '=', network.physical_network_id)
          .executeTakeFirstOrThrow()
      : await physicalNetworkFor(tx, zone.id, forVirtualNetwork ? 'Public' : 'Guest');
  if (!pn) throw noPhysicalNetwork(zone.name);
  if (pn.zone_id !== zone.id)
    throw invalidParameter(
      'physicalnetworkid',
      pn.uuid,
      `physical network '${pn.name}' is not in zone '${zone.name}'`,
    );

  // The VLAN tag: given, or the shared network's own.
  let tag: number | 'untagged' = p.vlan !== undefined && p.vlan !== '' ? parseVlanTag(p.vlan) : 'untagged';
  if (network && network.vnet !== null) {
    if (p.vlan !== undefined && p.vlan !== '' && tag !== network.vnet) {
      throw invalidParameter('vlan', p.vlan, `network '${network.name}' is on VLAN ${network.vnet}`);
    }
    tag = network.vnet;
  }

  // IPv4 part.
  let v4: { cidr: Cidr; range: IpRange; gateway: string; netmask: string } | undefined;
  const gatewayText = p.gateway ?? network?.gateway ?? undefined;
  const netmaskText = p.netmask ?? network?.netmask ?? undefined;
  if (p.startip !== undefined) {
    if (!gatewayText)
      throw new CloudStackError(
        'InvalidParameterValue',
        'Unable to execute API command createVlanIpRange due to missing parameter gateway',
      );
    if (!netmaskText)
      throw new CloudStackError(
        'InvalidParameterValue',
        'Unable to execute API command createVlanIpRange due to missing parameter netmask',
      );
    const cidr = cidrFromGatewayAndNetmask(gatewayText, netmaskText);
    const range = parseRange(p.startip, p.endip ?? p.startip);
    if (range.family !== 4)
      throw invalidParameter('startip', p.startip, 'startip/endip are IPv4; use startipv6/endipv6 for IPv6');
    checkRangeInsideCidr(range, cidr, 'startip');
    const gw = parseIpOf(4, gatewayText, 'gateway');
    if (gw.value >= range.start && gw.value <= range.end) {
      throw invalidParameter(
        'gateway',
        gatewayText,
        `the gateway lies inside the range ${formatRange(range)}`,
      );
    }
    if (
      range.start === cidr.network ||
      range.end === (cidr.network | ((1n << BigInt(32 - cidr.prefix)) - 1n))
    ) {
      if (cidr.prefix < 31) {
        throw invalidParameter(
          'startip',
          formatRange(range),
          `the range includes the network or broadcast address of ${formatCidr(cidr)}`,
        );
      }
    }
    v4 = { cidr, range, gateway: formatIp(gw), netmask: prefixToNetmask(netmaskToPrefix(netmaskText)) };
  } else if (p.endip !== undefined) {
    throw new CloudStackError(
      'InvalidParameterValue',
      'Unable to execute API command createVlanIpRange due to missing parameter startip',
    );
  }
  // IPv6 part (NetworkModel.checkIp6Parameters, and a /64 for anything but a shared network's range).
  let v6: { cidr: Cidr; range: IpRange | undefined; gateway: string } | undefined;
  if (
    p.ip6cidr !== undefined ||
    p.ip6gateway !== undefined ||
    p.startipv6 !== undefined ||
    p.endipv6 !== undefined
  ) {
    if (!p.ip6cidr || !p.ip6gateway) {
      throw new CloudStackError(
        'InvalidParameterValue',
        'ip6gateway and ip6cidr must be given together for an IPv6 range',
      );
    }
    const cidr = parseCidr(p.ip6cidr, 'ip6cidr', { family: 6 });
    if (!network && cidr.prefix !== 64) {
      throw invalidParameter(
        'ip6cidr',
        p.ip6cidr,
        'the cidr size of an IPv6 public range must be 64 bits (a /64: hosts configure themselves by SLAAC)',
      );
    }
    const gw = parseIpOf(6, p.ip6gateway, 'ip6gateway');
    if (!cidrContains(cidr, gw))
      throw invalidParameter('ip6gateway', p.ip6gateway, `the gateway is not inside ${formatCidr(cidr)}`);
    if (p.endipv6 && !p.startipv6) {
      throw new CloudStackError(
        'InvalidParameterValue',
        'Unable to execute API command createVlanIpRange due to missing parameter startipv6',
      );
    }
    let range: IpRange | undefined;
    if (p.startipv6) {
      range = parseRange(p.startipv6, p.endipv6 ?? p.startipv6, ['startipv6', 'endipv6']);
      checkRangeInsideCidr(range, cidr, 'startipv6');
    }
    v6 = { cidr, range, gateway: formatIp(gw) };
  }
  if (!v4 && !v6) {
    throw new CloudStackError(
      'InvalidParameterValue',
      'Unable to execute API command createVlanIpRange due to missing parameter startip (or ip6cidr for IPv6)',
    );
  }
  await checkRangeConflicts(tx, zone.id, { tag, networkId: network?.id ?? null, v4, v6 });

  let owner: Owner | undefined;
  if (p.account !== undefined || p.domainid !== undefined) {
    if (!forVirtualNetwork)
      throw invalidParameter(
        'account',
        p.account ?? '',
        'only public (forvirtualnetwork) ranges can be dedicated',
      );
    if (p.account !== undefined)
      owner = await resolveOwner(tx, ctx.caller, { account: p.account, domainid: p.domainid });
  }
  let domainOnly: number | null = null;
  if (!owner && p.domainid !== undefined) {
    const d = await tx.selectFrom('domains').select('id').where('uuid', '=', p.domainid).executeTakeFirst();
    if (!d) throw notFound('domainid', p.domainid, 'domain');
    domainOnly = d.id;
  }

  const uuid = randomUUID();
  await tx
    .insertInto('public_ip_ranges')
    .values({
      uuid,
      zone_id: zone.id,
      physical_network_id: pn.id,
      vlan_tag: vlanTagText(tag),
      gateway: v4?.gateway ?? null,
      netmask: v4?.netmask ?? null,
      family: v4 ? 4 : 6,
      start_key: v4 ? valueKey(v4.range.start) : null,
      end_key: v4 ? valueKey(v4.range.end) : null,
      ip6_gateway: v6?.gateway ?? null,
      ip6_cidr: v6 ? formatCidr(v6.cidr) : null,
      ip6_start_key: v6?.range ? valueKey(v6.range.start) : null,
      ip6_end_key: v6?.range ? valueKey(v6.range.end) : null,
      vlan_type: forVirtualNetwork ? 'VirtualNetwork' : 'DirectAttached',
      network_id: network?.id ?? null,
      account_id: owner?.accountId ?? null,
      domain_id: owner?.domainId ?? domainOnly,
      for_system_vms: p.forsystemvms ? 1 : 0,
      created: ctx.now,
      removed: null,
    })
    .execute();
  const row = await rangeByUuid(tx, uuid);
  await ctx.recorder.event(tx, {
    type: 'VLAN.IP.RANGE.CREATE',
    description: `Creating VLAN IP range ${v4 ? formatRange(v4.range) : formatCidr(v6!.cidr)} (${vlanTagText(tag)}) in zone ${zone.name}`,
    resourceType: 'VlanIpRange',
    resourceId: uuid,
    owner: ctx.caller,
  });
  return row;
}

export interface ListVlanIpRangesParams {
  id?: string | undefined;
  zoneid?: string | undefined;
  podid?: string | undefined;
  physicalnetworkid?: string | undefined;
  networkid?: string | undefined;
  vlan?: string | undefined;
  forvirtualnetwork?: boolean | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  keyword?: string | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

export async function listVlanIpRanges(ctx: NetCtx, p: ListVlanIpRangesParams): Promise<Listed<RangeRow>> {
  requireRootAdmin(ctx.caller, 'listVlanIpRanges');
  const tx = ctx.tx;
  let q = tx.selectFrom('public_ip_ranges').where('public_ip_ranges.removed', 'is', null);
  if (p.id) q = q.where('public_ip_ranges.uuid', '=', p.id);
  if (p.zoneid) q = q.where('zone_id', '=', (await zoneByUuid(tx, p.zoneid)).id);
  if (p.physicalnetworkid)
    q = q.where('physical_network_id', '=', (await physicalNetworkByUuid(tx, p.physicalnetworkid)).id);
  if (p.networkid) {
    const n = await tx.selectFrom('networks').select('id').where('uuid', '=', p.networkid).executeTakeFirst();
    q = q.where('network_id', '=', n?.id ?? -1);
  }
  if (p.vlan) q = q.where('vlan_tag', '=', vlanTagText(parseVlanTag(p.vlan)));
  if (p.keyword) q = q.where('vlan_tag', 'like', `%${p.keyword}%`);
  if (p.forvirtualnetwork !== undefined)
    q = q.where('vlan_type', '=', p.forvirtualnetwork ? 'VirtualNetwork' : 'DirectAttached');
  if (p.account !== undefined || p.domainid !== undefined) {
    const owner = p.account !== undefined ? await resolveOwner(tx, ctx.caller, p) : undefined;
    if (owner) q = q.where('public_ip_ranges.account_id', '=', owner.accountId);
    else if (p.domainid) {
      const d = await tx.selectFrom('domains').select('id').where('uuid', '=', p.domainid).executeTakeFirst();
      q = q.where('public_ip_ranges.domain_id', '=', d?.id ?? -1);
    }
  }
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll().orderBy('public_ip_ranges.id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await rq.execute() };
}

async function inUse(db: Executor, rangeId: number): Promise<number> {
  const r = await db
    .selectFrom('ip_allocations')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('range_id', '=', rangeId)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

export async function deleteVlanIpRange(ctx: NetCtx, p: { id: string }): Promise<void> {
  requireRootAdmin(ctx.caller, 'deleteVlanIpRange');
  const range = await rangeByUuid(ctx.tx, p.id);
  const used = await inUse(ctx.tx, range.id);
  if (used > 0) {
    const r = rangeOf(range) ?? ip6RangeOf(range);
    throw invalidParameter(
      'id',
      p.id,
      `range ${r ? formatRange(r) : range.uuid} has ${used} address${used === 1 ? '' : 'es'} in use; release them before deleting the range`,
    );
  }
  await ctx.tx.updateTable('public_ip_ranges').set({ removed: ctx.now }).where('id', '=', range.id).execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'VLAN.IP.RANGE.DELETE',
    description: `Deleting VLAN IP range ${range.uuid}`,
    resourceType: 'VlanIpRange',
    resourceId: range.uuid,
    owner: ctx.caller,
  });
}

export async function dedicatePublicIpRange(
  ctx: NetCtx,
  p: { id: string; domainid: string; account?: string | undefined },
): Promise<RangeRow> {
  requireRootAdmin(ctx.caller, 'dedicatePublicIpRange');
  const range = await rangeByUuid(ctx.tx, p.id);
  if (range.vlan_type !== 'VirtualNetwork')
    throw invalidParameter('id', p.id, 'only public (VirtualNetwork) ranges can be dedicated');
  if (range.account_id !== null || range.domain_id !== null) {
    throw invalidParameter(
      'id',
      p.id,
      'the range is already dedicated; release it first (releasePublicIpRange)',
    );
  }
  let accountId: number | null = null;
  let domainId: number;
  if (p.account !== undefined) {
    const owner = await resolveOwner(ctx.tx, ctx.caller, { account: p.account, domainid: p.domainid });
    accountId = owner.accountId;
    domainId = owner.domainId;
  } else {
    const d = await ctx.tx
      .selectFrom('domains')
      .select('id')
      .where('uuid', '=', p.domainid)
      .executeTakeFirst();
    if (!d) throw notFound('domainid', p.domainid, 'domain');
    domainId = d.id;
  }
  // CloudStack refuses when an address of the range is held by somebody else.
  let q = ctx.tx.selectFrom('ip_allocations').select('account_id').where('range_id', '=', range.id);
  q = accountId !== null ? q.where('account_id', '!=', accountId) : q.where('domain_id', '!=', domainId);
  const other = await q.limit(1).executeTakeFirst();
  if (other) {
    throw invalidParameter(
      'id',
      p.id,
      'an address of the range is allocated to another account; release it before dedicating',
    );
  }
  await ctx.tx
    .updateTable('public_ip_ranges')
    .set({ account_id: accountId, domain_id: domainId })
    .where('id', '=', range.id)
    .execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'VLAN.IP.RANGE.DEDICATE',
    description: `VLAN IP range ${range.uuid} dedicated`,
    resourceType: 'VlanIpRange',
    resourceId: range.uuid,
    owner: ctx.caller,
  });
  return rangeByUuid(ctx.tx, p.id);
}

export async function releasePublicIpRange(ctx: NetCtx, p: { id: string }): Promise<void> {
  requireRootAdmin(ctx.caller, 'releasePublicIpRange');
  const range = await rangeByUuid(ctx.tx, p.id);
  if (range.account_id === null && range.domain_id === null)
    throw invalidParameter('id', p.id, 'the range is not dedicated');
  await ctx.tx
    .updateTable('public_ip_ranges')
    .set({ account_id: null, domain_id: null })
    .where('id', '=', range.id)
    .execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'VLAN.IP.RANGE.RELEASE',
    description: `VLAN IP range ${range.uuid} released`,
    resourceType: 'VlanIpRange',
    resourceId: range.uuid,
    owner: ctx.caller,
  });
}

/** Response objects for many ranges (one query each for zones, networks, physical networks and owners). */
export async function rangeResponses(
  db: Executor,
  rows: readonly RangeRow[],
): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  const zoneIds = [...new Set(rows.map((r) => r.zone_id))];
  const zones = new Map(
    (await db.selectFrom('zones').select(['id', 'uuid']).where('id', 'in', zoneIds).execute()).map((z) => [
      z.id,
      z.uuid,
    ]),
  );
  const pnIds = [...new Set(rows.map((r) => r.physical_network_id).filter((x): x is number => x !== null))];
  const pns = new Map(
    pnIds.length
      ? (
          await db.selectFrom('physical_networks').select(['id', 'uuid']).where('id', 'in', pnIds).execute()
        ).map((x) => [x.id, x.uuid])
      : [],
  );
  const netIds = [...new Set(rows.map((r) => r.network_id).filter((x): x is number => x !== null))];
  const nets = new Map(
    netIds.length
      ? (await db.selectFrom('networks').select(['id', 'uuid']).where('id', 'in', netIds).execute()).map(
          (x) => [x.id, x.uuid],
        )
      : [],
  );
  const owners = await ownerNames(
    db,
    rows.map((r) => r.account_id),
  );
  const doms = await domainsByIds(
    db,
    rows.map((r) => (r.account_id === null ? r.domain_id : null)),
  );
  return rows.map((r) => {
    const v4 = rangeOf(r);
    const v6 = ip6RangeOf(r);
    const dom = r.account_id === null && r.domain_id !== null ? doms.get(r.domain_id) : undefined;
    return {
      id: r.uuid,
      forvirtualnetwork: r.vlan_type === 'VirtualNetwork',
      zoneid: zones.get(r.zone_id),
      vlan: r.vlan_tag,
      ...ownerFields(r.account_id !== null ? owners.get(r.account_id) : undefined),
      ...(dom ? { domainid: dom.uuid, domain: dom.name, domainpath: displayPath(dom.path) } : {}),
      gateway: r.gateway ?? undefined,
      netmask: r.netmask ?? undefined,
      cidr: r.gateway && r.netmask ? formatCidr(cidrFromGatewayAndNetmask(r.gateway, r.netmask)) : undefined,
      startip: v4 ? formatIp({ family: 4, value: v4.start }) : undefined,
      endip: v4 ? formatIp({ family: 4, value: v4.end }) : undefined,
      networkid: r.network_id !== null ? nets.get(r.network_id) : undefined,
      physicalnetworkid: r.physical_network_id !== null ? pns.get(r.physical_network_id) : undefined,
      ip6gateway: r.ip6_gateway ?? undefined,
      ip6cidr: r.ip6_cidr ?? undefined,
      startipv6: v6 ? formatIp({ family: 6, value: v6.start }) : undefined,
      endipv6: v6 ? formatIp({ family: 6, value: v6.end }) : undefined,
      forsystemvms: r.for_system_vms === 1,
    };
  });
}
