/**
 * Alerts: the conditions stacknet watches, raised once per condition, and the alert list.
 *
 * A pass (`checkAlerts`) computes the conditions that hold now — a zone's public (type 4) or direct-attached
 * (type 24) addresses in use above their `*.capacity.notificationthreshold`, compared as CloudStack's capacity
 * checker does (used / total > threshold, zones with no such addresses skipped), and a running router whose health
 * checks fail (type 9) — then inserts an alert for each condition not already open and marks the open ones that no
 * longer hold as cleared. The UNIQUE `open_key` makes a condition seen by many passes, or by two servers at
 * once, one alert; once cleared it may be raised again.
 */
import { randomUUID } from 'node:crypto';
import type { Caller } from '../api/command.js';
import { csDate } from '../api/envelope.js';
import type { Page } from '../api/list.js';
import { keywordMatch, pageOfQuery } from '../api/list.js';
import { zoneCapacity } from '../capacity/service.js';
import type { CapacityFigure } from '../capacity/service.js';
import { getSetting } from '../configuration/repository.js';
import { invalidParameter } from '../errors/catalogue.js';
import { makeNetCtx } from '../infrastructure/net-context.js';
import { healthChecks } from '../routers/health.js';
import type { RouterRow } from '../routers/repository.js';
import type { Executor, Tx } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import { dialectOf } from '../store/migrations/helpers.js';
import type { Kysely } from 'kysely';
import { JOB_FAILED } from '../api/jobs/repository.js';

/** CloudStack's AlertManager types and names for the conditions stacknet raises. */
export const ALERT_TYPES = {
  publicIp: { type: 4, name: 'ALERT.NETWORK.PUBLICIP' },
  domainRouter: { type: 9, name: 'ALERT.SERVICE.DOMAINROUTER' },
  managementNode: { type: 14, name: 'ALERT.MANAGEMENT' },
  vlan: { type: 18, name: 'ALERT.NETWORK.VLAN' },
  directAttachedIp: { type: 24, name: 'ALERT.NETWORK.DIRECTPUBLICIP' },
  host: { type: 7, name: 'ALERT.HOST' },
} as const;

export interface AlertOptions {
  /**
   * A Running router whose agent has not answered with its status for this long (ms) is "not reporting". The
   * worker passes 3 × the reconciler's resync interval (every router is asked at least that often).
   */
  agentSilenceMs?: number;
  /** How far back a job that failed on a re-run is looked for (ms; default a day): older ones clear. */
  failedJobWindowMs?: number;
}

/** The reconciler's default resync interval (routers/reconciler.ts): each Running router is asked this often. */
export const RECONCILER_RESYNC_MS = 5_000;
const DEFAULTS = { agentSilenceMs: 3 * RECONCILER_RESYNC_MS, failedJobWindowMs: 24 * 3600_000 };

export interface Condition {
  key: string;
  type: number;
  name: string;
  description: string;
  zoneId: number | null;
}

const CAPACITY_ALERTS = [
  {
    capacity: 4,
    alert: ALERT_TYPES.publicIp,
    setting: 'zone.virtualnetwork.publicip.capacity.notificationthreshold',
    what: 'public IP addresses',
  },
  {
    // Guest networks: how many more a zone can have is its guest VLANs/VNIs (CloudStack's capacity type 7).
    capacity: 7,
    alert: ALERT_TYPES.vlan,
    setting: 'zone.vlan.capacity.notificationthreshold',
    what: 'guest network VLANs/VNIs',
  },
  {
    capacity: 8,
    alert: ALERT_TYPES.directAttachedIp,
    setting: 'zone.directnetwork.publicip.capacity.notificationthreshold',
    what: 'shared (direct-attached) network addresses',
  },
] as const;

const pct = (f: CapacityFigure): string => `${Math.round((f.used / Number(f.total)) * 10000) / 100}%`;

async function capacityConditions(db: Executor, caller: Caller, now: number): Promise<Condition[]> {
  const out: Condition[] = [];
  const zones = await db
    .selectFrom('zones')
    .select(['id', 'uuid', 'name'])
    .where('removed', 'is', null)
    .execute();
  const ctx = makeNetCtx(db as unknown as Tx, caller, now);
  for (const zone of zones) {
    const figures = await zoneCapacity(
      ctx,
      zone,
      CAPACITY_ALERTS.map((c) => c.capacity),
    );
    for (const c of CAPACITY_ALERTS) {
      const f = figures.find((x) => x.type === c.capacity);
      if (!f || f.total === 0n) continue;
      const threshold = await getSetting(db, c.setting, { zoneId: zone.id });
      if (f.used / Number(f.total) <= Number(threshold)) continue;
      out.push({
        key: `capacity:${c.capacity}:zone:${zone.id}`,
        type: c.alert.type,
        name: c.alert.name,
        description:
          `Few unallocated ${c.what} left in zone ${zone.name}: ${f.used} of ${f.total} in use (${pct(f)}), ` +
          `above ${c.setting} = ${threshold}`,
        zoneId: zone.id,
      });
    }
  }
  return out;
}

/**
 * A running router whose checks fail. The generation check alone fails for a moment after every change (the
 * new generation is on its way), so it counts only when the reconciler recorded an error pushing it.
 */
export function routerFailures(r: RouterRow): string[] {
  return healthChecks(r)
    .filter((c) => c.success === false && (c.checkname !== 'generation' || r.last_error !== null))
    .map((c) => `${String(c.checkname)} (${String(c.details)})`);
}

interface DegradedCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

/** The Degraded condition the agent last reported, when it is true. */
function degradedOf(r: RouterRow): DegradedCondition | undefined {
  const h = r.health ? (JSON.parse(r.health) as { conditions?: DegradedCondition[] } | null) : null;
  return h?.conditions?.find((c) => c.type === 'Degraded' && c.status);
}

/**
 * At most one condition per Running router, the most telling first: its agent stopped reporting (what it said
 * last is stale), it reports itself Degraded (a config refused, entries set aside: the last good one serving),
 * or its other health checks fail.
 */
async function routerConditions(db: Executor, now: number, o: Required<AlertOptions>): Promise<Condition[]> {
  const routers = await db
    .selectFrom('routers')
    .selectAll()
    .where('state', '=', 'Running')
    .where('removed', 'is', null)
    .execute();
  const out: Condition[] = [];
  const alert = (r: RouterRow, what: string, description: string) =>
    out.push({
      key: `router:${r.id}:${what}`,
      type: ALERT_TYPES.domainRouter.type,
      name: ALERT_TYPES.domainRouter.name,
      description: description.slice(0, 1024),
      zoneId: r.zone_id,
    });
  for (const r of routers) {
    const heard = Number(r.status_reported ?? r.created);
    if (now - heard > o.agentSilenceMs) {
      const since = r.status_reported === null ? 'never reported' : `last reported ${csDate(heard)}`;
      alert(
        r,
        'silent',
        `The agent of router ${r.name} stopped reporting: ${since}, ${Math.round((now - heard) / 1000)} s ago` +
          `${r.last_error ? ` (${r.last_error})` : ''}`,
      );
      continue;
    }
    const failed = routerFailures(r).filter((f) => !f.startsWith('Degraded '));
    const degraded = degradedOf(r);
    if (degraded) {
      alert(
        r,
        'degraded',
        `Degraded router ${r.name}: ${degraded.reason}${degraded.message ? `: ${degraded.message}` : ''}` +
          `${failed.length ? `; failing checks: ${failed.join('; ')}` : ''}`,
      );
      continue;
    }
    if (failed.length === 0) continue;
    alert(r, 'health', `Health checks of router ${r.name} fail: ${failed.join('; ')}`);
  }
  return out;
}

/** A job that failed on a re-run: abandoned by servers that stopped `maxAttempts` times, or failing again. */
async function jobConditions(db: Executor, now: number, o: Required<AlertOptions>): Promise<Condition[]> {
  const jobs = await db
    .selectFrom('async_jobs')
    .select(['id', 'uuid', 'command', 'attempts', 'result'])
    .where('status', '=', JOB_FAILED)
    .where('attempts', '>', 1)
    .where('completed', '>', now - o.failedJobWindowMs)
    .execute();
  return jobs.map((j) => {
    let why = '';
    try {
      why = String((JSON.parse(j.result ?? '{}') as { errortext?: string }).errortext ?? '');
    } catch {
      // a result that is no JSON says nothing more
    }
    return {
      key: `job:${j.id}:failed`,
      type: ALERT_TYPES.managementNode.type,
      name: ALERT_TYPES.managementNode.name,
      description:
        `Job ${j.uuid} (${j.command}) failed after ${j.attempts} attempts${why ? `: ${why}` : ''}`.slice(
          0,
          1024,
        ),
      zoneId: null,
    };
  });
}

/**
 * A host that stopped heartbeating long enough to be Down (src/hosts/worker.ts marks it; this only reports it
 * while it holds). Its routers are rebuilt elsewhere; its VMs are not moved, so the alert names them.
 */
export async function hostConditions(db: Executor): Promise<Condition[]> {
  const hosts = await db
    .selectFrom('hosts')
    .select(['id', 'name', 'address', 'zone_id', 'last_pinged'])
    .where('state', '=', 'Down')
    .where('removed', 'is', null)
    .execute();
  const out: Condition[] = [];
  for (const h of hosts) {
    const vms = await db
      .selectFrom('vms')
      .select('name')
      .where('host_id', '=', h.id)
      .where('removed', 'is', null)
      .where('state', 'in', ['Starting', 'Running', 'Stopping'])
      .orderBy('id')
      .execute();
    const since =
      h.last_pinged === null ? 'never heard from' : `last heartbeat ${csDate(Number(h.last_pinged))}`;
    out.push({
      key: `host:${h.id}:down`,
      type: ALERT_TYPES.host.type,
      name: ALERT_TYPES.host.name,
      description: (
        `Host ${h.name} (${h.address}) is Down: ${since}; its routers are rebuilt on other hosts` +
        (vms.length ? `; its VMs are not moved: ${vms.map((v) => v.name).join(', ')}` : '')
      ).slice(0, 1024),
      zoneId: Number(h.zone_id),
    });
  }
  return out;
}

/** Raises one condition unless it is open already (here or on another server). True when this raised it. */
export async function raiseAlert(db: Executor, c: Condition, now: number): Promise<boolean> {
  const insert = db.insertInto('alerts').values({
    uuid: randomUUID(),
    type: c.type,
    name: c.name,
    description: c.description,
    zone_id: c.zoneId,
    open_key: c.key,
    sent: now,
    cleared: null,
  });
  // Another server raised it first: still one alert. PostgreSQL and SQLite skip the row (a unique violation
  // would abort a PostgreSQL transaction it runs in); MariaDB's violation leaves its transaction usable.
  if (dialectOf(db as unknown as Kysely<unknown>) !== 'mysql') {
    const r = await insert.onConflict((oc) => oc.column('open_key').doNothing()).executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  }
  try {
    await insert.execute();
    return true;
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
    return false;
  }
}

/** Marks the open alert of a condition that stopped holding as cleared (it may be raised again). */
export async function clearAlert(db: Executor, key: string, now: number): Promise<void> {
  await db.updateTable('alerts').set({ open_key: null, cleared: now }).where('open_key', '=', key).execute();
}

/** Raises the conditions that newly hold and clears those that no longer do. Returns the alerts raised. */
export async function checkAlerts(
  db: Executor,
  caller: Caller,
  now: number,
  options: AlertOptions = {},
): Promise<number> {
  const o = { ...DEFAULTS, ...options };
  const conditions = [
    ...(await capacityConditions(db, caller, now)),
    ...(await routerConditions(db, now, o)),
    ...(await jobConditions(db, now, o)),
    ...(await hostConditions(db)),
  ];
  const open = await db
    .selectFrom('alerts')
    .select(['id', 'open_key'])
    .where('open_key', 'is not', null)
    .execute();
  const holding = new Set(conditions.map((c) => c.key));
  const gone = open.filter((o) => !holding.has(o.open_key!)).map((o) => o.id);
  if (gone.length)
    await db.updateTable('alerts').set({ open_key: null, cleared: now }).where('id', 'in', gone).execute();
  const already = new Set(open.map((o) => o.open_key));
  let raised = 0;
  for (const c of conditions) {
    if (already.has(c.key)) continue;
    if (await raiseAlert(db, c, now)) raised++;
  }
  return raised;
}

export interface ListAlertsParams {
  id?: string | undefined;
  type?: string | undefined;
  name?: string | undefined;
  keyword?: string | undefined;
}

function alertType(v: string, param = 'type'): number {
  if (!/^\d{1,4}$/.test(v))
    throw invalidParameter(param, v, 'an alert type is a number (4 public IPs, 9 routers, ...)');
  return Number(v);
}

export async function listAlerts(db: Executor, p: ListAlertsParams, page: Page) {
  let q = db.selectFrom('alerts').selectAll().where('archived', '=', 0);
  if (p.id !== undefined) q = q.where('uuid', '=', p.id);
  if (p.type !== undefined) q = q.where('type', '=', alertType(p.type));
  if (p.name !== undefined) q = q.where('name', '=', p.name);
  if (p.keyword !== undefined) q = q.where(keywordMatch(['description', 'name'], p.keyword));
  const { rows, total } = await pageOfQuery(q, page, (x) => x.orderBy('sent', 'desc').orderBy('id', 'desc'));
  return {
    count: total,
    items: rows.map((a) => ({
      id: a.uuid,
      type: a.type,
      name: a.name,
      description: a.description,
      sent: csDate(a.sent),
    })),
  };
}

export async function countOpenAlerts(db: Executor): Promise<number> {
  const r = await db
    .selectFrom('alerts')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('archived', '=', 0)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

export interface AlertSelection {
  ids?: string[] | undefined;
  type?: string | undefined;
  startdate?: Date | undefined;
  enddate?: Date | undefined;
}

/**
 * The alerts deleteAlerts/archiveAlerts act on: listed ones (not archived) matching every criterion given. As in
 * CloudStack, ids, a type or an end date must narrow it, and a start date needs an end date after it.
 */
async function selectAlerts(tx: Tx, p: AlertSelection): Promise<number[]> {
  if (!p.ids?.length && p.type === undefined && p.enddate === undefined)
    throw invalidParameter('ids', '', 'give ids, a type or an enddate to choose the alerts');
  if (p.startdate && !p.enddate) throw invalidParameter('enddate', '', 'a startdate needs an enddate');
  if (p.startdate && p.enddate && p.startdate > p.enddate)
    throw invalidParameter('startdate', p.startdate.toISOString(), 'the startdate is after the enddate');
  let q = tx.selectFrom('alerts').select('id').where('archived', '=', 0);
  if (p.ids?.length) q = q.where('uuid', 'in', p.ids);
  if (p.type !== undefined) q = q.where('type', '=', alertType(p.type));
  if (p.startdate) q = q.where('sent', '>=', p.startdate.getTime());
  if (p.enddate) q = q.where('sent', '<=', p.enddate.getTime());
  return (await q.execute()).map((r) => r.id);
}

export async function deleteAlerts(tx: Tx, p: AlertSelection): Promise<number> {
  const ids = await selectAlerts(tx, p);
  if (ids.length) await tx.deleteFrom('alerts').where('id', 'in', ids).execute();
  return ids.length;
}

/** Archived alerts leave the list but keep their condition open, so a condition still holding is not raised again. */
export async function archiveAlerts(tx: Tx, p: AlertSelection): Promise<number> {
  const ids = await selectAlerts(tx, p);
  if (ids.length) await tx.updateTable('alerts').set({ archived: 1 }).where('id', 'in', ids).execute();
  return ids.length;
}
