/**
 * listPublicIpAddresses and the ipaddress response. With allocatedonly=false the Free addresses of the zone's
 * ranges are listed too, computed from the ranges page by page (RangeSet.at), never materialised.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { csDate } from '../api/envelope.js';
import { paged, pageWithTotal } from '../api/list.js';
import { tagsCondition, tagsFor } from '../tags/service.js';
import type { Family } from '../ipam/address.js';
import { addressFromKey, formatIp, parseIpOf, valueKey } from '../ipam/address.js';
import { RangeSet } from '../ipam/range.js';
import type { Executor as PlainExecutor } from '../store/db.js';
import { applyListScope, resolveListScope } from '../accounts/scope.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { pageWindow } from '../infrastructure/context.js';
import { ownerFields, ownerNames } from '../infrastructure/owners.js';
import type { Owner } from '../infrastructure/owners.js';
import { publicScope } from '../infrastructure/scopes.js';
import { rangeOf } from '../infrastructure/vlan-ip-ranges.js';
import { zoneByUuid } from '../infrastructure/zones.js';
import { networkByUuid, vpcByUuid } from '../networks/repository.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import { publicIpUuid } from './ids.js';
import { preparedQuery } from '../store/prepared.js';
import { dialectOf } from '../store/migrations/helpers.js';
import type { IpRow } from './service.js';
import { knownPlaces } from './known.js';

const plain = (ctx: NetCtx): PlainExecutor => ctx.tx as unknown as PlainExecutor;
const IP_COLS = { accountColumn: 'ip_allocations.account_id', domainColumn: 'ip_allocations.domain_id' };

export interface ListPublicIpsParams {
  id?: string | undefined;
  ipaddress?: string | undefined;
  zoneid?: string | undefined;
  networkid?: string | undefined;
  associatednetworkid?: string | undefined;
  vpcid?: string | undefined;
  vlanid?: string | undefined;
  physicalnetworkid?: string | undefined;
  state?: string | undefined;
  allocatedonly?: boolean | undefined;
  forvirtualnetwork?: boolean | undefined;
  issourcenat?: boolean | undefined;
  isstaticnat?: boolean | undefined;
  forsystemvms?: boolean | undefined;
  keyword?: string | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  isrecursive?: boolean | undefined;
  listall?: boolean | undefined;
  tags?: Record<string, string>[] | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

/** A listed address: its row, or a Free address of a range (no row). */
/** A listed address: a row (with its owner when the caller has it loaded already) or a Free address. */
export type ListedIp =
  { row: IpRow; owner?: Owner } | { free: { zoneId: number; rangeId: number; value: bigint } };

export async function listPublicIpAddresses(ctx: NetCtx, p: ListPublicIpsParams): Promise<Listed<ListedIp>> {
  if (p.forvirtualnetwork === false) return { count: 0, items: [] };
  const wantFree =
    p.allocatedonly === false && (p.state === undefined || p.state === 'Free') && ctx.caller.role === 'Admin';
  if (p.state === 'Free' && !wantFree) return { count: 0, items: [] };
  const { limit, offset } = pageWindow(p);
  // A free address has no tags: a tag filter lists only allocated ones.
  if (wantFree && !p.tags?.length) return listWithFree(ctx, p, limit, offset);
  const scope = await resolveListScope(plain(ctx), ctx.caller, p);
  const base = applyListScope(
    // A literal, not a parameter: SQLite uses the partial ip_allocations_public_list_ix only when it can see it.
    ctx.tx.selectFrom('ip_allocations').where('ip_allocations.owner_kind', '=', sql.lit('publicip')),
    ctx.caller,
    scope,
    IP_COLS,
  );
  let q = base;
  if (p.id) q = q.where('ip_allocations.uuid', '=', p.id);
  if (p.ipaddress)
    q = q
      .where('ip_allocations.address', '=', valueKey(parseIpOf(4, p.ipaddress, 'ipaddress').value))
      .where('ip_allocations.family', '=', 4);
  const zoneId = p.zoneid ? (await zoneByUuid(ctx.tx, p.zoneid)).id : undefined;
  if (zoneId !== undefined) q = q.where('ip_allocations.zone_id', '=', zoneId);
  const net = p.associatednetworkid ?? p.networkid;
  if (net)
    q = q.where(
      'ip_allocations.network_id',
      '=',
      (await networkByUuid(ctx.tx, net, p.associatednetworkid ? 'associatednetworkid' : 'networkid')).id,
    );
  if (p.vpcid) q = q.where('ip_allocations.vpc_id', '=', (await vpcByUuid(ctx.tx, p.vpcid)).id);
  if (p.vlanid) {
    const r = await ctx.tx
      .selectFrom('public_ip_ranges')
      .select('id')
      .where('uuid', '=', p.vlanid)
      .executeTakeFirst();
    q = q.where('ip_allocations.range_id', '=', r?.id ?? -1);
  }
  if (p.state) q = q.where('ip_allocations.state', '=', p.state as 'Allocated');
  if (p.issourcenat !== undefined) q = q.where('ip_allocations.source_nat', '=', p.issourcenat ? 1 : 0);
  if (p.isstaticnat !== undefined) q = q.where('ip_allocations.static_nat', '=', p.isstaticnat ? 1 : 0);
  if (p.keyword) {
    // Addresses are stored as fixed-width keys; a keyword that is a whole address matches it exactly.
    try {
      q = q.where('ip_allocations.address', '=', valueKey(parseIpOf(4, p.keyword, 'keyword').value));
    } catch {
      q = q.where('ip_allocations.uuid', '=', p.keyword);
    }
  }
  const tagged = tagsCondition('PublicIpAddress', 'ip_allocations.id', p.tags);
  if (tagged) q = q.where(tagged);
  // The page's ids first, then their rows: the ORDER BY and a deep OFFSET walk ip_allocations_public_list_ix
  // alone (an index-only scan), so page 1,000 of a zone with 500,000 addresses reads 500 rows, not 500,000.
  // The total, when the page cannot tell it (pageWithTotal): a zone's public IPs as a whole (the zone and nothing
  // else, every owner) are the zone's count kept by the database (0031's public_ip_zone_counts: a few rows, in
  // the same snapshot as the page); any other filter is a COUNT(*), on the same index (its rows read for the filter).
  // Derived from the query itself, so that a filter added above can never be counted by the zone's counters.
  const wholeZone =
    zoneId !== undefined &&
    scope.kind === 'all' &&
    q.compile().sql === base.where('ip_allocations.zone_id', '=', zoneId).compile().sql;
  const page = { limit, offset };
  // On SQLite the page's rows come with the page itself: its OFFSET skips index entries without reading their
  // rows (a deferred seek: the row is read only for an entry past the OFFSET), so one statement reads the page
  // where a second one read its 500 rows by id (`id IN (...)`, 500 parameters built and bound each call).
  // PostgreSQL and MariaDB would read every skipped row, so there the ids come first.
  const withRows = dialectOf(ctx.tx as unknown as Kysely<unknown>) === 'sqlite';
  // (scope, address, id): the index's order, and an order without ties, so that the same page read from either
  // end is the same rows.
  const ordered = (dir: 'asc' | 'desc') =>
    (withRows ? q.selectAll('ip_allocations') : q.select('ip_allocations.id'))
      .orderBy('ip_allocations.scope', dir)
      .orderBy('ip_allocations.address', dir)
      .orderBy('ip_allocations.id', dir);
  const { rows: ids, total } =
    wholeZone && limit !== undefined
      ? await wholeZonePage(ctx.tx, zoneId, ordered, limit, offset)
      : await pageWithTotal(
          page,
          () => paged(ordered('asc'), page).execute(),
          async () => (await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n,
        );
  if (ids.length === 0) return { count: total, items: [] };
  if (withRows) return { count: total, items: (ids as IpRow[]).map((row) => ({ row })) };
  const byId = new Map(
    (
      await ctx.tx
        .selectFrom('ip_allocations')
        .selectAll()
        .where(
          'id',
          'in',
          ids.map((r) => r.id),
        )
        .execute()
    ).map((row) => [Number(row.id), row]),
  );
  return { count: total, items: ids.map((r) => ({ row: byId.get(Number(r.id))! })) };
}

/**
 * A page of a whole zone's public IPs: the total first (0031's counters, a few rows), then the page's ids walked
 * from the nearer end of the index. An OFFSET is a walk over every index entry it skips (no engine here keeps
 * counts in its B-tree), so the last page of 500,000 addresses walked 499,500 entries (35 ms of CPU on SQLite);
 * from the end it is the entries after the page, and no page walks more than half the zone. The rows read
 * backwards are put back in order. Read as separate statements, as every list here: an address allocated between
 * the count and the page moves the page by one, as it moves a page read a moment later.
 */
async function wholeZonePage(
  tx: Executor,
  zoneId: number,
  ordered: (dir: 'asc' | 'desc') => {
    limit(n: number): { offset(n: number): { execute(): Promise<{ id: number }[]> } };
  },
  limit: number,
  offset: number,
): Promise<{ rows: { id: number }[]; total: number }> {
  const total = await publicIpsOfZone(tx, zoneId);
  const n = Math.min(limit, total - offset);
  if (n <= 0) return { rows: [], total };
  const after = total - offset - n;
  if (after >= offset) return { rows: await ordered('asc').limit(n).offset(offset).execute(), total };
  return { rows: (await ordered('desc').limit(n).offset(after).execute()).reverse(), total };
}

/** The public IPs of a zone (every state and owner): the sum of its counts in public_ip_zone_counts (0031). */
async function publicIpsOfZone(tx: Executor, zoneId: number): Promise<number> {
  const r = await sql<{
    n: number | string | null;
  }>`select sum(n) as n from public_ip_zone_counts where zone_id = ${zoneId}`.execute(tx);
  return Number(r.rows[0]?.n ?? 0);
}

async function listWithFree(
  ctx: NetCtx,
  p: ListPublicIpsParams,
  limit: number | undefined,
  offset: number,
): Promise<Listed<ListedIp>> {
  let zq = ctx.tx.selectFrom('zones').select(['id']).where('removed', 'is', null);
  if (p.zoneid) zq = zq.where('uuid', '=', p.zoneid);
  const zones = await zq.orderBy('id').execute();
  const items: ListedIp[] = [];
  let count = 0;
  let skip = offset;
  const want = limit ?? Number.MAX_SAFE_INTEGER;
  for (const z of zones) {
    let rq = ctx.tx
      .selectFrom('public_ip_ranges')
      .selectAll()
      .where('zone_id', '=', z.id)
      .where('removed', 'is', null)
      .where('vlan_type', '=', 'VirtualNetwork')
      .where('family', '=', 4);
    if (p.vlanid) rq = rq.where('uuid', '=', p.vlanid);
    const ranges = (await rq.orderBy('id').execute()).flatMap((r) => {
      const range = rangeOf(r);
      return range ? [{ id: r.id, range }] : [];
    });
    if (ranges.length === 0) continue;
    let pool = RangeSet.of(ranges.map((r) => r.range));
    if (p.ipaddress)
      pool = pool.intersect({
        family: 4,
        start: parseIpOf(4, p.ipaddress).value,
        end: parseIpOf(4, p.ipaddress).value,
      });
    const size = pool.size();
    const used = p.state === 'Free' ? await countIn(ctx.tx, publicScope(z.id), pool) : 0;
    count += Number(size) - used;
    // Walk this zone's addresses in order from the page's offset, a window at a time.
    let index = 0n;
    while (items.length < want && index < size) {
      const n = BigInt(Math.min(Number(size - index), 256));
      const values: bigint[] = [];
      for (let i = 0n; i < n; i++) values.push(pool.at(index + i));
      index += n;
      const rows = await ctx.tx
        .selectFrom('ip_allocations')
        .selectAll()
        .where('scope', '=', publicScope(z.id))
        .where('family', '=', 4)
        .where('address', 'in', values.map(valueKey))
        .execute();
      const byKey = new Map(rows.map((r) => [r.address, r]));
      for (const v of values) {
        const row = byKey.get(valueKey(v));
        if (p.state === 'Free' && row) continue;
        if (skip > 0) {
          skip--;
          continue;
        }
        if (items.length >= want) break;
        items.push(
          row
            ? { row }
            : {
                free: {
                  zoneId: z.id,
                  rangeId: ranges.find((r) => v >= r.range.start && v <= r.range.end)!.id,
                  value: v,
                },
              },
        );
      }
    }
  }
  return { count, items };
}

async function countIn(tx: Executor, scope: string, pool: RangeSet): Promise<number> {
  let n = 0;
  for (const r of pool.ranges) {
    const { c } = await tx
      .selectFrom('ip_allocations')
      .select((eb) => eb.fn.countAll().as('c'))
      .where('scope', '=', scope)
      .where('family', '=', 4)
      .where('address', '>=', valueKey(r.start))
      .where('address', '<=', valueKey(r.end))
      .executeTakeFirstOrThrow();
    n += Number(c);
  }
  return n;
}

type ZoneRef = { id: number; uuid: string; name: string };
type RangeRef = {
  id: number;
  uuid: string;
  vlan_tag: string | null;
  physical_network_id: number | null;
  for_system_vms: number;
};
interface ZonesAndRanges {
  zones: Map<number, ZoneRef>;
  ranges: Map<number, RangeRef>;
  pns: Map<number, string>;
}

async function zonesAndRanges(
  db: Executor,
  zoneIds: readonly number[],
  rangeIds: readonly number[],
): Promise<ZonesAndRanges> {
  const zones = new Map(
    zoneIds.length
      ? (
          await db
            .selectFrom('zones')
            .select(['id', 'uuid', 'name'])
            .where('id', 'in', [...zoneIds])
            .execute()
        ).map((z) => [z.id, z])
      : [],
  );
  const ranges = new Map<number, RangeRef>(
    rangeIds.length
      ? (
          await db
            .selectFrom('public_ip_ranges')
            .select(['id', 'uuid', 'vlan_tag', 'physical_network_id', 'for_system_vms'])
            .where('id', 'in', [...rangeIds])
            .execute()
        ).map((r) => [r.id, r])
      : [],
  );
  const pnIds = [
    ...new Set(
      [...ranges.values()].flatMap((r) => (r.physical_network_id !== null ? [r.physical_network_id] : [])),
    ),
  ];
  const pns = new Map(
    pnIds.length
      ? (
          await db.selectFrom('physical_networks').select(['id', 'uuid']).where('id', 'in', pnIds).execute()
        ).map((x) => [x.id, x.uuid])
      : [],
  );
  return { zones, ranges, pns };
}

// Prepared (src/store/prepared.ts): the answer of every associateIpAddress job reads it.
const zoneRangeAndPn = preparedQuery((db: Executor, rangeId: number, zoneId: number) =>
  db
    .selectFrom('zones as z')
    .leftJoin('public_ip_ranges as r', (j) => j.on('r.id', '=', rangeId))
    .leftJoin('physical_networks as pn', 'pn.id', 'r.physical_network_id')
    .select([
      'z.id',
      'z.uuid',
      'z.name',
      'r.id as range_id',
      'r.uuid as range_uuid',
      'r.vlan_tag',
      'r.physical_network_id',
      'r.for_system_vms',
      'pn.uuid as pn_uuid',
    ])
    .where('z.id', '=', zoneId),
);

/**
 * One address's zone, range and physical network in one query rather than three (the answer of
 * associateIpAddress and its job: one round trip per table is most of what rendering it cost).
 */
async function zoneAndRange(db: Executor, zoneId: number, rangeId: number): Promise<ZonesAndRanges> {
  const r = await zoneRangeAndPn.first(db, rangeId, zoneId);
  if (!r) return zonesAndRanges(db, [zoneId], [rangeId]);
  const out: ZonesAndRanges = { zones: new Map(), ranges: new Map(), pns: new Map() };
  out.zones.set(Number(r.id), { id: Number(r.id), uuid: r.uuid, name: r.name });
  if (r.range_id !== null && r.range_uuid !== null) {
    out.ranges.set(Number(r.range_id), {
      id: Number(r.range_id),
      uuid: r.range_uuid,
      vlan_tag: r.vlan_tag,
      physical_network_id: r.physical_network_id === null ? null : Number(r.physical_network_id),
      for_system_vms: Number(r.for_system_vms),
    });
    if (r.physical_network_id !== null && r.pn_uuid !== null)
      out.pns.set(Number(r.physical_network_id), r.pn_uuid);
  }
  return out;
}

/** The places the command read with this row (known.ts), when they are all its answer needs. */
function placesKnown(row: IpRow): ZonesAndRanges | undefined {
  const k = knownPlaces.get(row);
  if (!k || k.zone.id !== row.zone_id || (row.range_id !== null && k.range?.id !== row.range_id))
    return undefined;
  const out: ZonesAndRanges = { zones: new Map([[k.zone.id, k.zone]]), ranges: new Map(), pns: new Map() };
  if (k.range) {
    out.ranges.set(k.range.id, k.range);
    if (k.range.physical_network_id !== null && k.pnUuid !== undefined)
      out.pns.set(k.range.physical_network_id, k.pnUuid);
  }
  return out;
}

/** CloudStack's IPAddressResponse for each listed address (one query per referenced table). */
export async function ipResponses(
  db: Executor,
  items: readonly ListedIp[],
): Promise<Record<string, unknown>[]> {
  if (items.length === 0) return [];
  const rows = items.flatMap((i) => ('row' in i ? [i.row] : []));
  const tags = await tagsFor(
    db,
    'PublicIpAddress',
    rows.map((r) => Number(r.id)),
  );
  const uniq = <T>(xs: (T | null)[]) => [...new Set(xs.filter((x): x is T => x !== null))];
  const zoneIds = uniq([
    ...rows.map((r) => r.zone_id),
    ...items.flatMap((i) => ('free' in i ? [i.free.zoneId] : [])),
  ]);
  const rangeIds = uniq([
    ...rows.map((r) => r.range_id),
    ...items.flatMap((i) => ('free' in i ? [i.free.rangeId] : [])),
  ]);
  const known = items.length === 1 && rows.length === 1 ? placesKnown(rows[0]!) : undefined;
  const { zones, ranges, pns } = known
    ? known
    : zoneIds.length === 1 && rangeIds.length === 1
      ? await zoneAndRange(db, zoneIds[0]!, rangeIds[0]!)
      : await zonesAndRanges(db, zoneIds, rangeIds);
  const netIds = uniq(rows.map((r) => r.network_id));
  const nets = new Map(
    netIds.length
      ? (
          await db.selectFrom('networks').select(['id', 'uuid', 'name']).where('id', 'in', netIds).execute()
        ).map((n) => [n.id, n])
      : [],
  );
  const vpcIds = uniq(rows.map((r) => r.vpc_id));
  const vpcs = new Map(
    vpcIds.length
      ? (await db.selectFrom('vpcs').select(['id', 'uuid', 'name']).where('id', 'in', vpcIds).execute()).map(
          (v) => [v.id, v],
        )
      : [],
  );
  const owners = new Map<number, Owner>();
  for (const i of items) if ('row' in i && i.owner) owners.set(i.owner.accountId, i.owner);
  for (const [id, o] of await ownerNames(
    db,
    rows.map((r) => (r.account_id !== null && !owners.has(r.account_id) ? r.account_id : null)),
  ))
    owners.set(id, o);
  const vmIds = uniq(rows.map((r) => (r.static_nat === 1 ? r.vm_id : null)));
  const vms = new Map(
    vmIds.length
      ? (
          await db
            .selectFrom('vms')
            .select(['id', 'uuid', 'name', 'display_name'])
            .where('id', 'in', vmIds)
            .execute()
        ).map((v) => [Number(v.id), v])
      : [],
  );
  return items.map((i) => {
    if ('free' in i) {
      const zone = zones.get(i.free.zoneId);
      const range = ranges.get(i.free.rangeId);
      return {
        id: publicIpUuid('pub', i.free.zoneId, 4, i.free.value),
        ipaddress: formatIp({ family: 4, value: i.free.value }),
        state: 'Free',
        zoneid: zone?.uuid,
        zonename: zone?.name,
        vlanid: range?.uuid,
        vlanname: range?.vlan_tag,
        physicalnetworkid:
          range?.physical_network_id != null ? pns.get(range.physical_network_id) : undefined,
        forvirtualnetwork: true,
        issourcenat: false,
        isstaticnat: false,
        issystem: false,
        isportable: false,
        forsystemvms: range ? range.for_system_vms === 1 : false,
        fordisplay: true,
        hasannotations: false,
        tags: [],
      };
    }
    const r = i.row;
    const zone = r.zone_id !== null ? zones.get(r.zone_id) : undefined;
    const range = r.range_id !== null ? ranges.get(r.range_id) : undefined;
    const net = r.network_id !== null ? nets.get(r.network_id) : undefined;
    const vpc = r.vpc_id !== null ? vpcs.get(r.vpc_id) : undefined;
    const portable = r.scope.startsWith('portable:');
    return {
      id: r.uuid ?? undefined,
      ipaddress: formatIp(addressFromKey(r.family as Family, r.address)),
      allocated: csDate(r.created),
      state: r.state,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      ...ownerFields(r.account_id !== null ? owners.get(r.account_id) : undefined),
      issourcenat: r.source_nat === 1,
      isstaticnat: r.static_nat === 1,
      issystem: r.is_system === 1,
      isportable: portable,
      forvirtualnetwork: true,
      forsystemvms: range ? range.for_system_vms === 1 : false,
      vlanid: portable ? undefined : range?.uuid,
      vlanname: portable ? undefined : range?.vlan_tag,
      physicalnetworkid: range?.physical_network_id != null ? pns.get(range.physical_network_id) : undefined,
      associatednetworkid: net?.uuid,
      associatednetworkname: net?.name,
      networkid: net?.uuid,
      networkname: net?.name,
      vpcid: vpc?.uuid,
      vpcname: vpc?.name,
      virtualmachineid: r.static_nat === 1 && r.vm_id !== null ? vms.get(r.vm_id)?.uuid : undefined,
      virtualmachinename: r.static_nat === 1 && r.vm_id !== null ? vms.get(r.vm_id)?.name : undefined,
      virtualmachinedisplayname:
        r.static_nat === 1 && r.vm_id !== null ? vms.get(r.vm_id)?.display_name : undefined,
      vmipaddress: r.static_nat === 1 ? (r.vm_ip ?? undefined) : undefined,
      fordisplay: r.for_display !== 0,
      hasannotations: false,
      tags: tags.get(Number(r.id)) ?? [],
    };
  });
}
