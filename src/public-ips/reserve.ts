/**
 * reserveIpAddress / releaseIpAddress: a Free public IP taken as Reserved for an account (NET.IPRESERVE), and
 * given back (NET.IPRELEASE), without associating it.
 */
import { removeTagsOf } from '../tags/service.js';
import { invalidParameter } from '../errors/catalogue.js';
import { allocateAddressTx } from '../addresses/address-service.js';
import { addressFromKey, formatIp, valueKey } from '../ipam/address.js';
import { RangeSet } from '../ipam/range.js';
import type { NetCtx } from '../infrastructure/context.js';
import { checkAccess, ownerById } from '../infrastructure/owners.js';
import { publicScope } from '../infrastructure/scopes.js';
import { decodePublicIpUuid } from './ids.js';
import { checkPublicIpLimit, plain, poolsFor, publicIpByUuid, rangeIdOf, zoneRanges } from './service.js';
import type { IpRow } from './service.js';
import type { AssociateDeps } from './associate.js';

export async function reserveIpAddress(
  ctx: NetCtx,
  p: {
    id: string;
    account?: string | undefined;
    domainid?: string | undefined;
    fordisplay?: boolean | undefined;
  },
  deps: Pick<AssociateDeps, 'resolveOwner' | 'zoneById'>,
): Promise<IpRow> {
  const d = decodePublicIpUuid(p.id);
  if (!d || d.kind !== 'pub') throw invalidParameter('id', p.id, 'no public IP address has this id');
  const owner = await deps.resolveOwner(p);
  const existing = await ctx.tx
    .selectFrom('ip_allocations')
    .selectAll()
    .where('scope', '=', publicScope(d.scopeId))
    .where('family', '=', 4)
    .where('address', '=', valueKey(d.value))
    .executeTakeFirst();
  if (existing) {
    if (existing.state === 'Reserved' && existing.account_id === owner.accountId) return existing;
    throw invalidParameter(
      'id',
      p.id,
      `the address ${formatIp({ family: 4, value: d.value })} is ${existing.state}, not Free`,
    );
  }
  const zone = await deps.zoneById(d.scopeId);
  await checkPublicIpLimit(ctx, owner);
  const ranges = await zoneRanges(ctx.tx, zone.id);
  const pools = poolsFor(ranges, owner);
  const all = [...pools.dedicated.ranges, ...pools.system.ranges];
  if (all.length === 0)
    throw invalidParameter('id', p.id, 'the address is not in a public range this account may use');
  const alloc = await allocateAddressTx(plain(ctx), {
    scope: publicScope(zone.id),
    pool: RangeSet.of(all.map((r) => r.range)),
    requested: { family: 4, value: d.value },
    requestedParam: 'id',
    state: 'Reserved',
    owner: { kind: 'publicip' },
    zoneId: zone.id,
    accountId: owner.accountId,
    domainId: owner.domainId,
    rangeId: rangeIdOf(all),
    now: ctx.now,
  });
  await ctx.tx
    .updateTable('ip_allocations')
    .set({ uuid: p.id, for_display: p.fordisplay === false ? 0 : 1 })
    .where('id', '=', alloc.id)
    .execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'NET.IPRESERVE',
    description: `IP address ${alloc.ip} reserved for account ${owner.accountName}`,
    resourceType: 'IpAddress',
    resourceId: p.id,
    owner: owner,
  });
  return ctx.tx.selectFrom('ip_allocations').selectAll().where('id', '=', alloc.id).executeTakeFirstOrThrow();
}

export async function releaseIpAddress(ctx: NetCtx, p: { id: string }): Promise<void> {
  const row = await publicIpByUuid(ctx.tx, p.id);
  const owner = await ownerById(ctx.tx, row.account_id!);
  await checkAccess(ctx.tx, ctx.caller, owner, `IP address ${formatIp(addressFromKey(4, row.address))}`);
  if (row.state !== 'Reserved') {
    throw invalidParameter(
      'id',
      p.id,
      `the address is ${row.state}; only a Reserved address is released here (use disassociateIpAddress)`,
    );
  }
  const freed = await ctx.tx
    .deleteFrom('ip_allocations')
    .where('id', '=', row.id)
    .where('state', '=', 'Reserved')
    .executeTakeFirst();
  // A Reserved address has no tags either; they go with its row as on every path (abandonAllocating).
  if (Number(freed.numDeletedRows) > 0) await removeTagsOf(plain(ctx), 'PublicIpAddress', row.id);
  await ctx.recorder.event(ctx.tx, {
    type: 'NET.IPRELEASE',
    description: `Reserved IP address ${formatIp(addressFromKey(4, row.address))} released by account ${owner.accountName}`,
    resourceType: 'IpAddress',
    resourceId: p.id,
    owner: owner,
  });
}
