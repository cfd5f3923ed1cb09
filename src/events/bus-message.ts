/**
 * The message an event becomes on the bus, as CloudStack's event notification framework shapes it (its
 * RabbitMQEventBus plugin): a routing key of five dot-separated parts
 * `<source>.<category>.<type>.<resource type>.<resource uuid>` — each part with its own dots turned into dashes,
 * a missing part as `*` — and a JSON body that is the event's description map. Pure: no I/O.
 */

/** CloudStack's ManagementService name, the source of every action event. */
export const EVENT_SOURCE = 'management-server';
/** The category of the events recordEvent writes (CloudStack's action events). */
export const ACTION_EVENT = 'ActionEvent';

/** One part of a routing key: a topic exchange splits keys at dots, so a part keeps none; empty is `*`. */
const part = (v: string | null | undefined): string => (v ? v.replace(/\./g, '-') : '*');

export function routingKey(p: {
  source?: string;
  category?: string;
  type: string;
  resourceType?: string | null;
  resourceUuid?: string | null;
}): string {
  return [p.source ?? EVENT_SOURCE, p.category ?? ACTION_EVENT, p.type, p.resourceType, p.resourceUuid]
    .map(part)
    .join('.');
}

/** CloudStack's `yyyy-MM-dd HH:mm:ss Z` (e.g. `2026-12-06 14:08:44 +0000`), in UTC. */
export function eventDateTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} +0000`;
}

export interface BusEvent {
  type: string;
  state: string;
  description: string;
  userUuid?: string;
  accountUuid?: string;
  resourceType?: string | null;
  resourceUuid?: string | null;
  created: number;
}

/**
 * The body: the keys CloudStack's ActionEventUtils puts in its description map (`user` and `account` are uuids,
 * `status` the event state, `entity`/`entityuuid` the resource). `user` is absent for a system action (GC,
 * reconciler), which CloudStack does not publish at all.
 */
export function eventBody(e: BusEvent): Record<string, string> {
  const body: Record<string, string> = {};
  if (e.userUuid) body.user = e.userUuid;
  if (e.accountUuid) body.account = e.accountUuid;
  body.event = e.type;
  body.status = e.state;
  if (e.resourceType) body.entity = e.resourceType;
  if (e.resourceUuid) body.entityuuid = e.resourceUuid;
  body.description = e.description;
  body.eventDateTime = eventDateTime(e.created);
  return body;
}
