/**
 * The event outbox (src/events/README.md): each recorded event, shaped as its bus message, written in the
 * transaction of the change, so the broker gets exactly the events that committed, however long it is away.
 * Claiming and deleting rows is the publisher's (publisher.ts).
 *
 * Rows are written only while a bus is configured in this process (a server built with an AMQP URL): without one
 * recordEvent costs nothing more. The switch is per process, not per database, because recordEvent sees only a
 * transaction; a test that wants one server with and one without a bus runs them in two processes.
 */
import type { Executor, Store, Tx } from '../store/db.js';
import { nowMs, transaction } from '../store/db.js';
import { eventBody, routingKey } from './bus-message.js';
import type { BusEvent } from './bus-message.js';

let enabled = 0;

/** A bus was configured (buildServer): record events into the outbox until the returned function is called. */
export function enableOutbox(): () => void {
  enabled++;
  let done = false;
  return () => {
    if (!done) enabled--;
    done = true;
  };
}

export const outboxEnabled = (): boolean => enabled > 0;

export async function writeOutbox(tx: Tx, eventUuid: string, e: BusEvent): Promise<void> {
  await tx
    .insertInto('event_outbox')
    .values({
      event_uuid: eventUuid,
      routing_key: routingKey(e),
      body: JSON.stringify(eventBody(e)),
      resource_key:
        e.resourceType && e.resourceUuid ? `${e.resourceType}:${e.resourceUuid}`.slice(0, 255) : '',
      claim_owner: null,
      claim_until: null,
      created: e.created,
    })
    .execute();
}

export interface OutboxRow {
  id: number;
  eventUuid: string;
  routingKey: string;
  body: string;
  resourceKey: string;
  created: number;
}

/**
 * Claims up to `max` of the oldest rows nobody holds (unclaimed, or a claim that expired: its publisher died),
 * with one conditional UPDATE, so two publishers never both hold a row, on any of the three databases. Then keeps
 * only the rows it may publish without overtaking: a row whose resource has an older row still in the outbox that
 * this publisher does not hold (another publisher's, or one committed late) is released again, with every later
 * row of that resource. What is returned is in id order, and for each resource a run with nothing older left.
 */
export async function claimOutbox(
  store: Store,
  owner: string,
  leaseMs: number,
  max: number,
): Promise<OutboxRow[]> {
  const db = store.db;
  const now = nowMs();
  const candidates = await db
    .selectFrom('event_outbox')
    .select('id')
    .where((eb) => eb.or([eb('claim_until', 'is', null), eb('claim_until', '<', now)]))
    .orderBy('id')
    .limit(max)
    .execute();
  if (candidates.length === 0) return [];
  const ids = candidates.map((c) => Number(c.id));
  await transaction(
    store,
    (tx) =>
      tx
        .updateTable('event_outbox')
        .set({ claim_owner: owner, claim_until: now + leaseMs })
        .where('id', 'in', ids)
        .where((eb) => eb.or([eb('claim_until', 'is', null), eb('claim_until', '<', now)]))
        .execute(),
    { doing: 'claiming events to publish' },
  );
  const mine = (
    await db
      .selectFrom('event_outbox')
      .selectAll()
      .where('id', 'in', ids)
      .where('claim_owner', '=', owner)
      .orderBy('id')
      .execute()
  ).map((r) => ({
    id: Number(r.id),
    eventUuid: r.event_uuid,
    routingKey: r.routing_key,
    body: r.body,
    resourceKey: r.resource_key,
    created: Number(r.created),
  }));
  const keys = [...new Set(mine.map((r) => r.resourceKey).filter((k) => k !== ''))];
  if (keys.length === 0) return mine;
  const maxId = mine[mine.length - 1]!.id;
  const held = new Set(mine.map((r) => r.id));
  const blockedFrom = new Map<string, number>();
  const sameResource = await db
    .selectFrom('event_outbox')
    .select(['id', 'resource_key'])
    .where('resource_key', 'in', keys)
    .where('id', '<=', maxId)
    .orderBy('id')
    .execute();
  for (const r of sameResource) {
    if (!held.has(Number(r.id)) && !blockedFrom.has(r.resource_key))
      blockedFrom.set(r.resource_key, Number(r.id));
  }
  const ok: OutboxRow[] = [];
  const back: number[] = [];
  for (const r of mine) {
    const b = blockedFrom.get(r.resourceKey);
    if (b !== undefined && r.id > b) back.push(r.id);
    else ok.push(r);
  }
  if (back.length) await releaseOutbox(store, owner, back);
  return ok;
}

/** Gives rows back unpublished (the broker is away, or they would overtake): the next claim takes them. */
export async function releaseOutbox(store: Store, owner: string, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await transaction(
    store,
    (tx) =>
      tx
        .updateTable('event_outbox')
        .set({ claim_owner: null, claim_until: null })
        .where('id', 'in', ids)
        .where('claim_owner', '=', owner)
        .execute(),
    { doing: 'releasing events not published' },
  );
}

/** The broker confirmed these: they leave the outbox. */
export async function deletePublished(store: Store, owner: string, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await transaction(
    store,
    (tx) => tx.deleteFrom('event_outbox').where('id', 'in', ids).where('claim_owner', '=', owner).execute(),
    { doing: 'deleting published events' },
  );
}

export async function outboxSize(db: Executor): Promise<number> {
  const r = await db
    .selectFrom('event_outbox')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}
