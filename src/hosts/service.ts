/**
 * Host state changes that are more than a row update: a silent host going Disconnected then Down (CloudStack's
 * `ping.interval` and `ping.timeout`, `checkHostStates`), a Down host heard from again, each with its event and the host alert
 * (type 7, ALERT.HOST), and the desired states of the zone's other hosts refreshed (their VXLAN peers change).
 */
import type { Store, Executor } from '../store/db.js';
import { transaction } from '../store/db.js';
import { defaultRootAdmin } from '../accounts/repository.js';
import { recordEvent } from '../events/record.js';
import type { EventType } from '../events/event-types.js';
import { getSetting } from '../configuration/repository.js';
import { clearAlert, hostConditions, raiseAlert } from '../alerts/service.js';
import { refreshAllHosts } from './desired-state.js';
import type { HostRow } from './repository.js';
import type { HostState } from './tables.js';

/** Records a host event, owned by the root admin (hosts belong to no account); `actor` when an admin acted. */
export async function hostEvent(
  store: Store,
  h: Pick<HostRow, 'uuid' | 'name'>,
  type: EventType,
  description: string,
  level: 'INFO' | 'WARN' = 'INFO',
): Promise<void> {
  const admin = await defaultRootAdmin(store.db);
  if (!admin) return;
  await transaction(store, (tx) =>
    recordEvent(tx, {
      type,
      description,
      level,
      owner: admin.caller,
      resourceType: 'Host',
      resourceId: h.uuid,
      resourceName: h.name,
    }),
  );
}

export const hostDownKey = (hostId: number) => `host:${hostId}:down`;

/** A heartbeat from a host that was not Up: its alert clears, an event says so, its peers learn it again. */
export async function hostCameBack(store: Store, h: HostRow, was: HostState | undefined): Promise<void> {
  if (was === 'Up') return;
  await clearAlert(store.db, hostDownKey(Number(h.id)), Date.now());
  if (was === 'Down' || was === 'Disconnected')
    await hostEvent(store, h, 'HOST.RECONNECT', `Host ${h.name} (${h.address}) is Up again (was ${was})`);
  await refreshAllHosts(store.db, Number(h.zone_id));
}

/**
 * One pass over the hosts that are not heard from, on CloudStack's timing (AgentManagerImpl): its monitor, every
 * `ping.interval`, investigates a host silent for more than `ping.interval` × `ping.timeout` (`getTimeout()`, 150 s
 * by default) and the investigation finds the agent gone (Disconnected) or the host gone (Down). stacknet has no
 * investigator that reaches a host other than through its agent, so: Up → Disconnected after `ping.interval` ×
 * `ping.timeout` of silence, and Up/Disconnected → Down when still silent at the monitor's next round, one
 * `ping.interval` later. Each transition is one conditional UPDATE (state and last_pinged as read), so of several
 * servers only one makes it and records its event and alert.
 */
export async function checkHostStates(store: Store, now: number): Promise<number> {
  const db = store.db;
  const interval = Number(await getSetting(db, 'ping.interval')) * 1000;
  const timeout = interval * Number(await getSetting(db, 'ping.timeout'));
  const down = timeout + interval;
  const hosts = await db
    .selectFrom('hosts')
    .selectAll()
    .where('removed', 'is', null)
    .where('state', 'in', ['Up', 'Disconnected', 'Connecting'])
    .where('secret_sealed', 'is not', null)
    .execute();
  let changed = 0;
  for (const h of hosts) {
    const silent = now - Number(h.last_pinged ?? h.created);
    const to: HostState | null =
      silent > down ? 'Down' : silent > timeout && h.state === 'Up' ? 'Disconnected' : null;
    if (!to) continue;
    let q = db.updateTable('hosts').set({ state: to }).where('id', '=', h.id).where('state', '=', h.state);
    q =
      h.last_pinged === null
        ? q.where('last_pinged', 'is', null)
        : q.where('last_pinged', '=', h.last_pinged);
    if (Number((await q.executeTakeFirst()).numUpdatedRows) === 0) continue;
    changed++;
    if (to === 'Down') await hostWentDown(store, { ...h, state: to }, silent);
  }
  return changed;
}

async function hostWentDown(store: Store, h: HostRow, silentMs: number): Promise<void> {
  const cond = (await hostConditions(store.db)).find((c) => c.key === hostDownKey(Number(h.id)));
  if (cond) await raiseAlert(store.db, cond, Date.now());
  await hostEvent(
    store,
    h,
    'HOST.DOWN',
    `Host ${h.name} (${h.address}) is Down: no heartbeat for ${Math.round(silentMs / 1000)} s`,
    'WARN',
  );
  // Its routers are re-placed by the reconciler's next pass (the hosts driver's ensureRouter); the other hosts
  // drop it from their VXLAN peers now.
  await refreshAllHosts(store.db, Number(h.zone_id));
}

/** Hosts each zone has, by state, for listInfrastructure and the worker's log. */
export async function countLiveHosts(ex: Executor): Promise<number> {
  const r = await ex
    .selectFrom('hosts')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('removed', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}
