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

export async function recordEvent(tx: Tx, e: EventInput): Promise<string> {
  const owner: EventOwner | undefined =
    e.owner ??
    (e.actor && {
      accountId: e.actor.accountId,
      accountName: e.actor.accountName,
      domainId: e.actor.domainId,
      domainPath: e.actor.domainPath,
    });
  if (!owner) throw new Error(`event ${e.type} needs an actor or an owner`);
  const uuid = randomUUID();
  const created = nowMs();
  await insertEvent.run(
    tx,
    uuid,
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
    created,
  );
  // Events on a message bus: the same transaction writes the message, so it exists exactly when the event does.
  if (outboxEnabled()) {
    const accountUuid =
      e.actor && e.actor.accountId === owner.accountId
        ? e.actor.accountUuid
        : (
            await tx
              .selectFrom('accounts')
              .select('uuid')
              .where('id', '=', owner.accountId)
              .executeTakeFirst()
          )?.uuid;
    await writeOutbox(tx, uuid, {
      type: e.type,
      state: e.state ?? 'Completed',
      description: e.description,
      userUuid: e.actor?.userUuid || undefined,
      accountUuid,
      resourceType: e.resourceType,
      resourceUuid: e.resourceId,
      created,
    });
  }
  return uuid;
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

export async function recordUsage(tx: Tx, u: UsageInput): Promise<void> {
  await insertUsage.run(
    tx,
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
  );
}

// Prepared (src/store/prepared.ts): every change writes them, in its own transaction.
const insertEvent = preparedQuery(
  (
    tx: Tx,
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
  ) =>
    tx.insertInto('events').values({
      uuid,
      type,
      level,
      state,
      description,
      user_id: userId,
      username,
      account_id: accountId,
      account_name: accountName,
      domain_id: domainId,
      domain_path: domainPath,
      resource_type: resourceType,
      resource_id: resourceId,
      resource_name: resourceName,
      created,
    }),
);

const insertUsage = preparedQuery(
  (
    tx: Tx,
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
  ) =>
    tx.insertInto('usage_events').values({
      type,
      account_id: accountId,
      domain_id: domainId,
      zone_id: zoneId,
      resource_id: resourceId,
      resource_uuid: resourceUuid,
      resource_name: resourceName,
      resource_type: resourceType,
      offering_id: offeringId,
      size,
      created,
      processed: 0,
    }),
);
