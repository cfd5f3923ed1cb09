/**
 * Public and portable IPs: the address's state lives only in its ip_allocations row (scope `pub:<zone>` or
 * `portable:<region>`), taken through src/addresses. Every assign/release writes NET.IPASSIGN/NET.IPRELEASE
 * (PORTABLE.* for portable IPs) and a usage record in the caller's transaction.
 */
import { removeTagsOf, untaggedIn } from '../tags/service.js';
import { removeRulesOf } from '../rules/repository.js';
import { removeLbChildrenOf } from '../lb/repository.js';
import type { Selectable } from 'kysely';
import {
  CloudStackError,
  insufficientAddressCapacity,
  invalidParameter,
  permissionDenied,
} from '../errors/catalogue.js';
import { allocateAddressTx } from '../addresses/address-service.js';
import type { Allocation } from '../addresses/address-service.js';
import type { Family, IpAddress } from '../ipam/address.js';
import { addressFromKey, formatIp, parseIpOf, valueKey } from '../ipam/address.js';
import { RangeSet } from '../ipam/range.js';
import type { IpRange } from '../ipam/range.js';
import type { Executor as PlainExecutor, Tx } from '../store/db.js';
import type { NetCtx } from '../infrastructure/context.js';
import { noSuchEntity } from '../infrastructure/context.js';
import type { Owner } from '../infrastructure/owners.js';
import { checkAccess, ownerById } from '../infrastructure/owners.js';
import { portableScope, publicScope } from '../infrastructure/scopes.js';
import { rangeOf } from '../infrastructure/vlan-ip-ranges.js';
import type { RangeRow } from '../infrastructure/vlan-ip-ranges.js';
import type { ZoneRow } from '../infrastructure/zones.js';
import type { NetDatabase, NetExecutor as Executor } from '../networks/tables.js';
import { hasService, lockNetwork, offeringById } from '../networks/repository.js';
import type { NetworkRow, VpcRow } from '../networks/repository.js';
import { decodePublicIpUuid, publicIpUuid } from './ids.js';
import { bumpPublicIpRouters } from '../routers/repository.js';
import { preparedQuery } from '../store/prepared.js';
import { knownPlaces, rememberHeld, takeHeld } from './known.js';
import { sql } from 'kysely';
import { eventAndUsageFrom, eventRow, recordEventAndUsage, usageRow } from '../events/record.js';
import type { EventInput, EventRow, UsageInput, UsageRow } from '../events/record.js';
import { outboxEnabled } from '../events/outbox.js';
import { dialectOf } from '../store/migrations/helpers.js';
import { callerChecked } from '../api/caller-check.js';
import type { CallerCheck } from '../api/caller-check.js';

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
/** Where the database has UPDATE … RETURNING (PostgreSQL, SQLite): the changed row in the same round trip. */
const returnsRows = (db: Executor): boolean => db.getExecutor().adapter.supportsReturning;
const holdUpdate = preparedQuery((db: Executor, uuid: string, forDisplay: number, id: number) => {
  const q = db.updateTable('ip_allocations').set({ uuid, for_display: forDisplay }).where('id', '=', id);
  return returnsRows(db) ? q.returningAll() : q;
});
const allocatedUpdate = preparedQuery(
  (db: Executor, uuid: string, forDisplay: number, updated: number, id: number) => {
    const q = db
      .updateTable('ip_allocations')
      .set({ state: 'Allocated', uuid, for_display: forDisplay, updated })
      .where('id', '=', id)
      .where('state', 'in', ['Allocating', 'Reserved']);
    return returnsRows(db) ? q.returningAll() : q;
  },
);
/**
 * PostgreSQL: allocatedUpdate with the address's NET.IPASSIGN event and usage record in the same statement
 * (data-modifying CTEs, src/events/record.ts), written only if the address changed; the row as changed.
 */
const assignedAndRecorded = preparedQuery(
  (
    db: Executor,
    uuid: string,
    forDisplay: number,
    updated: number,
    id: number,
    sourceNat: number,
    ...records: [...EventRow, ...UsageRow]
  ) =>
    sql<IpRow>`with u as (update ip_allocations set state = 'Allocated', uuid = ${uuid},
        for_display = ${forDisplay}, updated = ${updated}
        where id = ${id} and state in ('Allocating', 'Reserved') and source_nat = ${sourceNat} returning *),
      ${eventAndUsageFrom('u', records.slice(0, 15) as EventRow, records.slice(15) as UsageRow)}
      select * from u`,
  5 + 15 + 11,
);
const ipById = preparedQuery((db: Executor, id: number) =>
  db.selectFrom('ip_allocations').selectAll().where('id', '=', id),
);
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

async function zoneRanges(db: Executor, zoneId: number): Promise<RangeRow[]> {
  return rangesOfZone.rows(db, zoneId);
}

interface Pools {
  dedicated: { set: RangeSet; ranges: { id: number; range: IpRange }[] };
  system: { set: RangeSet; ranges: { id: number; range: IpRange }[] };
}

/** Dedicated ranges of the owner's account (or its domain) come first; the undedicated ones are the system pool. */
function poolsFor(ranges: readonly RangeRow[], owner: Owner): Pools {
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

const rangeIdOf =
  (ranges: readonly { id: number; range: IpRange }[]) =>
  (value: bigint): number | null =>
    ranges.find((r) => value >= r.range.start && value <= r.range.end)?.id ?? null;

/**
 * CloudStack's account lock around allocateIp: the limit count and the new row must not interleave with
 * another allocation for the same account, or two callers at limit-1 both pass. Only limited accounts pay it.
 */
async function checkPublicIpLimit(ctx: NetCtx, owner: Owner): Promise<void> {
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

export interface AssignPublicIp {
  zone: ZoneRow;
  owner: Owner;
  networkId?: number | null;
  vpcId?: number | null;
  sourceNat?: boolean;
  requested?: IpAddress;
  forDisplay?: boolean;
  /** Source-NAT and system allocations skip the account limit, as CloudStack's assignDedicateIpAddress does not. */
  skipLimit?: boolean;
  /** The zone's public ranges when the caller read them with the zone (zoneWithRanges): not read again. */
  ranges?: RangeRow[];
  /** Their physical networks' uuids, read with them: a held address is kept for its job (known.ts rememberHeld). */
  pnUuids?: Map<number, string>;
  /**
   * Stop at Allocating (with its id): associateIpAddress takes the address at request time, as CloudStack's
   * BaseAsyncCreateCmd create() does, and its job confirms it (completeAssociate).
   */
  hold?: boolean;
}

/** Takes a public IP of the zone for `owner` (Free → Allocating → Allocated), with its event and usage record. */
export async function assignPublicIp(ctx: NetCtx, a: AssignPublicIp): Promise<IpRow> {
  const { zone, owner } = a;
  if (!a.skipLimit) await checkPublicIpLimit(ctx, owner);
  const ranges = a.ranges ?? (await zoneRanges(ctx.tx, zone.id));
  const pools = poolsFor(ranges, owner);
  const base = {
    scope: publicScope(zone.id),
    // Random, not lowest-first: concurrent callers chasing the same lowest address queue behind each other's
    // uncommitted INSERT on PostgreSQL (a unique check waits for the in-flight row), one transaction at a time.
    // CloudStack promises no order either (lowest range first, then whatever row the database returns).
    strategy: 'random' as const,
    state: 'Allocating' as const,
    owner: { kind: 'publicip' },
    zoneId: zone.id,
    accountId: owner.accountId,
    domainId: owner.domainId,
    networkId: a.networkId ?? null,
    vpcId: a.vpcId ?? null,
    sourceNat: a.sourceNat ?? false,
    claimReservedBy: owner.accountId,
    exhaustedMessage: `zone ${zone.name} has no free public IP address`,
    uuidList: [zone.uuid],
    now: ctx.now,
    // The address's id and display flag go in with its row (no UPDATE after the INSERT: holdAllocating).
    uuidOf: (value: bigint) => publicIpUuid('pub', zone.id, 4, value),
    forDisplay: a.forDisplay !== false,
  };
  let alloc: Allocation | undefined;
  if (a.requested) {
    const all = [...pools.dedicated.ranges, ...pools.system.ranges];
    if (!all.some((r) => a.requested!.value >= r.range.start && a.requested!.value <= r.range.end)) {
      const other = ranges.find((r) => {
        const rr = rangeOf(r);
        return rr && a.requested!.value >= rr.start && a.requested!.value <= rr.end;
      });
      throw invalidParameter(
        'ipaddress',
        formatIp(a.requested),
        other
          ? 'the address is in a range dedicated to another account or domain'
          : `the address is not in a public IP range of zone ${zone.name}`,
      );
    }
    alloc = await allocateAddressTx(plain(ctx), {
      ...base,
      pool: RangeSet.of(all.map((r) => r.range)),
      requested: a.requested,
      requestedParam: 'ipaddress',
      rangeId: rangeIdOf(all),
    });
  } else {
    if (pools.dedicated.ranges.length === 0 && pools.system.ranges.length === 0) {
      throw insufficientAddressCapacity(`zone ${zone.name} has no public IP range`, [zone.uuid]);
    }
    if (pools.dedicated.ranges.length > 0) {
      try {
        alloc = await allocateAddressTx(plain(ctx), {
          ...base,
          pool: pools.dedicated.set,
          rangeId: rangeIdOf(pools.dedicated.ranges),
        });
      } catch (e) {
        const fallBack =
          e instanceof CloudStackError &&
          e.kind === 'InsufficientAddressCapacity' &&
          pools.system.ranges.length > 0;
        if (!fallBack) throw e;
        const useSystem = await ctx.setting('use.system.public.ips', { accountId: owner.accountId });
        if (useSystem === 'false') throw e;
      }
    }
    alloc ??= await allocateAddressTx(plain(ctx), {
      ...base,
      pool: pools.system.set,
      rangeId: rangeIdOf(pools.system.ranges),
    });
  }
  const uuid = publicIpUuid('pub', zone.id, 4, alloc.address.value);
  if (a.hold && alloc.inserted?.uuid === uuid) {
    const row = heldRow(alloc, alloc.inserted);
    const range = a.ranges && a.pnUuids ? a.ranges.find((r) => r.id === row.range_id) : undefined;
    const pnUuid = range?.physical_network_id != null ? a.pnUuids?.get(range.physical_network_id) : undefined;
    // Kept for the job when its answer's places are all known here (as the job's own read would give them).
    if (range && (range.physical_network_id === null || pnUuid !== undefined))
      rememberHeld<IpRow, Owner>(uuid, {
        row,
        owner,
        places: {
          zone: { id: zone.id, uuid: zone.uuid, name: zone.name },
          range: {
            id: range.id,
            uuid: range.uuid,
            vlan_tag: range.vlan_tag,
            physical_network_id: range.physical_network_id,
            for_system_vms: range.for_system_vms,
          },
          pnUuid,
        },
      });
    return row;
  }
  return a.hold
    ? holdAllocating(ctx, alloc.id, uuid, a.forDisplay)
    : finishAssign(ctx, alloc.id, uuid, owner, false, a.forDisplay);
}

/**
 * The row of an address this transaction inserted Allocating with its id (AllocateRequest.uuidOf), as the
 * database holds it: what was inserted, and the defaults of the columns it did not name (no static NAT). Nothing
 * else writes an Allocating row before its job, and it is not committed yet.
 */
function heldRow(alloc: Allocation, inserted: { uuid: string; forDisplay: boolean }): IpRow {
  return {
    id: alloc.id,
    scope: alloc.scope,
    family: alloc.address.family,
    address: alloc.key,
    range_id: alloc.rangeId,
    state: alloc.state,
    owner_kind: alloc.ownerKind,
    owner_id: alloc.ownerId,
    zone_id: alloc.zoneId,
    account_id: alloc.accountId,
    domain_id: alloc.domainId,
    network_id: alloc.networkId,
    vpc_id: alloc.vpcId,
    vm_id: alloc.vmId,
    source_nat: alloc.sourceNat ? 1 : 0,
    is_system: alloc.isSystem ? 1 : 0,
    created: alloc.created,
    updated: alloc.updated,
    uuid: inserted.uuid,
    static_nat: 0,
    vm_ip: null,
    for_display: inserted.forDisplay ? 1 : 0,
  };
}

/** Gives an Allocating address its id; the association job (or its failure) moves it on. */
async function holdAllocating(ctx: NetCtx, id: number, uuid: string, forDisplay?: boolean): Promise<IpRow> {
  // PostgreSQL and SQLite: the row in the same round trip; MariaDB (no UPDATE … RETURNING) reads it after.
  const r = await holdUpdate.run(ctx.tx, uuid, forDisplay === false ? 0 : 1, id);
  const row = r.rows[0] as IpRow | undefined;
  if (row) return row;
  const read = await ipById.first(ctx.tx, id);
  if (!read) throw new Error(`ip_allocations row ${id} vanished under its transaction`);
  return read;
}

async function finishAssign(
  ctx: NetCtx,
  allocId: number,
  uuid: string,
  owner: Owner,
  portable: boolean,
  forDisplay?: boolean,
  read?: IpRow,
): Promise<IpRow>;
async function finishAssign(
  ctx: NetCtx,
  allocId: number,
  uuid: string,
  owner: Owner,
  portable: boolean,
  forDisplay: boolean,
  read: IpRow,
  held: true,
): Promise<IpRow | undefined>;
async function finishAssign(
  ctx: NetCtx,
  allocId: number,
  uuid: string,
  owner: Owner,
  portable: boolean,
  forDisplay?: boolean,
  /** The row as read in this transaction before (completeAssociate): then it is not read again. */
  read?: IpRow,
  /**
   * `read` is what the request left in this process (known.ts takeHeld), not read here: when the change finds no
   * such row, nothing is done and undefined returned (the caller reads the row and goes on from what it finds).
   */
  held = false,
): Promise<IpRow | undefined> {
  // Allocating → Allocated in the same transaction: a caller never sees an address half-assigned.
  const change = {
    state: 'Allocated',
    uuid,
    for_display: forDisplay === false ? 0 : 1,
    updated: ctx.now,
  } as const;
  const type = portable ? 'PORTABLE.IPASSIGN' : 'NET.IPASSIGN';
  const records = (row: IpRow): [EventInput, UsageInput] => {
    const ip = formatIp(addressFromKey(row.family as Family, row.address));
    return [
      {
        type,
        description: `${portable ? 'Portable ' : ''}IP address ${ip} assigned${row.source_nat ? ' as source NAT' : ''} to account ${owner.accountName}`,
        actor: ctx.caller,
        resourceType: 'IpAddress',
        resourceId: uuid,
        owner,
      },
      {
        type,
        accountId: owner.accountId,
        domainId: owner.domainId,
        zoneId: row.zone_id ?? undefined,
        resourceId: row.id,
        resourceUuid: uuid,
        resourceName: ip,
        resourceType: 'VirtualNetwork',
        // CloudStack's NET.IPASSIGN usage record carries 1 as size for a source-NAT address.
        size: row.source_nat === 1 ? 1 : 0,
      },
    ];
  };
  let row: IpRow | undefined;
  let recorded = false;
  if (read && read.id === allocId && dialectOf(ctx.tx as never) === 'postgres' && !outboxEnabled()) {
    // PostgreSQL, the row read before: the change, its event and its usage record in one statement. The
    // records are written only with the change (from its RETURNING), and from the row as read, which the
    // statement checks is still so where the records depend on it (source_nat; address, family and zone do not
    // change while an address is Allocating).
    const [e, u] = records(read);
    row = (
      await assignedAndRecorded.run(
        ctx.tx,
        uuid,
        change.for_display,
        change.updated,
        allocId,
        read.source_nat,
        ...eventRow(e),
        ...usageRow(u),
      )
    ).rows[0];
    recorded = row !== undefined;
  }
  if (!row) {
    const r = await allocatedUpdate.run(ctx.tx, uuid, change.for_display, change.updated, allocId);
    // PostgreSQL and SQLite: the row as changed, in the same round trip.
    row = r.rows[0] as IpRow | undefined;
    // MariaDB has no UPDATE … RETURNING. The row read by id in this transaction, changed by this UPDATE alone
    // (one row changed): the row with the change. Only a column the UPDATE does not set could differ, if another
    // transaction changed it in between, and an Allocating address has nothing else that changes it.
    if (!row && !returnsRows(ctx.tx) && read && read.id === allocId && Number(r.numAffectedRows) === 1)
      row = { ...read, ...change };
  }
  if (!row && held) return undefined;
  row ??= await ipById.first(ctx.tx, allocId);
  if (!row) throw new Error(`ip_allocations row ${allocId} vanished under its transaction`);
  knownOwners.set(row, owner);
  // The network's (VPC's) router now holds it: same transaction as the change (DESIGN.md guarantee 5).
  await bumpPublicIpRouters(plain(ctx), row);
  if (!recorded) await recordEventAndUsage(ctx.tx as unknown as Tx, ...records(row));
  return row;
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

// ------------------------------------------------------------------------------------------------ API

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
  options: { hold?: boolean; callerCheck?: CallerCheck | undefined } = {},
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
    const { row, owner, places } = held;
    const done = await finishAssign(ctx, row.id, uuid, owner, false, row.for_display !== 0, row, true);
    if (done) {
      untaggedIn(plain(ctx), 'PublicIpAddress', done.id);
      knownPlaces.set(done, places);
      return done;
    }
  }
  const joined = await ipForJob.first(ctx.tx, uuid);
  if (joined && joined.state === 'Allocating') {
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
    const done = await finishAssign(ctx, row.id, uuid, owner, isPortableRow(row), row.for_display !== 0, row);
    // Allocating until this transaction: no tags (tags/service.ts, knownUntagged), so its answer reads none.
    untaggedIn(plain(ctx), 'PublicIpAddress', done.id);
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

async function associatePortable(
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

// -------------------------------------------------------------------------------------- reserve/release

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
