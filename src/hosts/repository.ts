/**
 * Host rows: registration (a host agent joining with the registration token), its secret (sealed with the
 * server key, like routers'), heartbeats, the desired generation and the clusters hosts sit in.
 */
import { randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Executor, Tx } from '../store/db.js';
import { issueSecret, sealSecret, unsealSecret } from '../routers/secrets.js';
import { seal, unseal } from '../config/server-key.js';
import type { ServerKey } from '../config/server-key.js';
import type { ClustersTable, HostsTable, HostState } from './tables.js';
import type { HostRegistration, HostStatus } from './protocol.js';

export type HostRow = Selectable<HostsTable>;
export type ClusterRow = Selectable<ClustersTable>;

export async function hostById(ex: Executor, id: number): Promise<HostRow | undefined> {
  return ex.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function liveHostByUuid(ex: Executor, uuid: string): Promise<HostRow | undefined> {
  return ex
    .selectFrom('hosts')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
}

/** Compares two strings in time independent of where they differ (a secret, a token). */
export function sameSecret(given: string, want: string): boolean {
  // Hashing first makes the lengths equal, so the length of the secret leaks nothing either.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(want).digest();
  return timingSafeEqual(a, b) && want !== '';
}

const opened = new Map<string, string>();

/** The host's secret in clear (cached per sealed value), or null before it registered. */
export async function hostSecret(ex: Executor, h: HostRow): Promise<string | null> {
  if (h.secret_sealed === null) return null;
  let s = opened.get(h.secret_sealed);
  if (s === undefined) {
    s = await unsealSecret(ex, h.secret_sealed);
    opened.set(h.secret_sealed, s);
  }
  return s;
}

/** Re-seals every host secret with `to` (server key rotation, server/secrets-at-rest.ts). */
export async function resealHostSecrets(tx: Tx, to: ServerKey, from: ServerKey): Promise<number> {
  if (from.id === to.id) return 0;
  const rows = await tx
    .selectFrom('hosts')
    .select(['id', 'secret_sealed'])
    .where('secret_sealed', 'is not', null)
    .execute();
  for (const r of rows)
    await tx
      .updateTable('hosts')
      .set({ secret_sealed: seal(to, unseal(from, r.secret_sealed!)) })
      .where('id', '=', r.id)
      .execute();
  return rows.length;
}

/** Why a registration is refused (answered 400/403 with this message). */
export class RegistrationRefused extends Error {
  constructor(
    readonly httpStatus: number,
    message: string,
  ) {
    super(message);
  }
}

async function firstLive<T extends 'zones' | 'pods'>(
  ex: Executor,
  table: T,
  where: { uuid?: string; zoneId?: number },
) {
  let q = ex
    .selectFrom(table as 'pods')
    .selectAll()
    .where('removed', 'is', null);
  if (where.uuid !== undefined) q = q.where('uuid', '=', where.uuid);
  if (where.zoneId !== undefined) q = q.where('zone_id', '=', where.zoneId);
  return q.orderBy('id').executeTakeFirst();
}

/**
 * The pod a registering host joins: the one named, else the zone's first; a zone without pods gets one
 * (`pod-<zone>`, its management range the host's /24), as an operator would have made for it.
 */
async function podFor(tx: Tx, zoneId: number, podUuid: string | undefined, address: string, now: number) {
  if (podUuid !== undefined) {
    const p = await firstLive(tx, 'pods', { uuid: podUuid, zoneId });
    if (!p) throw new RegistrationRefused(400, `no pod ${podUuid} in the host's zone`);
    return p;
  }
  const first = await firstLive(tx, 'pods', { zoneId });
  if (first) return first;
  const net = /^(\d+\.\d+\.\d+)\.\d+$/.exec(address)?.[1] ?? '0.0.0';
  const uuid = randomUUID();
  await tx
    .insertInto('pods')
    .values({
      uuid,
      zone_id: zoneId,
      name: `pod-${zoneId}`,
      gateway: `${net}.1`,
      netmask: '255.255.255.0',
      start_ip: address,
      end_ip: address,
      created: now,
      removed: null,
    })
    .execute();
  return tx.selectFrom('pods').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
}

/** The cluster a host joins: the one named, else the pod's first; created (`<pod>-kvm`) when the pod has none. */
export async function clusterFor(
  tx: Tx,
  pod: { id: number; zone_id: number; name: string },
  clusterUuid: string | undefined,
  now: number,
): Promise<ClusterRow> {
  let q = tx.selectFrom('clusters').selectAll().where('removed', 'is', null).where('pod_id', '=', pod.id);
  if (clusterUuid !== undefined) q = q.where('uuid', '=', clusterUuid);
  const c = await q.orderBy('id').executeTakeFirst();
  if (c) return c;
  if (clusterUuid !== undefined) throw new RegistrationRefused(400, `no cluster ${clusterUuid} in the pod`);
  return createCluster(
    tx,
    { zoneId: Number(pod.zone_id), podId: Number(pod.id), name: `${pod.name}-kvm` },
    now,
  );
}

export async function createCluster(
  tx: Tx,
  c: { zoneId: number; podId: number; name: string; allocationState?: string },
  now: number,
): Promise<ClusterRow> {
  const uuid = randomUUID();
  await tx
    .insertInto('clusters')
    .values({
      uuid,
      name: c.name,
      zone_id: c.zoneId,
      pod_id: c.podId,
      hypervisor: 'KVM',
      cluster_type: 'CloudManaged',
      allocation_state: c.allocationState ?? 'Enabled',
      managed_state: 'Managed',
      created: now,
      removed: null,
    })
    .execute();
  return tx.selectFrom('clusters').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
}

/**
 * Registers a host (the token was checked by the caller): the live host of that name keeps its id and gets a
 * new secret (a reinstalled host); a host addHost pre-created at that address (no secret yet) becomes it;
 * otherwise a new host joins the zone named (or the first), the pod and cluster named (or the first, made on
 * demand). Answers the host and its secret in clear (the only time it is ever shown).
 */
export async function registerHost(
  tx: Tx,
  reg: HostRegistration,
  now: number,
): Promise<{ host: HostRow; secret: string; created: boolean }> {
  const secret = issueSecret();
  const sealed = await sealSecret(tx, secret);
  const caps = reg.capabilities;
  const fields = {
    address: reg.address,
    port: reg.port,
    secret_sealed: sealed,
    capabilities: JSON.stringify(caps),
    cpus: Math.max(0, Math.floor(caps.cpus)),
    cpu_speed: Math.max(0, Math.floor(caps.cpuSpeedMhz)),
    memory_mib: Math.max(0, Math.floor(caps.memoryMiB)),
    version: String(caps.version ?? '').slice(0, 64),
    state: 'Up' as HostState,
    last_pinged: now,
  };
  const byName = await tx
    .selectFrom('hosts')
    .selectAll()
    .where('name', '=', reg.name)
    .where('removed', 'is', null)
    .executeTakeFirst();
  const pending =
    byName ??
    (await tx
      .selectFrom('hosts')
      .selectAll()
      .where('address', '=', reg.address)
      .where('secret_sealed', 'is', null)
      .where('removed', 'is', null)
      .orderBy('id')
      .executeTakeFirst());
  if (pending) {
    await tx
      .updateTable('hosts')
      .set({ ...fields, name: reg.name })
      .where('id', '=', pending.id)
      .execute();
    const host = (await hostById(tx, Number(pending.id)))!;
    return { host, secret, created: false };
  }
  const zone = reg.zoneId
    ? await firstLive(tx, 'zones', { uuid: reg.zoneId })
    : await firstLive(tx, 'zones', {});
  if (!zone)
    throw new RegistrationRefused(
      400,
      reg.zoneId
        ? `no zone ${reg.zoneId}`
        : 'no zone exists yet: create one (createZone) before adding hosts',
    );
  const pod = await podFor(tx, Number(zone.id), reg.podId, reg.address, now);
  const cluster = await clusterFor(tx, pod, reg.clusterId, now);
  const uuid = randomUUID();
  await tx
    .insertInto('hosts')
    .values({
      uuid,
      name: reg.name,
      zone_id: Number(zone.id),
      pod_id: Number(pod.id),
      cluster_id: Number(cluster.id),
      host_tags: null,
      resource_state: 'Enabled',
      desired_generation: 0,
      desired_hash: null,
      applied_generation: null,
      status: null,
      created: now,
      removed: null,
      ...fields,
    })
    .execute();
  const host = (await tx.selectFrom('hosts').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow())!;
  return { host, secret, created: true };
}

/** A heartbeat: the host is Up, what it reported is kept. Answers the state it was in before. */
export async function recordHeartbeat(
  ex: Executor,
  hostId: number,
  status: HostStatus,
  now: number,
): Promise<HostState | undefined> {
  const before = await ex.selectFrom('hosts').select('state').where('id', '=', hostId).executeTakeFirst();
  await ex
    .updateTable('hosts')
    .set({
      state: 'Up',
      last_pinged: now,
      status: JSON.stringify(status),
      applied_generation: status.appliedGeneration,
    })
    .where('id', '=', hostId)
    .execute();
  return before?.state;
}

/** What the host last reported (its heartbeat's or the driver's own status call), or null. */
export function reportedStatus(h: Pick<HostRow, 'status'>): HostStatus | null {
  if (!h.status) return null;
  try {
    return JSON.parse(h.status) as HostStatus;
  } catch {
    return null;
  }
}

/**
 * The host fields of a VM's or router's answer (CloudStack's hostid, hostname and hostcontrolstate: Enabled,
 * Disabled, Maintenance, or Offline while the host is not Up), or null when it is on no host.
 */
export async function placementFields(
  ex: Executor,
  hostId: number | null,
): Promise<{ hostid: string; hostname: string; hostcontrolstate: string } | null> {
  if (hostId === null) return null;
  const h = await ex
    .selectFrom('hosts')
    .select(['uuid', 'name', 'state', 'resource_state'])
    .where('id', '=', hostId)
    .executeTakeFirst();
  if (!h) return null;
  const control =
    h.state !== 'Up'
      ? 'Offline'
      : h.resource_state === 'Enabled' || h.resource_state === 'Disabled'
        ? h.resource_state
        : 'Maintenance';
  return { hostid: h.uuid, hostname: h.name, hostcontrolstate: control };
}
