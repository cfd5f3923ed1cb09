/**
 * associateIpAddress / disassociateIpAddress: the request that takes an address (Allocating, at request time, as
 * CloudStack's BaseAsyncCreateCmd create() does), the association job that confirms it (completeAssociate) or gives
 * it back (abandonAllocating), and disassociation. The assignment itself is assign.ts's; portable IPs are
 * portable-ips.ts's.
 */
import { removeTagsOf, untaggedIn } from '../tags/service.js';
import { CloudStackError, invalidParameter, permissionDenied } from '../errors/catalogue.js';
import { addressFromKey, formatIp, parseIpOf } from '../ipam/address.js';
import type { NetCtx } from '../infrastructure/context.js';
import type { Owner } from '../infrastructure/owners.js';
import { checkAccess, ownerById } from '../infrastructure/owners.js';
import type { RangeRow } from '../infrastructure/vlan-ip-ranges.js';
import type { ZoneRow } from '../infrastructure/zones.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import { hasService, lockNetwork, offeringById } from '../networks/repository.js';
import type { NetworkRow, VpcRow } from '../networks/repository.js';
import { preparedQuery } from '../store/prepared.js';
import { knownPlaces, takeHeld } from './known.js';
import { callerChecked } from '../api/caller-check.js';
import type { CallerCheck } from '../api/caller-check.js';
import { assignPublicIp, finishAssign } from './assign.js';
import { isPortableRow, knownOwners, plain, publicIpByUuid, REGION_ID, releasePublicIp } from './service.js';
import type { IpRow } from './service.js';
import { associatePortable, transferPortableIp } from './portable-ips.js';

// The statements of associateIpAddress's request and job, prepared (src/store/prepared.ts): the hot path.
/**
 * The association job's one read: the held address, its owner (for the event, the usage record and the answer)
 * and the zone, range and physical network its answer names. Three reads before (the address, the owner, then
 * zone/range/network for the answer); on PostgreSQL and MariaDB each is a round trip.
 */
const ipForJob = preparedQuery((db: Executor, uuid: string) =>
  db
    .selectFrom('ip_allocations as ip')
    .innerJoin('accounts as a', 'a.id', 'ip.account_id')
    .innerJoin('domains as d', 'd.id', 'a.domain_id')
    .leftJoin('zones as z', 'z.id', 'ip.zone_id')
    .leftJoin('public_ip_ranges as r', 'r.id', 'ip.range_id')
    .leftJoin('physical_networks as pn', 'pn.id', 'r.physical_network_id')
    .selectAll('ip')
    .select([
      'a.uuid as o_account_uuid',
      'a.name as o_account_name',
      'a.type as o_account_type',
      'd.id as o_domain_id',
      'd.uuid as o_domain_uuid',
      'd.name as o_domain_name',
      'd.path as o_domain_path',
      'z.uuid as z_uuid',
      'z.name as z_name',
      'r.uuid as r_uuid',
      'r.vlan_tag as r_vlan_tag',
      'r.physical_network_id as r_physical_network_id',
      'r.for_system_vms as r_for_system_vms',
      'pn.uuid as pn_uuid',
    ])
    .where('ip.uuid', '=', uuid)
    .where('ip.owner_kind', '=', 'publicip'),
);
/**
 * associateIpAddress's request by zone: the zone and its public ranges in one read (a zone with no range gives
 * one row of NULL range columns). Every zone column, named `z_<column>`, so that the zone row is whole.
 */
const zoneAndRangesQuery = (db: Executor, uuid: string) =>
  db
    .selectFrom('zones as z')
    .leftJoin('public_ip_ranges as r', (j) =>
      j
        .onRef('r.zone_id', '=', 'z.id')
        .on('r.removed', 'is', null)
        .on('r.vlan_type', '=', 'VirtualNetwork')
        .on('r.family', '=', 4)
        .on('r.for_system_vms', '=', 0),
    )
    // The range's physical network's uuid, for the association job's answer (known.ts rememberHeld).
    .leftJoin('physical_networks as pn', 'pn.id', 'r.physical_network_id')
    .selectAll('r')
    .select([
      'pn.uuid as pn_uuid',
      'z.id as z_id',
      'z.uuid as z_uuid',
      'z.name as z_name',
      'z.description as z_description',
      'z.dns1 as z_dns1',
      'z.dns2 as z_dns2',
      'z.internaldns1 as z_internaldns1',
      'z.internaldns2 as z_internaldns2',
      'z.ip6dns1 as z_ip6dns1',
      'z.ip6dns2 as z_ip6dns2',
      'z.guest_cidr as z_guest_cidr',
      'z.domain as z_domain',
      'z.network_type as z_network_type',
      'z.allocation_state as z_allocation_state',
      'z.created as z_created',
      'z.removed as z_removed',
    ])
    .where('z.uuid', '=', uuid)
    .where('z.removed', 'is', null)
    .orderBy('r.id');
const zoneAndRangesByUuid = preparedQuery(zoneAndRangesQuery);
/** The same, with a remembered caller's check (src/api/caller-check.ts) on every row. */
const zoneAndRangesChecked = preparedQuery((db: Executor, uuid: string, apiKey: string) =>
  callerChecked(zoneAndRangesQuery(db, uuid), apiKey),
);
type ZoneAndRangeRow = Awaited<ReturnType<typeof zoneAndRangesByUuid.first>> & object;
// Every column of a zone row is read above: a column added to `zones` fails to compile here until it is.
type MissingZoneColumn = Exclude<`z_${keyof ZoneRow}`, keyof ZoneAndRangeRow>;
const zoneColumnsComplete: [MissingZoneColumn] extends [never] ? true : MissingZoneColumn = true;
void zoneColumnsComplete;

/** The zone `uuid` (404-style InvalidParameterValue when there is none) and its public ranges, in one read. */
async function zoneWithRanges(
  db: Executor,
  uuid: string,
  deps: AssociateDeps,
  check?: CallerCheck,
): Promise<{ zone: ZoneRow; ranges?: RangeRow[]; pnUuids?: Map<number, string> }> {
  let rows: ZoneAndRangeRow[];
  if (check) {
    const checked = await zoneAndRangesChecked.rows(db, uuid, check.apiKey);
    // No row carries no check: the request confirms it on its own before it answers or commits.
    if (checked[0]) check.confirm(checked[0].caller_fp);
    rows = checked.map(({ caller_fp: _, ...r }) => r);
  } else rows = await zoneAndRangesByUuid.rows(db, uuid);
  const z = rows[0];
  // None: deps.zone gives the API's answer for a zone that is not there (and should one appear in between, its
  // ranges are read with it by assignPublicIp).
  if (!z) return { zone: await deps.zone(uuid) };
  // Each row splits on the `z_` prefix: the zone's columns (every one, checked above) and the range's own (no
  // public_ip_ranges column starts so), but for its physical network's uuid; a zone without ranges has one row
  // whose range columns are null.
  const split = (r: ZoneAndRangeRow) => {
    const zone: Record<string, unknown> = {};
    const range: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r)) {
      if (k.startsWith('z_')) zone[k.slice(2)] = v;
      else if (k !== 'pn_uuid') range[k] = v;
    }
    return { zone: zone as unknown as ZoneRow, range: range as RangeRow };
  };
  const zone = split(z).zone;
  const ranges = rows.filter((r) => r.id !== null).map((r) => split(r).range);
  const pnUuids = new Map<number, string>();
  for (const r of rows)
    if (r.physical_network_id !== null && r.pn_uuid !== null)
      pnUuids.set(Number(r.physical_network_id), r.pn_uuid);
  return { zone, ranges, pnUuids };
}

export interface AssociateParams {
  zoneid?: string | undefined;
  networkid?: string | undefined;
  vpcid?: string | undefined;
  ipaddress?: string | undefined;
  isportable?: boolean | undefined;
  regionid?: number | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  fordisplay?: boolean | undefined;
}

export interface AssociateDeps {
  resolveOwner(p: { account?: string | undefined; domainid?: string | undefined }): Promise<Owner>;
  network(uuid: string): Promise<NetworkRow>;
  vpc(uuid: string): Promise<VpcRow>;
  zone(uuid: string): Promise<ZoneRow>;
  zoneById(id: number): Promise<ZoneRow>;
}

/** Checks a guest network can hold an associated public IP (IpAddressManagerImpl.associateIPToGuestNetwork). */
async function checkNetworkTakesPublicIp(ctx: NetCtx, network: NetworkRow): Promise<void> {
  if (network.type === 'L2')
    throw invalidParameter(
      'networkid',
      network.uuid,
      `network '${network.name}' is L2 and has no IP services`,
    );
  const offering = network.offering_id !== null ? await offeringById(ctx.tx, network.offering_id) : undefined;
  if (network.type === 'Shared') {
    const ok =
      offering &&
      ['SourceNat', 'StaticNat', 'Lb', 'PortForwarding', 'Firewall'].some((s) => hasService(offering, s));
    if (!ok) {
      throw invalidParameter(
        'networkid',
        network.uuid,
        `shared network '${network.name}' offers none of SourceNat, StaticNat, Lb, PortForwarding, Firewall: public IPs cannot be associated with it`,
      );
    }
  } else if (network.vpc_id === null && !(offering && hasService(offering, 'SourceNat'))) {
    throw invalidParameter(
      'networkid',
      network.uuid,
      `isolated network '${network.name}' has no SourceNat service: public IPs cannot be associated with it`,
    );
  }
}

export async function associateIpAddress(
  ctx: NetCtx,
  p: AssociateParams,
  deps: AssociateDeps,
  /** `inline`: the association job runs in this transaction (CommandContext.inline), see AssignPublicIp.assignNow. */
  options: { hold?: boolean; inline?: boolean | undefined; callerCheck?: CallerCheck | undefined } = {},
): Promise<IpRow> {
  if (p.networkid && p.vpcid) throw invalidParameter('vpcid', p.vpcid, 'give networkid or vpcid, not both');
  const network = p.networkid ? await deps.network(p.networkid) : undefined;
  const vpc = p.vpcid
    ? await deps.vpc(p.vpcid)
    : network?.vpc_id != null
      ? await ctx.tx.selectFrom('vpcs').selectAll().where('id', '=', network.vpc_id).executeTakeFirstOrThrow()
      : undefined;
  // The owner: explicit (admins), else the network's/VPC's owner when the caller may act on it, else the caller.
  let owner: Owner;
  if (p.account !== undefined || p.domainid !== undefined) owner = await deps.resolveOwner(p);
  else if (network && network.account_id !== null) owner = await ownerById(ctx.tx, network.account_id);
  else if (vpc) owner = await ownerById(ctx.tx, vpc.account_id);
  else owner = ownerOfCaller(ctx.caller) ?? (await ownerById(ctx.tx, ctx.caller.accountId));
  await checkAccess(ctx.tx, ctx.caller, owner, `account '${owner.accountName}'`);
  if (network) {
    if (network.account_id !== null && network.account_id !== owner.accountId) {
      throw permissionDenied(
        `Network '${network.name}' belongs to another account than '${owner.accountName}'`,
      );
    }
    await checkNetworkTakesPublicIp(ctx, network);
  }
  if (vpc && vpc.account_id !== owner.accountId) {
    throw permissionDenied(`VPC '${vpc.name}' belongs to another account than '${owner.accountName}'`);
  }
  let zone: ZoneRow;
  let ranges: RangeRow[] | undefined;
  let pnUuids: Map<number, string> | undefined;
  if (network) zone = await deps.zoneById(network.zone_id);
  else if (vpc) zone = await deps.zoneById(vpc.zone_id);
  else if (p.zoneid && !p.isportable)
    ({ zone, ranges, pnUuids } = await zoneWithRanges(ctx.tx, p.zoneid, deps, options.callerCheck));
  else if (p.zoneid) zone = await deps.zone(p.zoneid);
  else
    throw new CloudStackError(
      'InvalidParameterValue',
      'Unable to execute API command associateIpAddress due to missing parameter zoneid (or networkid/vpcid)',
    );
  if (p.zoneid && zone.uuid !== p.zoneid)
    throw invalidParameter('zoneid', p.zoneid, `the network/VPC is in zone ${zone.name}`);
  if (zone.allocation_state === 'Disabled' && ctx.caller.role !== 'Admin') {
    throw permissionDenied(`Cannot perform this operation, zone '${zone.name}' is currently disabled`);
  }
  const requested = p.ipaddress ? parseIpOf(4, p.ipaddress, 'ipaddress') : undefined;
  if (p.isportable) {
    return associatePortable(ctx, {
      zone,
      owner,
      network,
      vpc,
      requested,
      regionId: p.regionid ?? REGION_ID,
      hold: options.hold,
    });
  }
  // A Source NAT IP only for an isolated, non-VPC network that has none yet (associateIPToGuestNetwork).
  let sourceNat = false;
  if (network && network.type === 'Isolated' && network.vpc_id === null) {
    const has = () =>
      ctx.tx
        .selectFrom('ip_allocations')
        .select('id')
        .where('network_id', '=', network.id)
        .where('source_nat', '=', 1)
        .where('owner_kind', '=', 'publicip')
        .executeTakeFirst();
    // A network's source NAT is never taken away while it exists, so one found needs no lock; none found, the
    // network is held (as implementing it does) and asked again, or a burst of first associates would each
    // find none and each take one.
    if (!(await has())) {
      await lockNetwork(ctx.tx, network.id);
      sourceNat = !(await has());
    }
  }
  return assignPublicIp(ctx, {
    zone,
    owner,
    networkId: network?.id ?? null,
    vpcId: vpc?.id ?? null,
    sourceNat,
    requested,
    forDisplay: p.fordisplay,
    hold: options.hold,
    assignNow: options.inline === true,
    ranges,
    pnUuids,
  });
}

/**
 * The caller as the owner of what it asks for itself, from what its request's authentication read (account and
 * domain, this request): no second read. Undefined for a caller not read so (then the owner is read).
 */
function ownerOfCaller(c: NetCtx['caller']): Owner | undefined {
  if (c.domainName === undefined) return undefined;
  return {
    accountId: c.accountId,
    accountUuid: c.accountUuid,
    accountName: c.accountName,
    accountType: c.accountType,
    domainId: c.domainId,
    domainUuid: c.domainUuid,
    domainName: c.domainName,
    domainPath: c.domainPath,
  };
}

/**
 * The association job of associateIpAddress: the address taken at request time (Allocating) becomes
 * Allocated with its NET.IPASSIGN event and usage record; a held portable IP asked for with another
 * network/zone is transferred. Idempotent for a job run again after it committed.
 */
export async function completeAssociate(
  ctx: NetCtx,
  uuid: string,
  p: AssociateParams,
  deps: AssociateDeps,
): Promise<IpRow> {
  // The address as this process's request left it, a moment ago: confirmed by the change itself, read otherwise.
  const held = takeHeld<IpRow, Owner>(uuid);
  if (held && held.row.uuid === uuid) {
    const { row, owner, places, assignedIn } = held;
    // Written Allocated, with its event and usage record, by the request in this very transaction: answered as is.
    if (row.state === 'Allocated' && assignedIn?.deref() === ctx.tx) {
      untaggedIn(plain(ctx), 'PublicIpAddress', row.id);
      knownPlaces.set(row, places);
      return row;
    }
    const done = await finishAssign(ctx, row.id, uuid, owner, false, row.for_display !== 0, row, true);
    if (done) {
      untaggedIn(plain(ctx), 'PublicIpAddress', done.id);
      knownPlaces.set(done, places);
      return done;
    }
  }
  const joined = await ipForJob.first(ctx.tx, uuid);
  // Allocated: written so by its request in this transaction (inline, not remembered), or a job run again after
  // it committed; a portable IP may have to move (below).
  const assignedNow = joined?.state === 'Allocated' && !isPortableRow(joined);
  if (joined && (joined.state === 'Allocating' || assignedNow)) {
    const {
      o_account_uuid,
      o_account_name,
      o_account_type,
      o_domain_id,
      o_domain_uuid,
      o_domain_name,
      o_domain_path,
      z_uuid,
      z_name,
      r_uuid,
      r_vlan_tag,
      r_physical_network_id,
      r_for_system_vms,
      pn_uuid,
      ...read
    } = joined;
    const row: IpRow = read;
    const owner: Owner = {
      accountId: Number(row.account_id),
      accountUuid: o_account_uuid,
      accountName: o_account_name,
      accountType: Number(o_account_type),
      domainId: Number(o_domain_id),
      domainUuid: o_domain_uuid,
      domainName: o_domain_name,
      domainPath: o_domain_path,
    };
    let done = row;
    if (assignedNow) knownOwners.set(row, owner);
    else {
      done = await finishAssign(ctx, row.id, uuid, owner, isPortableRow(row), row.for_display !== 0, row);
      // Allocating until this transaction: no tags (tags/service.ts, knownUntagged), so its answer reads none.
      untaggedIn(plain(ctx), 'PublicIpAddress', done.id);
    }
    // The answer's zone, range and physical network, as read with the address (the change touches none of them).
    if (row.zone_id !== null && z_uuid !== null && z_name !== null)
      knownPlaces.set(done, {
        zone: { id: Number(row.zone_id), uuid: z_uuid, name: z_name },
        range:
          row.range_id !== null && r_uuid !== null && r_vlan_tag !== null && r_for_system_vms !== null
            ? {
                id: Number(row.range_id),
                uuid: r_uuid,
                vlan_tag: r_vlan_tag,
                physical_network_id: r_physical_network_id === null ? null : Number(r_physical_network_id),
                for_system_vms: Number(r_for_system_vms),
              }
            : undefined,
        pnUuid: pn_uuid ?? undefined,
      });
    return done;
  }
  const row = await publicIpByUuid(ctx.tx, uuid);
  const owner = await ownerById(ctx.tx, row.account_id!);
  if (row.state === 'Allocating')
    return finishAssign(ctx, row.id, uuid, owner, isPortableRow(row), row.for_display !== 0, row);
  if (row.state === 'Allocated' && isPortableRow(row) && p.isportable && p.ipaddress) {
    const network = p.networkid ? await deps.network(p.networkid) : undefined;
    const vpc = p.vpcid ? await deps.vpc(p.vpcid) : undefined;
    const zone = network
      ? await deps.zoneById(network.zone_id)
      : vpc
        ? await deps.zoneById(vpc.zone_id)
        : p.zoneid
          ? await deps.zone(p.zoneid)
          : await deps.zoneById(row.zone_id!);
    const moves =
      row.zone_id !== zone.id ||
      row.network_id !== (network?.id ?? null) ||
      row.vpc_id !== (vpc?.id ?? network?.vpc_id ?? null);
    return moves ? transferPortableIp(ctx, row, { zone, network, vpc }) : row;
  }
  return row;
}

/** A failed association job gives back the address its request took (CloudStack's releaseOnFailure). */
export async function abandonAllocating(ctx: NetCtx, uuid: string): Promise<void> {
  // An Allocating address has no tags (createTags takes Allocated ones); its tags would go with it all the same,
  // as on every path that deletes a public IP: the association job's answer relies on it (tagsFor's untaggedIn).
  await removeTagsOf(
    plain(ctx),
    'PublicIpAddress',
    ctx.tx
      .selectFrom('ip_allocations')
      .select('id')
      .where('uuid', '=', uuid)
      .where('owner_kind', '=', 'publicip')
      .where('state', '=', 'Allocating') as never,
  );
  await ctx.tx
    .deleteFrom('ip_allocations')
    .where('uuid', '=', uuid)
    .where('state', '=', 'Allocating')
    .execute();
}

export async function disassociateIpAddress(ctx: NetCtx, p: { id: string }): Promise<void> {
  const row = await publicIpByUuid(ctx.tx, p.id);
  if (row.account_id !== null) {
    const owner = await ownerById(ctx.tx, row.account_id);
    await checkAccess(ctx.tx, ctx.caller, owner, `IP address ${formatIp(addressFromKey(4, row.address))}`);
  }
  if (row.state === 'Reserved') {
    throw invalidParameter('id', p.id, 'the address is Reserved, not associated; use releaseIpAddress');
  }
  if (row.source_nat === 1) {
    const live =
      row.network_id !== null
        ? await ctx.tx
            .selectFrom('networks')
            .select('name')
            .where('id', '=', row.network_id)
            .where('removed', 'is', null)
            .executeTakeFirst()
        : row.vpc_id !== null
          ? await ctx.tx
              .selectFrom('vpcs')
              .select('name')
              .where('id', '=', row.vpc_id)
              .where('removed', 'is', null)
              .executeTakeFirst()
          : undefined;
    if (live) {
      throw invalidParameter(
        'id',
        p.id,
        `the address is the source NAT IP of '${live.name}' and is released only with it`,
      );
    }
  }
  // Rules on the IP go with it (cleanupIpResources): releasePublicIp removes them and the static NAT association.
  await releasePublicIp(ctx, row);
}
