/**
 * A public IP's assignment: taken from its zone's ranges through src/addresses and made Allocated (or held
 * Allocating for a job to confirm: associateIpAddress's request, portable IPs), with its router bumped and its
 * NET.IPASSIGN (PORTABLE.IPASSIGN) event and usage record in the caller's transaction; on PostgreSQL the change
 * and its records in one statement. What other services call to get an address (network implement, VPCs) and what
 * the API paths share (associate.ts, portable-ips.ts).
 */
import { CloudStackError, insufficientAddressCapacity, invalidParameter } from '../errors/catalogue.js';
import { allocateAddressTx } from '../addresses/address-service.js';
import { INSERT_COLUMNS, insertParams, translated } from '../addresses/address-repository.js';
import type { NewAllocationRow } from '../addresses/address-repository.js';
import type { Allocation } from '../addresses/address-service.js';
import type { Family, IpAddress } from '../ipam/address.js';
import { addressFromKey, formatIp } from '../ipam/address.js';
import { RangeSet } from '../ipam/range.js';
import type { Tx } from '../store/db.js';
import type { NetCtx } from '../infrastructure/context.js';
import type { Owner } from '../infrastructure/owners.js';
import { publicScope } from '../infrastructure/scopes.js';
import { rangeOf } from '../infrastructure/vlan-ip-ranges.js';
import type { RangeRow } from '../infrastructure/vlan-ip-ranges.js';
import type { ZoneRow } from '../infrastructure/zones.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import { publicIpUuid } from './ids.js';
import { bumpPublicIpRouters } from '../routers/repository.js';
import { preparedQuery } from '../store/prepared.js';
import { rememberHeld } from './known.js';
import { sql } from 'kysely';
import { eventAndUsageFrom, eventRow, recordEventAndUsage, usageRow } from '../events/record.js';
import type { EventInput, EventRow, UsageInput, UsageRow } from '../events/record.js';
import { outboxEnabled } from '../events/outbox.js';
import { dialectOf } from '../store/migrations/helpers.js';
import { knownOwners, plain, zoneRanges, poolsFor, rangeIdOf, checkPublicIpLimit } from './service.js';
import type { IpRow } from './service.js';

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
/**
 * PostgreSQL: the INSERT of an address written Allocated at once (AssignPublicIp.assignNow), with its NET.IPASSIGN
 * event and usage record in the same statement, written only if the row went in (the usage record's resource id is
 * the new row's); the new row's id, none when the address is taken.
 */
const insertedAndRecorded = preparedQuery(
  (db: Executor, ...args: unknown[]) => {
    const row = args.slice(0, INSERT_COLUMNS.length);
    const event = args.slice(INSERT_COLUMNS.length, INSERT_COLUMNS.length + 15) as EventRow;
    // The usage record's resource id is the new row's (it has no parameter).
    const rest = args.slice(INSERT_COLUMNS.length + 15);
    const usage = [...rest.slice(0, USAGE_RESOURCE_ID), sql.ref('i.id'), ...rest.slice(USAGE_RESOURCE_ID)];
    return sql<{ id: number | string }>`with i as (insert into ip_allocations (${sql.join(
      INSERT_COLUMNS.map((c) => sql.ref(c)),
    )}) values (${sql.join(row.map((v) => sql`${v}`))})
        on conflict (scope, family, address) do nothing returning id),
      ${eventAndUsageFrom('i', event, usage as UsageRow)}
      select id from i`;
  },
  INSERT_COLUMNS.length + 15 + 10,
);
/** Where usageRow puts the resource id. */
const USAGE_RESOURCE_ID = 4;
const ipById = preparedQuery((db: Executor, id: number) =>
  db.selectFrom('ip_allocations').selectAll().where('id', '=', id),
);

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
  /**
   * With `hold`: the job runs in this same transaction (CommandContext.inline), so the address is written
   * Allocated at once, with its event and usage record, rather than Allocating and then changed by the job; the
   * job (completeAssociate) finds it assigned and only answers.
   */
  assignNow?: boolean;
}

/** Takes a public IP of the zone for `owner` (Free → Allocating → Allocated), with its event and usage record. */
export async function assignPublicIp(ctx: NetCtx, a: AssignPublicIp): Promise<IpRow> {
  const { zone, owner } = a;
  if (!a.skipLimit) await checkPublicIpLimit(ctx, owner);
  const ranges = a.ranges ?? (await zoneRanges(ctx.tx, zone.id));
  const pools = poolsFor(ranges, owner);
  // Assigned at once on PostgreSQL: the row, its event and its usage record in one statement (insertedAndRecorded).
  const recordedWithInsert =
    a.hold === true && a.assignNow === true && dialectOf(ctx.tx as never) === 'postgres' && !outboxEnabled();
  let recordedFor: string | undefined;
  const insertAndRecord = (row: NewAllocationRow) =>
    translated(plain(ctx), 'recording an address allocation', async () => {
      const [e, u] = assignRecords(
        ctx,
        {
          id: 0,
          family: row.family,
          address: row.address,
          source_nat: row.source_nat ?? 0,
          zone_id: row.zone_id ?? null,
        },
        row.uuid ?? '',
        owner,
        false,
      );
      const usage: unknown[] = usageRow(u);
      usage.splice(USAGE_RESOURCE_ID, 1);
      const r = await insertedAndRecorded.first(ctx.tx, ...insertParams(row), ...eventRow(e), ...usage);
      if (!r) return null;
      recordedFor = row.address;
      return Number(r.id);
    });
  const base = {
    scope: publicScope(zone.id),
    // Random, not lowest-first: concurrent callers chasing the same lowest address queue behind each other's
    // uncommitted INSERT on PostgreSQL (a unique check waits for the in-flight row), one transaction at a time.
    // CloudStack promises no order either (lowest range first, then whatever row the database returns).
    strategy: 'random' as const,
    state: a.hold && a.assignNow ? ('Allocated' as const) : ('Allocating' as const),
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
    insertOwn: recordedWithInsert ? insertAndRecord : undefined,
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
  if (!a.hold) return finishAssign(ctx, alloc.id, uuid, owner, false, a.forDisplay);
  // Inserted with its id, or (a Reserved address claimed) given it now.
  const inserted = alloc.inserted?.uuid === uuid ? alloc.inserted : undefined;
  const row = inserted ? heldRow(alloc, inserted) : await holdAllocating(ctx, alloc.id, uuid, a.forDisplay);
  if (a.assignNow)
    await assigned(ctx, row, uuid, owner, false, inserted !== undefined && recordedFor === row.address);
  if (inserted) {
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
        assignedIn: a.assignNow ? new WeakRef(ctx.tx) : undefined,
      });
  }
  return row;
}

/**
 * The row of an address this transaction inserted Allocating (Allocated: assignNow) with its id (AllocateRequest.uuidOf), as the
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
export async function holdAllocating(
  ctx: NetCtx,
  id: number,
  uuid: string,
  forDisplay?: boolean,
): Promise<IpRow> {
  // PostgreSQL and SQLite: the row in the same round trip; MariaDB (no UPDATE … RETURNING) reads it after.
  const r = await holdUpdate.run(ctx.tx, uuid, forDisplay === false ? 0 : 1, id);
  const row = r.rows[0] as IpRow | undefined;
  if (row) return row;
  const read = await ipById.first(ctx.tx, id);
  if (!read) throw new Error(`ip_allocations row ${id} vanished under its transaction`);
  return read;
}

/** An assignment's NET.IPASSIGN (PORTABLE.IPASSIGN) event and usage record, from the assigned row. */
function assignRecords(
  ctx: NetCtx,
  row: Pick<IpRow, 'id' | 'family' | 'address' | 'source_nat' | 'zone_id'>,
  uuid: string,
  owner: Owner,
  portable: boolean,
): [EventInput, UsageInput] {
  const type = portable ? 'PORTABLE.IPASSIGN' : 'NET.IPASSIGN';
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
}

/** What follows an address's becoming Allocated, in its transaction: its router, its event and usage record. */
async function assigned(
  ctx: NetCtx,
  row: IpRow,
  uuid: string,
  owner: Owner,
  portable: boolean,
  recorded: boolean,
): Promise<void> {
  knownOwners.set(row, owner);
  // The network's (VPC's) router now holds it: same transaction as the change (DESIGN.md guarantee 5).
  await bumpPublicIpRouters(plain(ctx), row);
  if (!recorded)
    await recordEventAndUsage(ctx.tx as unknown as Tx, ...assignRecords(ctx, row, uuid, owner, portable));
}

export async function finishAssign(
  ctx: NetCtx,
  allocId: number,
  uuid: string,
  owner: Owner,
  portable: boolean,
  forDisplay?: boolean,
  read?: IpRow,
): Promise<IpRow>;
export async function finishAssign(
  ctx: NetCtx,
  allocId: number,
  uuid: string,
  owner: Owner,
  portable: boolean,
  forDisplay: boolean,
  read: IpRow,
  held: true,
): Promise<IpRow | undefined>;
export async function finishAssign(
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
  const records = (row: IpRow) => assignRecords(ctx, row, uuid, owner, portable);
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
  await assigned(ctx, row, uuid, owner, portable, recorded);
  return row;
}
