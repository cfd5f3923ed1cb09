/**
 * Guest IPv6 prefixes of a zone (CloudStack 4.17+): createGuestNetworkIpv6Prefix / listGuestNetworkIpv6Prefixes /
 * deleteGuestNetworkIpv6Prefix. IPv6 isolated networks and VPC tiers take one /64 of them each
 * (networks/ipv6-subnets.ts); a prefix is its bounds plus one row per /64 handed out, so counting used and total
 * subnets is a COUNT and a shift, never an enumeration.
 */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { csDate } from '../api/envelope.js';
import { keywordMatch, pageFrom, pageOfQuery } from '../api/list.js';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import type { Cidr } from '../ipam/cidr.js';
import { cidrsOverlap, formatCidr, parseCidr } from '../ipam/cidr.js';
import type { NetDatabase, NetExecutor as Executor } from '../networks/tables.js';
import type { Listed, NetCtx } from './context.js';
import { notFound, requireRootAdmin } from './context.js';
import { zoneByUuid } from './zones.js';

export type Ipv6PrefixRow = Selectable<NetDatabase['guest_ipv6_prefixes']>;

/** Every guest network gets a /64: hosts configure themselves by SLAAC (CloudStack's IPV6_SLAAC_CIDR_NETMASK). */
export const GUEST_IPV6_SUBNET_PREFIX = 64;

export const prefixCidr = (r: Pick<Ipv6PrefixRow, 'prefix'>): Cidr =>
  parseCidr(r.prefix, 'prefix', { family: 6 });

/** How many /64s a prefix holds. */
export const subnetsIn = (c: Cidr): bigint => 1n << BigInt(GUEST_IPV6_SUBNET_PREFIX - c.prefix);

export async function createGuestNetworkIpv6Prefix(
  ctx: NetCtx,
  p: { zoneid: string; prefix: string; uuid?: string },
): Promise<Ipv6PrefixRow> {
  requireRootAdmin(ctx.caller, 'createGuestNetworkIpv6Prefix');
  const tx = ctx.tx;
  const zone = await zoneByUuid(tx, p.zoneid);
  const cidr = parseCidr(p.prefix, 'prefix', { family: 6, strict: false });
  if (cidr.prefix > GUEST_IPV6_SUBNET_PREFIX) {
    throw invalidParameter(
      'prefix',
      p.prefix,
      `an IPv6 guest prefix must be /${GUEST_IPV6_SUBNET_PREFIX} or shorter: each network takes a /${GUEST_IPV6_SUBNET_PREFIX} of it`,
    );
  }
  const existing = await tx
    .selectFrom('guest_ipv6_prefixes')
    .select(['uuid', 'prefix'])
    .where('zone_id', '=', zone.id)
    .execute();
  const clash = existing.find((e) => cidrsOverlap(prefixCidr(e), cidr));
  if (clash) {
    throw invalidParameter(
      'prefix',
      p.prefix,
      `IPv6 prefix ${formatCidr(cidr)} overlaps the existing IPv6 prefix ${clash.prefix} (id ${clash.uuid}) of zone ${zone.name}`,
    );
  }
  const uuid = p.uuid ?? randomUUID();
  await tx
    .insertInto('guest_ipv6_prefixes')
    .values({ uuid, zone_id: zone.id, prefix: formatCidr(cidr), created: ctx.now })
    .execute();
  await ctx.recorder.event(tx, {
    type: 'GUEST.IP6.PREFIX.CREATE',
    description: `Creating guest IPv6 prefix ${formatCidr(cidr)} for zone ${zone.name}`,
    resourceType: 'GuestIpv6Prefix',
    resourceId: uuid,
    owner: ctx.caller,
  });
  return prefixByUuid(tx, uuid);
}

export async function prefixByUuid(db: Executor, uuid: string, param = 'id'): Promise<Ipv6PrefixRow> {
  const r = await db
    .selectFrom('guest_ipv6_prefixes')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!r) throw notFound(param, uuid, 'guest network IPv6 prefix');
  return r;
}

export async function listGuestNetworkIpv6Prefixes(
  ctx: NetCtx,
  p: {
    id?: string | undefined;
    zoneid?: string | undefined;
    keyword?: string | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<Ipv6PrefixRow>> {
  requireRootAdmin(ctx.caller, 'listGuestNetworkIpv6Prefixes');
  let q = ctx.tx.selectFrom('guest_ipv6_prefixes');
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.zoneid) q = q.where('zone_id', '=', (await zoneByUuid(ctx.tx, p.zoneid)).id);
  if (p.keyword) q = q.where(keywordMatch(['prefix'], p.keyword));
  const { rows, total } = await pageOfQuery(q.selectAll(), pageFrom(p, 500), (x) => x.orderBy('id'));
  return { count: total, items: rows };
}

export async function deleteGuestNetworkIpv6Prefix(ctx: NetCtx, p: { id: string }): Promise<void> {
  requireRootAdmin(ctx.caller, 'deleteGuestNetworkIpv6Prefix');
  const prefix = await prefixByUuid(ctx.tx, p.id);
  const used = await ctx.tx
    .selectFrom('guest_ipv6_subnets')
    .select('subnet')
    .where('prefix_id', '=', prefix.id)
    .orderBy('subnet_key')
    .limit(5)
    .execute();
  if (used.length) {
    // CloudStack answers this with a CloudRuntimeException: 530, not a parameter error.
    throw new CloudStackError(
      'InternalError',
      `Unable to delete guest network IPv6 prefix ID: ${prefix.uuid}. Prefix subnets are in use (${used.map((u) => u.subnet).join(', ')}${used.length === 5 ? ', ...' : ''}): delete or shut down the networks holding them first`,
    );
  }
  await ctx.tx.deleteFrom('guest_ipv6_prefixes').where('id', '=', prefix.id).execute();
  const zone = await ctx.tx
    .selectFrom('zones')
    .select('name')
    .where('id', '=', prefix.zone_id)
    .executeTakeFirstOrThrow();
  await ctx.recorder.event(ctx.tx, {
    type: 'GUEST.IP6.PREFIX.DELETE',
    description: `Deleting guest IPv6 prefix ${prefix.prefix} of zone ${zone.name}`,
    resourceType: 'GuestIpv6Prefix',
    resourceId: prefix.uuid,
    owner: ctx.caller,
  });
}

/** Used /64s per prefix id, one grouped COUNT. */
async function usedByPrefix(db: Executor, prefixIds: readonly number[]): Promise<Map<number, number>> {
  if (prefixIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('guest_ipv6_subnets')
    .select(['prefix_id', (eb) => eb.fn.countAll().as('n')])
    .where('prefix_id', 'in', [...prefixIds])
    .groupBy('prefix_id')
    .execute();
  return new Map(rows.map((r) => [Number(r.prefix_id), Number(r.n)]));
}

/** Used and total /64s of a zone's prefixes (listCapacity type 10). */
export async function zoneIpv6Subnets(
  db: Executor,
  zoneId: number,
): Promise<{ used: number; total: bigint }> {
  const prefixes = await db
    .selectFrom('guest_ipv6_prefixes')
    .select(['id', 'prefix'])
    .where('zone_id', '=', zoneId)
    .execute();
  const used = await usedByPrefix(
    db,
    prefixes.map((x) => x.id),
  );
  return {
    used: [...used.values()].reduce((a, b) => a + b, 0),
    total: prefixes.reduce((t, x) => t + subnetsIn(prefixCidr(x)), 0n),
  };
}

/** DataCenterGuestIpv6PrefixResponse for many prefixes. */
export async function prefixResponses(
  db: Executor,
  rows: readonly Ipv6PrefixRow[],
): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  const used = await usedByPrefix(
    db,
    rows.map((r) => r.id),
  );
  const zoneIds = [...new Set(rows.map((r) => r.zone_id))];
  const zones = new Map(
    (await db.selectFrom('zones').select(['id', 'uuid']).where('id', 'in', zoneIds).execute()).map((z) => [
      z.id,
      z.uuid,
    ]),
  );
  return rows.map((r) => {
    const total = subnetsIn(prefixCidr(r));
    const n = used.get(r.id) ?? 0;
    return {
      id: r.uuid,
      prefix: r.prefix,
      zoneid: zones.get(r.zone_id),
      usedsubnets: n,
      availablesubnets: Number(total - BigInt(n)),
      totalsubnets: Number(total),
      created: csDate(r.created),
    };
  });
}
