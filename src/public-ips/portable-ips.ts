/**
 * Portable IPs (region scope `portable:<region>`): associateIpAddress with `isportable` takes one from the region's
 * portable ranges (portable-ranges.ts) with PORTABLE.IPASSIGN, and a held one asked for again with another
 * network or zone is transferred (PORTABLE.IP.TRANSFER).
 */
import { insufficientAddressCapacity, invalidParameter } from '../errors/catalogue.js';
import { allocateAddressTx } from '../addresses/address-service.js';
import type { IpAddress } from '../ipam/address.js';
import { addressFromKey, formatIp, valueKey } from '../ipam/address.js';
import { RangeSet } from '../ipam/range.js';
import type { NetCtx } from '../infrastructure/context.js';
import type { Owner } from '../infrastructure/owners.js';
import { ownerById } from '../infrastructure/owners.js';
import { portableScope } from '../infrastructure/scopes.js';
import type { ZoneRow } from '../infrastructure/zones.js';
import type { NetworkRow, VpcRow } from '../networks/repository.js';
import { publicIpUuid } from './ids.js';
import { bumpPublicIpRouters } from '../routers/repository.js';
import { checkPublicIpLimit, plain, rangeIdOf, REGION_ID } from './service.js';
import { finishAssign, holdAllocating } from './assign.js';
import type { IpRow } from './service.js';

export async function associatePortable(
  ctx: NetCtx,
  a: {
    zone: ZoneRow;
    owner: Owner;
    network?: NetworkRow | undefined;
    vpc?: VpcRow | undefined;
    requested?: IpAddress | undefined;
    regionId: number;
    hold?: boolean;
  },
): Promise<IpRow> {
  if (a.regionId !== REGION_ID)
    throw invalidParameter('regionid', String(a.regionId), `stacknet has one region, ${REGION_ID}`);
  const scope = portableScope(a.regionId);
  // A portable IP the owner already holds, asked for again with another network or zone, moves there
  // (CloudStack's transferPortableIP, reference §1.6).
  if (a.requested) {
    const held = await ctx.tx
      .selectFrom('ip_allocations')
      .selectAll()
      .where('scope', '=', scope)
      .where('family', '=', 4)
      .where('address', '=', valueKey(a.requested.value))
      .executeTakeFirst();
    if (held && held.account_id === a.owner.accountId && held.state === 'Allocated') {
      if (held.static_nat === 1) {
        throw invalidParameter(
          'ipaddress',
          formatIp(a.requested),
          'the portable IP has static NAT enabled; disable it before transferring',
        );
      }
      // Held: the job (completeAssociate) moves it; a one-shot call moves it now.
      return a.hold ? held : transferPortableIp(ctx, held, { zone: a.zone, network: a.network, vpc: a.vpc });
    }
  }
  await checkPublicIpLimit(ctx, a.owner);
  const ranges = await ctx.tx
    .selectFrom('portable_ip_ranges')
    .selectAll()
    .where('region_id', '=', a.regionId)
    .orderBy('id')
    .execute();
  const list = ranges.map((r) => ({
    id: r.id,
    range: {
      family: 4 as const,
      start: addressFromKey(4, r.start_key).value,
      end: addressFromKey(4, r.end_key).value,
    },
  }));
  if (list.length === 0)
    throw insufficientAddressCapacity(`region ${a.regionId} has no portable IP range`, []);
  const alloc = await allocateAddressTx(plain(ctx), {
    scope,
    pool: RangeSet.of(list.map((l) => l.range)),
    requested: a.requested,
    requestedParam: 'ipaddress',
    // CloudStack takes the first Free portable IP of the region (listByRegionIdAndState).
    strategy: 'lowest',
    state: 'Allocating',
    owner: { kind: 'publicip' },
    zoneId: a.zone.id,
    accountId: a.owner.accountId,
    domainId: a.owner.domainId,
    networkId: a.network?.id ?? null,
    vpcId: a.vpc?.id ?? null,
    rangeId: rangeIdOf(list),
    exhaustedMessage: `region ${a.regionId} has no free portable IP address`,
    now: ctx.now,
  });
  const uuid = publicIpUuid('portable', a.regionId, 4, alloc.address.value);
  return a.hold ? holdAllocating(ctx, alloc.id, uuid) : finishAssign(ctx, alloc.id, uuid, a.owner, true);
}

/** Moves a portable IP to another network and/or zone; refused while static NAT is on it. */
export async function transferPortableIp(
  ctx: NetCtx,
  row: IpRow,
  to: { zone: ZoneRow; network?: NetworkRow | undefined; vpc?: VpcRow | undefined },
): Promise<IpRow> {
  if (row.static_nat === 1) {
    throw invalidParameter(
      'ipaddress',
      formatIp(addressFromKey(4, row.address)),
      'the portable IP has static NAT enabled; disable it before transferring',
    );
  }
  await ctx.tx
    .updateTable('ip_allocations')
    .set({
      zone_id: to.zone.id,
      network_id: to.network?.id ?? null,
      vpc_id: to.vpc?.id ?? to.network?.vpc_id ?? null,
      updated: ctx.now,
    })
    .where('id', '=', row.id)
    .execute();
  await bumpPublicIpRouters(plain(ctx), row);
  await bumpPublicIpRouters(plain(ctx), {
    network_id: to.network?.id ?? null,
    vpc_id: to.vpc?.id ?? to.network?.vpc_id ?? null,
  });
  const owner = await ownerById(ctx.tx, row.account_id!);
  await ctx.recorder.event(ctx.tx, {
    type: 'PORTABLE.IP.TRANSFER',
    description: `Portable IP address ${formatIp(addressFromKey(4, row.address))} transferred to ${to.network ? `network ${to.network.name}` : 'no network'} in zone ${to.zone.name}`,
    resourceType: 'IpAddress',
    resourceId: row.uuid ?? undefined,
    owner: owner,
  });
  return ctx.tx.selectFrom('ip_allocations').selectAll().where('id', '=', row.id).executeTakeFirstOrThrow();
}
