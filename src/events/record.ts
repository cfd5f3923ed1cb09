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
  await tx
    .insertInto('events')
    .values({
      uuid,
      type: e.type,
      level: e.level ?? 'INFO',
      state: e.state ?? 'Completed',
      description: e.description,
      user_id: e.actor?.userId ?? null,
      username: e.actor?.username ?? null,
      account_id: owner.accountId,
      account_name: owner.accountName,
      domain_id: owner.domainId,
      domain_path: owner.domainPath,
      resource_type: e.resourceType ?? null,
      resource_id: e.resourceId ?? null,
      resource_name: e.resourceName ?? null,
      created,
    })
    .execute();
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
  await tx
    .insertInto('usage_events')
    .values({
      type: u.type,
      account_id: u.accountId,
      domain_id: u.domainId,
      zone_id: u.zoneId ?? null,
      resource_id: u.resourceId ?? null,
      resource_uuid: u.resourceUuid ?? null,
      resource_name: u.resourceName ?? null,
      resource_type: u.resourceType ?? null,
      offering_id: u.offeringId ?? null,
      size: u.size ?? null,
      created: nowMs(),
      processed: 0,
    })
    .execute();
}
