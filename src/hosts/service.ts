/**
 * Host state changes that are more than a row update: a silent host going Disconnected then Down (CloudStack's
 * `ping.interval` and `ping.timeout`, `checkHostStates`), a Down host heard from again, each with its event and the host alert
 * (type 7, ALERT.HOST), and the desired states of the zone's other hosts refreshed (their VXLAN peers change).
 */
import type { Store, Executor, Tx } from '../store/db.js';
import { transaction } from '../store/db.js';
import { defaultRootAdmin } from '../accounts/repository.js';
import { recordEvent } from '../events/record.js';
import type { EventType } from '../events/event-types.js';
import { getSetting } from '../configuration/repository.js';
import { clearAlert, hostConditions, raiseAlert } from '../alerts/service.js';
import { refreshAllHosts } from './desired-state.js';
import { recordHeartbeat } from './repository.js';
import { hostReported } from './reports.js';
import type { HostRow } from './repository.js';
import type { HostStatus } from './protocol.js';
import type { HostState } from './tables.js';

/** Records a host event, owned by the root admin (hosts belong to no account), in its own transaction. */
export async function hostEvent(
  store: Store,
  h: Pick<HostRow, 'uuid' | 'name'>,
  type: EventType,
  description: string,
  level: 'INFO' | 'WARN' = 'INFO',
): Promise<void> {
  await transaction(store, (tx) => hostEventIn(tx, h, type, description, level));
}

/** Records a host event in the caller's transaction (with the state change it tells of). */
async function hostEventIn(
  tx: Tx,
  h: Pick<HostRow, 'uuid' | 'name'>,
  type: EventType,
  description: string,
  level: 'INFO' | 'WARN' = 'INFO',
): Promise<void> {
  const admin = await defaultRootAdmin(tx);
  if (!admin) return;
  await recordEvent(tx, {
    type,
    description,
    level,
    owner: admin.caller,
    resourceType: 'Host',
    resourceId: h.uuid,
    resourceName: h.name,
  });
}

export const hostDownKey = (hostId: number) => `host:${hostId}:down`;

/**
 * A heartbeat: the host Up with what it reported; when it was not Up, its alert cleared and (from Disconnected or
 * Down) its event recorded in the same transaction, so nobody sees it Up with its alert still open. After the
 * COMMIT, whoever waits for its report is woken and its peers learn it again. Returns the state it was in.
 */
export async function hostHeartbeat(
  store: Store,
  h: HostRow,
  status: HostStatus,
  now: number,
): Promise<HostState | undefined> {
  const was = await transaction(store, async (tx) => {
    const was = await recordHeartbeat(tx, Number(h.id), status, now);
    if (was === 'Up') return was;
    await clearAlert(tx, hostDownKey(Number(h.id)), now);
    if (was === 'Down' || was === 'Disconnected')
      await hostEventIn(tx, h, 'HOST.RECONNECT', `Host ${h.name} (${h.address}) is Up again (was ${was})`);
    return was;
  });
  hostReported(Number(h.id));
  if (was !== 'Up') await refreshAllHosts(store.db, Number(h.zone_id));
  return was;
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
    const moved = async (ex: Executor): Promise<boolean> => {
      let q = ex.updateTable('hosts').set({ state: to }).where('id', '=', h.id).where('state', '=', h.state);
      q =
        h.last_pinged === null
          ? q.where('last_pinged', 'is', null)
          : q.where('last_pinged', '=', h.last_pinged);
      return Number((await q.executeTakeFirst()).numUpdatedRows) > 0;
    };
    if (to === 'Disconnected') {
      if (await moved(db)) changed++;
      continue;
    }
    // Down: the state, its alert and its event in one transaction (nobody sees it Down without its alert).
    const wentDown = await transaction(store, async (tx) => {
      if (!(await moved(tx))) return false;
      await hostWentDown(tx, { ...h, state: to }, silent, now);
      return true;
    });
    if (!wentDown) continue;
    changed++;
    // Its routers are re-placed by the reconciler's next pass (the hosts driver's ensureRouter); the other hosts
    // drop it from their VXLAN peers now.
    await refreshAllHosts(db, Number(h.zone_id));
  }
  return changed;
}

async function hostWentDown(tx: Tx, h: HostRow, silentMs: number, now: number): Promise<void> {
  const cond = (await hostConditions(tx)).find((c) => c.key === hostDownKey(Number(h.id)));
  if (cond) await raiseAlert(tx, cond, now);
  await hostEventIn(
    tx,
    h,
    'HOST.DOWN',
    `Host ${h.name} (${h.address}) is Down: no heartbeat for ${Math.round(silentMs / 1000)} s`,
    'WARN',
  );
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
