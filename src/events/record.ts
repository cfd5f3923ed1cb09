/**
 * Writing events and usage records. Both take the transaction of the change they record, so an event exists
 * exactly when its change committed.
 */
import { randomUUID } from 'node:crypto';
import type { Tx } from '../store/db.js';
import { nowMs } from '../store/db.js';
import type { Caller } from '../api/command.js';
import type { EventType } from './event-types.js';
import { outboxEnabled, writeOutbox } from './outbox.js';
import { preparedQuery } from '../store/prepared.js';
import { sql } from 'kysely';
import type { Kysely, RawBuilder } from 'kysely';
import { dialectOf } from '../store/migrations/helpers.js';

export interface EventOwner {
  accountId: number;
  accountName: string;
  domainId: number;
  domainPath: string;
}

export interface EventInput {
  type: EventType;
  description: string;
  /** Who did it (the API caller); omitted for system actions (GC, reconciler). */
  actor?: Caller;
  /** Whose resource it is; defaults to the actor's account. Users list events of their own account. */
  owner?: EventOwner;
  level?: 'INFO' | 'WARN' | 'ERROR';
  state?: 'Created' | 'Scheduled' | 'Started' | 'Completed';
  resourceType?: string;
  resourceId?: string;
  resourceName?: string;
}

/** An events row as recordEvent writes it, in its columns' order (eventColumns). */
export type EventRow = [
  uuid: string,
  type: string,
  level: string,
  state: string,
  description: string,
  userId: number | null,
  username: string | null,
  accountId: number,
  accountName: string,
  domainId: number,
  domainPath: string,
  resourceType: string | null,
  resourceId: string | null,
  resourceName: string | null,
  created: number,
];
const eventColumns = [
  'uuid',
  'type',
  'level',
  'state',
  'description',
  'user_id',
  'username',
  'account_id',
  'account_name',
  'domain_id',
  'domain_path',
  'resource_type',
  'resource_id',
  'resource_name',
  'created',
] as const;

/** The event's row: its owner (the actor's account unless given), a new uuid and the time now. */
export function eventRow(e: EventInput): EventRow {
  const owner: EventOwner | undefined =
    e.owner ??
    (e.actor && {
      accountId: e.actor.accountId,
      accountName: e.actor.accountName,
      domainId: e.actor.domainId,
      domainPath: e.actor.domainPath,
    });
  if (!owner) throw new Error(`event ${e.type} needs an actor or an owner`);
  return [
    randomUUID(),
    e.type,
    e.level ?? 'INFO',
    e.state ?? 'Completed',
    e.description,
    e.actor?.userId ?? null,
    e.actor?.username ?? null,
    owner.accountId,
    owner.accountName,
    owner.domainId,
    owner.domainPath,
    e.resourceType ?? null,
    e.resourceId ?? null,
    e.resourceName ?? null,
    nowMs(),
  ];
}

export async function recordEvent(tx: Tx, e: EventInput): Promise<string> {
  const row = eventRow(e);
  await insertEvent.run(tx, ...row);
  await outbox(tx, e, row);
  return row[0];
}

/** Events on a message bus: the same transaction writes the message, so it exists exactly when the event does. */
async function outbox(tx: Tx, e: EventInput, row: EventRow): Promise<void> {
  if (!outboxEnabled()) return;
  const [uuid, , , state, , , , accountId] = row;
  const accountUuid =
    e.actor && e.actor.accountId === accountId
      ? e.actor.accountUuid
      : (await tx.selectFrom('accounts').select('uuid').where('id', '=', accountId).executeTakeFirst())?.uuid;
  await writeOutbox(tx, uuid, {
    type: e.type,
    state,
    description: e.description,
    userUuid: e.actor?.userUuid || undefined,
    accountUuid,
    resourceType: e.resourceType,
    resourceUuid: e.resourceId,
    created: row[14],
  });
}

export interface UsageInput {
  /** CloudStack usage event type, e.g. NET.IPASSIGN, NET.IPRELEASE, VM.CREATE, NETWORK.DELETE. */
  type: EventType;
  accountId: number;
  domainId: number;
  zoneId?: number;
  resourceId?: number;
  resourceUuid?: string;
  resourceName?: string;
  /** e.g. `VirtualNetwork` / `DirectAttached` for IPs, the network type for networks. */
  resourceType?: string;
  offeringId?: number;
  /** e.g. 1 for a source-NAT IP in CloudStack's NET.IPASSIGN usage records. */
  size?: number;
}

/** A usage_events row as recordUsage writes it, in its columns' order (usageColumns). */
export type UsageRow = [
  type: string,
  accountId: number,
  domainId: number,
  zoneId: number | null,
  resourceId: number | null,
  resourceUuid: string | null,
  resourceName: string | null,
  resourceType: string | null,
  offeringId: number | null,
  size: number | null,
  created: number,
];
const usageColumns = [
  'type',
  'account_id',
  'domain_id',
  'zone_id',
  'resource_id',
  'resource_uuid',
  'resource_name',
  'resource_type',
  'offering_id',
  'size',
  'created',
] as const;

export const usageRow = (u: UsageInput): UsageRow => [
  u.type,
  u.accountId,
  u.domainId,
  u.zoneId ?? null,
  u.resourceId ?? null,
  u.resourceUuid ?? null,
  u.resourceName ?? null,
  u.resourceType ?? null,
  u.offeringId ?? null,
  u.size ?? null,
  nowMs(),
];

export async function recordUsage(tx: Tx, u: UsageInput): Promise<void> {
  await insertUsage.run(tx, ...usageRow(u));
}

/**
 * `e_ as (insert into events … select … from <source>), u_ as (insert into usage_events … select … from
 * <source>)`: PostgreSQL's data-modifying CTEs, for a statement that makes a change (its CTE `source`, with
 * RETURNING) and writes its event and usage record in the same round trip, each only if `source` has a row. A
 * value may be a column of `source` (`sql.ref('u.zone_id')`). The outbox is not written here: call it only
 * while `outboxEnabled()` is false.
 */
export function eventAndUsageFrom(
  source: string,
  event: Loosened<EventRow>,
  usage: Loosened<UsageRow>,
): RawBuilder<unknown> {
  const from = sql.table(source);
  return sql`e_ as (insert into events (${columnList(eventColumns)}) select ${valueList(event)} from ${from}),
    u_ as (insert into usage_events (${columnList(usageColumns)}, processed) select ${valueList(usage)}, 0 from ${from})`;
}

/** A row whose values may also be SQL expressions. */
type Loosened<R extends unknown[]> = { [K in keyof R]: R[K] | RawBuilder<unknown> } & unknown[];

const columnList = (cs: readonly string[]) => sql.join(cs.map((c) => sql.ref(c)));
const valueList = (vs: readonly unknown[]) => sql.join(vs.map((v) => (isRaw(v) ? v : sql`${v}`)));
const isRaw = (v: unknown): v is RawBuilder<unknown> =>
  typeof v === 'object' && v !== null && 'isRawBuilder' in v;

/**
 * An event and its usage record: on PostgreSQL one statement (two INSERTs in a CTE), elsewhere one each. Same
 * rows and same transaction as recordEvent then recordUsage.
 */
export async function recordEventAndUsage(tx: Tx, e: EventInput, u: UsageInput): Promise<string> {
  const row = eventRow(e);
  if (dialectOf(tx as unknown as Kysely<unknown>) === 'postgres') {
    await insertEventAndUsage.run(tx, ...row, ...usageRow(u));
    await outbox(tx, e, row);
  } else {
    await insertEvent.run(tx, ...row);
    await outbox(tx, e, row);
    await insertUsage.run(tx, ...usageRow(u));
  }
  return row[0];
}

// Prepared (src/store/prepared.ts): every change writes them, in its own transaction. One column list and one
// row order each (eventColumns/EventRow, usageColumns/UsageRow) for every statement that writes them.
const eventInsert = (v: readonly unknown[]) =>
  sql`insert into events (${columnList(eventColumns)}) values (${valueList(v)})`;
const usageInsert = (v: readonly unknown[]) =>
  sql`insert into usage_events (${columnList(usageColumns)}, processed) values (${valueList(v)}, 0)`;

const insertEvent = preparedQuery((tx: Tx, ...v: EventRow) => eventInsert(v), eventColumns.length);

/** PostgreSQL: the event and the usage record in one statement. */
const insertEventAndUsage = preparedQuery(
  (tx: Tx, ...v: [...EventRow, ...UsageRow]) =>
    sql`with e_ as (${eventInsert(v.slice(0, eventColumns.length))}) ${usageInsert(v.slice(eventColumns.length))}`,
  eventColumns.length + usageColumns.length,
);

const insertUsage = preparedQuery((tx: Tx, ...v: UsageRow) => usageInsert(v), usageColumns.length);
