/** Portable IP ranges (region scope): createPortableIpRange / listPortableIpRanges / deletePortableIpRange. */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { invalidParameter } from '../errors/catalogue.js';
import { addressFromKey, formatIp, parseIpOf, valueKey } from '../ipam/address.js';
import { cidrFromGatewayAndNetmask, netmaskToPrefix, prefixToNetmask } from '../ipam/cidr.js';
import type { IpRange } from '../ipam/range.js';
import { checkRangeInsideCidr, formatRange, parseRange, rangesOverlap } from '../ipam/range.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { notFound, pageWindow, requireRootAdmin } from '../infrastructure/context.js';
import { portableScope } from '../infrastructure/scopes.js';
import { rangeOf } from '../infrastructure/vlan-ip-ranges.js';
import { parseVlanTag } from '../infrastructure/vnet-ranges.js';
import type { NetDatabase, NetExecutor as Executor } from '../networks/tables.js';
import { REGION_ID } from './service.js';

export type PortableRangeRow = Selectable<NetDatabase['portable_ip_ranges']>;

const portableRange = (r: PortableRangeRow): IpRange => ({
  family: 4,
  start: addressFromKey(4, r.start_key).value,
  end: addressFromKey(4, r.end_key).value,
});

export async function createPortableIpRange(
  ctx: NetCtx,
  p: {
    regionid: number;
    startip: string;
    endip: string;
    gateway: string;
    netmask: string;
    vlan?: string | undefined;
    /** The new range's id when a job names it (jobScopedUuid). */
    uuid?: string;
  },
): Promise<PortableRangeRow> {
  requireRootAdmin(ctx.caller, 'createPortableIpRange');
  if (p.regionid !== REGION_ID)
    throw invalidParameter('regionid', String(p.regionid), `stacknet has one region, ${REGION_ID}`);
  const cidr = cidrFromGatewayAndNetmask(p.gateway, p.netmask);
  const range = parseRange(p.startip, p.endip);
  if (range.family !== 4) throw invalidParameter('startip', p.startip, 'portable ranges are IPv4');
  checkRangeInsideCidr(range, cidr, 'startip');
  const gw = parseIpOf(4, p.gateway, 'gateway');
  if (gw.value >= range.start && gw.value <= range.end) {
    throw invalidParameter('gateway', p.gateway, `the gateway lies inside the range ${formatRange(range)}`);
  }
  for (const other of await ctx.tx.selectFrom('portable_ip_ranges').selectAll().execute()) {
    const o = portableRange(other);
    if (rangesOverlap(o, range))
      throw invalidParameter(
        'startip',
        formatRange(range),
        `the range overlaps the existing portable range ${formatRange(o)} (id ${other.uuid})`,
      );
  }
  // A portable address must never also be a zone's public address.
  const publics = await ctx.tx
    .selectFrom('public_ip_ranges')
    .selectAll()
    .where('removed', 'is', null)
    .where('family', '=', 4)
    .execute();
  for (const r of publics) {
    const o = rangeOf(r);
    if (o && rangesOverlap(o, range))
      throw invalidParameter(
        'startip',
        formatRange(range),
        `the range overlaps public IP range ${formatRange(o)} (id ${r.uuid})`,
      );
  }
  const tag = p.vlan ? parseVlanTag(p.vlan) : 'untagged';
  const uuid = p.uuid ?? randomUUID();
  await ctx.tx
    .insertInto('portable_ip_ranges')
    .values({
      uuid,
      region_id: p.regionid,
      gateway: formatIp(gw),
      netmask: prefixToNetmask(netmaskToPrefix(p.netmask)),
      start_key: valueKey(range.start),
      end_key: valueKey(range.end),
      vlan_tag: tag === 'untagged' ? null : `vlan://${tag}`,
      created: ctx.now,
    })
    .execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'PORTABLE.IP.RANGE.CREATE',
    description: `Portable IP range ${formatRange(range)} created in region ${p.regionid}`,
    resourceType: 'PortableIpRange',
    resourceId: uuid,
    owner: ctx.caller,
  });
  return (await portableRangeByUuid(ctx.tx, uuid))!;
}

export async function portableRangeByUuid(db: Executor, uuid: string): Promise<PortableRangeRow | undefined> {
  return db.selectFrom('portable_ip_ranges').selectAll().where('uuid', '=', uuid).executeTakeFirst();
}

export async function listPortableIpRanges(
  ctx: NetCtx,
  p: {
    id?: string | undefined;
    regionid?: number | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<PortableRangeRow>> {
  requireRootAdmin(ctx.caller, 'listPortableIpRanges');
  let q = ctx.tx.selectFrom('portable_ip_ranges');
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.regionid !== undefined) q = q.where('region_id', '=', p.regionid);
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll().orderBy('id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await rq.execute() };
}

export async function deletePortableIpRange(ctx: NetCtx, p: { id: string }): Promise<void> {
  requireRootAdmin(ctx.caller, 'deletePortableIpRange');
  const r = await ctx.tx
    .selectFrom('portable_ip_ranges')
    .selectAll()
    .where('uuid', '=', p.id)
    .executeTakeFirst();
  if (!r) throw notFound('id', p.id, 'portable IP range');
  const { n } = await ctx.tx
    .selectFrom('ip_allocations')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('range_id', '=', r.id)
    .where('scope', '=', portableScope(r.region_id))
    .executeTakeFirstOrThrow();
  if (Number(n) > 0) {
    throw invalidParameter(
      'id',
      p.id,
      `portable range ${formatRange(portableRange(r))} has ${Number(n)} address(es) in use; release them first`,
    );
  }
  await ctx.tx.deleteFrom('portable_ip_ranges').where('id', '=', r.id).execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'PORTABLE.IP.RANGE.DELETE',
    description: `Portable IP range ${formatRange(portableRange(r))} deleted`,
    resourceType: 'PortableIpRange',
    resourceId: r.uuid,
    owner: ctx.caller,
  });
}

/** Response with the allocated addresses of the range (portableipaddress), as CloudStack lists them. */
export async function portableRangeResponse(
  db: Executor,
  r: PortableRangeRow,
): Promise<Record<string, unknown>> {
  const range = portableRange(r);
  const held = await db
    .selectFrom('ip_allocations')
    .select(['address', 'state', 'account_id', 'zone_id', 'network_id', 'vpc_id', 'created'])
    .where('range_id', '=', r.id)
    .where('scope', '=', portableScope(r.region_id))
    .orderBy('address')
    .limit(500)
    .execute();
  return {
    id: r.uuid,
    regionid: r.region_id,
    startip: formatIp({ family: 4, value: range.start }),
    endip: formatIp({ family: 4, value: range.end }),
    gateway: r.gateway,
    netmask: r.netmask,
    vlan: r.vlan_tag ?? undefined,
    portableipaddress: held.map((h) => ({
      ipaddress: formatIp(addressFromKey(4, h.address)),
      state: h.state,
      regionid: r.region_id,
      allocated: new Date(h.created).toISOString().replace(/\.\d{3}Z$/, '+0000'),
    })),
  };
}
