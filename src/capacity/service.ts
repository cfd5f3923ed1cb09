/**
 * listCapacity for the network capacity types (4 public IPs, 5 pod/private IPs, 7 VLANs, 8 direct-attached
 * IPs, 10 IPv6 subnets). Totals come from range bounds (arithmetic on a handful of rows); used counts are one
 * COUNT over an index per zone and type. Nothing enumerates addresses, so the figures are exact and cheap.
 */
import type { NetCtx } from '../infrastructure/context.js';
import { pageWindow, requireRootAdmin } from '../infrastructure/context.js';
import { podRange } from '../infrastructure/zones.js';
import { zoneIpv6Subnets } from '../infrastructure/guest-ipv6-prefixes.js';
import { ip6RangeOf, rangeOf } from '../infrastructure/vlan-ip-ranges.js';
import { podScope, publicScope } from '../infrastructure/scopes.js';
import { rangeSize } from '../ipam/range.js';
import { notFound } from '../infrastructure/context.js';

export const CAPACITY_TYPES = {
  4: 'VIRTUAL_NETWORK_PUBLIC_IP',
  5: 'PRIVATE_IP',
  7: 'VLAN',
  8: 'DIRECT_ATTACHED_PUBLIC_IP',
  10: 'VIRTUAL_NETWORK_IPV6_SUBNET',
} as const;
export type CapacityType = keyof typeof CAPACITY_TYPES;

export interface CapacityFigure {
  type: CapacityType;
  zoneId: number;
  zoneUuid: string;
  zoneName: string;
  podUuid?: string;
  podName?: string;
  total: bigint;
  used: number;
}

/** CloudStack prints percentused with at most two decimals ("12.5", "0"). */
export const percentUsed = (used: number, total: bigint): string =>
  total === 0n ? '0' : String(Math.round((used / Number(total)) * 10000) / 100);

export async function zoneCapacity(
  ctx: NetCtx,
  zone: { id: number; uuid: string; name: string },
  types: readonly CapacityType[],
): Promise<CapacityFigure[]> {
  const tx = ctx.tx;
  const out: CapacityFigure[] = [];
  const base = { zoneId: zone.id, zoneUuid: zone.uuid, zoneName: zone.name };
  const ranges = types.some((t) => t === 4 || t === 8)
    ? await tx
        .selectFrom('public_ip_ranges')
        .selectAll()
        .where('zone_id', '=', zone.id)
        .where('removed', 'is', null)
        .execute()
    : [];
  for (const type of types) {
    if (type === 4) {
      let total = 0n;
      for (const r of ranges) {
        const rr = r.vlan_type === 'VirtualNetwork' ? rangeOf(r) : undefined;
        if (rr) total += rangeSize(rr);
      }
      const { n } = await tx
        .selectFrom('ip_allocations')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('scope', '=', publicScope(zone.id))
        .executeTakeFirstOrThrow();
      out.push({ ...base, type, total, used: Number(n) });
    } else if (type === 8) {
      const direct = ranges.filter((r) => r.vlan_type === 'DirectAttached');
      let total = 0n;
      for (const r of direct) {
        const rr = rangeOf(r) ?? ip6RangeOf(r);
        if (rr && rr.family === 4) total += rangeSize(rr);
      }
      let used = 0;
      if (direct.length) {
        const { n } = await tx
          .selectFrom('ip_allocations')
          .select((eb) => eb.fn.countAll().as('n'))
          .where(
            'range_id',
            'in',
            direct.map((r) => r.id),
          )
          .executeTakeFirstOrThrow();
        used = Number(n);
      }
      out.push({ ...base, type, total, used });
    } else if (type === 5) {
      const pods = await tx
        .selectFrom('pods')
        .selectAll()
        .where('zone_id', '=', zone.id)
        .where('removed', 'is', null)
        .execute();
      let total = 0n;
      for (const pod of pods) {
        const r = podRange(pod);
        if (r) total += rangeSize(r);
      }
      let used = 0;
      if (pods.length) {
        const { n } = await tx
          .selectFrom('ip_allocations')
          .select((eb) => eb.fn.countAll().as('n'))
          .where(
            'scope',
            'in',
            pods.map((p) => podScope(p.id)),
          )
          .executeTakeFirstOrThrow();
        used = Number(n);
      }
      out.push({ ...base, type, total, used });
    } else if (type === 7) {
      const spans = await tx
        .selectFrom('vnet_ranges')
        .innerJoin('physical_networks', 'physical_networks.id', 'vnet_ranges.physical_network_id')
        .select(['vnet_ranges.vnet_start', 'vnet_ranges.vnet_end'])
        .where('physical_networks.zone_id', '=', zone.id)
        .where('physical_networks.removed', 'is', null)
        .execute();
      const total = spans.reduce((s, r) => s + BigInt(r.vnet_end - r.vnet_start + 1), 0n);
      const { n } = await tx
        .selectFrom('vnet_allocations')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('zone_id', '=', zone.id)
        .executeTakeFirstOrThrow();
      out.push({ ...base, type, total, used: Number(n) });
    } else if (type === 10) {
      // The /64s of the zone's guest IPv6 prefixes and those networks hold.
      const { used, total } = await zoneIpv6Subnets(tx, zone.id);
      out.push({ ...base, type, total, used });
    }
  }
  return out;
}

export async function listCapacity(
  ctx: NetCtx,
  p: {
    zoneid?: string | undefined;
    podid?: string | undefined;
    type?: number | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
    sortby?: string | undefined;
  },
): Promise<{ count: number; items: CapacityFigure[] }> {
  requireRootAdmin(ctx.caller, 'listCapacity');
  let zq = ctx.tx.selectFrom('zones').select(['id', 'uuid', 'name']).where('removed', 'is', null);
  if (p.zoneid) zq = zq.where('uuid', '=', p.zoneid);
  const zones = await zq.orderBy('id').execute();
  if (p.zoneid && zones.length === 0) throw notFound('zoneid', p.zoneid, 'zone');
  const all = Object.keys(CAPACITY_TYPES).map(Number) as CapacityType[];
  const types = p.type === undefined ? all : all.filter((t) => t === p.type);
  const figures: CapacityFigure[] = [];
  for (const z of zones) figures.push(...(await zoneCapacity(ctx, z, types)));
  if (p.sortby === 'usage')
    figures.sort((a, b) => Number(percentUsed(b.used, b.total)) - Number(percentUsed(a.used, a.total)));
  const { limit, offset } = pageWindow(p);
  return {
    count: figures.length,
    items: figures.slice(offset, limit === undefined ? undefined : offset + limit),
  };
}

export function capacityResponse(f: CapacityFigure): Record<string, unknown> {
  return {
    type: f.type,
    name: CAPACITY_TYPES[f.type],
    zoneid: f.zoneUuid,
    zonename: f.zoneName,
    podid: f.podUuid,
    podname: f.podName,
    capacitytotal: Number(f.total),
    capacityused: f.used,
    capacityallocated: f.used,
    percentused: percentUsed(f.used, f.total),
  };
}
