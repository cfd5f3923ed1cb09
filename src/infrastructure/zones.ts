/** Zones and pods (root admin): createZone/listZones/updateZone/deleteZone, createPod/listPods. */
import { randomUUID } from 'node:crypto';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import { formatIp, parseIpOf } from '../ipam/address.js';
import {
  cidrFromGatewayAndNetmask,
  formatCidr,
  parseCidr,
  prefixToNetmask,
  netmaskToPrefix,
} from '../ipam/cidr.js';
import { checkRangeInsideCidr, parseRange, rangesOverlap, formatRange } from '../ipam/range.js';
import type { IpRange } from '../ipam/range.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import { preparedQuery } from '../store/prepared.js';
import type { Selectable } from 'kysely';
import type { PodsTable, ZonesTable } from '../addresses/tables.js';
import { checkNetworkDomain } from '../networks/guest-cidr.js';
import type { Listed, NetCtx } from './context.js';
import { notFound, pageWindow, requireRootAdmin } from './context.js';

export type ZoneRow = Selectable<ZonesTable>;
export type PodRow = Selectable<PodsTable>;

const ip4 = (v: string | undefined, param: string): string | undefined =>
  v === undefined || v === '' ? undefined : formatIp(parseIpOf(4, v, param));
const ip6 = (v: string | undefined, param: string): string | undefined =>
  v === undefined || v === '' ? undefined : formatIp(parseIpOf(6, v, param));

// Prepared (src/store/prepared.ts): every associateIpAddress by zone reads it.
const liveZoneByUuid = preparedQuery((db: Executor, uuid: string) =>
  db.selectFrom('zones').selectAll().where('uuid', '=', uuid).where('removed', 'is', null),
);

export async function zoneByUuid(db: Executor, uuid: string, param = 'zoneid'): Promise<ZoneRow> {
  const z = await liveZoneByUuid.first(db, uuid);
  if (!z) throw notFound(param, uuid, 'zone');
  return z;
}

export async function zoneById(db: Executor, id: number): Promise<ZoneRow> {
  return db.selectFrom('zones').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

export interface CreateZoneParams {
  name: string;
  networktype: string;
  dns1: string;
  internaldns1: string;
  dns2?: string | undefined;
  internaldns2?: string | undefined;
  ip6dns1?: string | undefined;
  ip6dns2?: string | undefined;
  guestcidraddress?: string | undefined;
  domain?: string | undefined;
  allocationstate?: string | undefined;
}

function checkAllocationState(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v !== 'Enabled' && v !== 'Disabled')
    throw invalidParameter('allocationstate', v, 'must be Enabled or Disabled');
  return v;
}

export async function createZone(ctx: NetCtx, p: CreateZoneParams): Promise<ZoneRow> {
  requireRootAdmin(ctx.caller, 'createZone');
  if (p.networktype !== 'Advanced') {
    throw invalidParameter(
      'networktype',
      p.networktype,
      'stacknet runs Advanced zones only (networktype=Advanced)',
    );
  }
  const name = p.name.trim();
  if (!name) throw invalidParameter('name', p.name, 'a zone needs a name');
  const guest = p.guestcidraddress
    ? formatCidr(parseCidr(p.guestcidraddress, 'guestcidraddress', { family: 4 }))
    : null;
  const dupe = await ctx.tx
    .selectFrom('zones')
    .select('id')
    .where('name', '=', name)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (dupe) throw invalidParameter('name', name, 'a zone with this name already exists');
  const row = {
    uuid: randomUUID(),
    name,
    description: null,
    dns1: ip4(p.dns1, 'dns1') ?? null,
    dns2: ip4(p.dns2, 'dns2') ?? null,
    internaldns1: ip4(p.internaldns1, 'internaldns1') ?? null,
    internaldns2: ip4(p.internaldns2, 'internaldns2') ?? null,
    ip6dns1: ip6(p.ip6dns1, 'ip6dns1') ?? null,
    ip6dns2: ip6(p.ip6dns2, 'ip6dns2') ?? null,
    guest_cidr: guest,
    domain: p.domain ? checkNetworkDomain(p.domain, 'domain') : null,
    network_type: 'Advanced',
    allocation_state: checkAllocationState(p.allocationstate) ?? 'Enabled',
    created: ctx.now,
    removed: null,
  };
  await ctx.tx.insertInto('zones').values(row).execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'ZONE.CREATE',
    description: `Zone ${name} created`,
    resourceType: 'Zone',
    resourceId: row.uuid,
    owner: ctx.caller,
  });
  return zoneByUuid(ctx.tx, row.uuid);
}

export interface ListZonesParams {
  id?: string | undefined;
  name?: string | undefined;
  keyword?: string | undefined;
  networktype?: string | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

export async function listZones(ctx: NetCtx, p: ListZonesParams): Promise<Listed<ZoneRow>> {
  let q = ctx.tx.selectFrom('zones').where('removed', 'is', null);
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.name) q = q.where('name', '=', p.name);
  if (p.networktype) q = q.where('network_type', '=', p.networktype);
  if (p.keyword) q = q.where('name', 'like', `%${p.keyword}%`);
  // Non-admins see enabled zones only, as CloudStack hides Disabled zones from users.
  if (ctx.caller.role !== 'Admin') q = q.where('allocation_state', '=', 'Enabled');
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll().orderBy('id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await rq.execute() };
}

export interface UpdateZoneParams extends Partial<Omit<CreateZoneParams, 'networktype'>> {
  id: string;
}

export async function updateZone(ctx: NetCtx, p: UpdateZoneParams): Promise<ZoneRow> {
  requireRootAdmin(ctx.caller, 'updateZone');
  const zone = await zoneByUuid(ctx.tx, p.id, 'id');
  const set: Partial<ZoneRow> = {};
  if (p.name !== undefined) {
    const dupe = await ctx.tx
      .selectFrom('zones')
      .select('id')
      .where('name', '=', p.name)
      .where('removed', 'is', null)
      .where('id', '!=', zone.id)
      .executeTakeFirst();
    if (dupe) throw invalidParameter('name', p.name, 'a zone with this name already exists');
    set.name = p.name;
  }
  for (const k of ['dns1', 'dns2', 'internaldns1', 'internaldns2'] as const) {
    if (p[k] !== undefined) set[k] = ip4(p[k], k) ?? null;
  }
  for (const k of ['ip6dns1', 'ip6dns2'] as const) {
    if (p[k] !== undefined) set[k] = ip6(p[k], k) ?? null;
  }
  if (p.guestcidraddress !== undefined) {
    set.guest_cidr = formatCidr(parseCidr(p.guestcidraddress, 'guestcidraddress', { family: 4 }));
  }
  if (p.domain !== undefined) set.domain = p.domain ? checkNetworkDomain(p.domain, 'domain') : null;
  if (p.allocationstate !== undefined) set.allocation_state = checkAllocationState(p.allocationstate)!;
  if (Object.keys(set).length > 0)
    await ctx.tx.updateTable('zones').set(set).where('id', '=', zone.id).execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'ZONE.EDIT',
    description: `Zone ${zone.name} updated`,
    resourceType: 'Zone',
    resourceId: zone.uuid,
    owner: ctx.caller,
  });
  return zoneById(ctx.tx, zone.id);
}

export async function deleteZone(ctx: NetCtx, p: { id: string }): Promise<void> {
  requireRootAdmin(ctx.caller, 'deleteZone');
  const zone = await zoneByUuid(ctx.tx, p.id, 'id');
  // CloudStack refuses to delete a zone that still holds anything (ConfigurationManagerImpl.checkIfZoneIsDeletable).
  // One query at a time: a transaction must not be left with queries in flight when a refusal rolls it back.
  const holders = [
    ['pods', 'pods'],
    ['physical networks', 'physical_networks'],
    ['public IP ranges', 'public_ip_ranges'],
    ['networks', 'networks'],
  ] as const;
  for (const [what, table] of holders) {
    const row = await ctx.tx
      .selectFrom(table)
      .select('id')
      .where('zone_id', '=', zone.id)
      .where('removed', 'is', null)
      .limit(1)
      .executeTakeFirst();
    if (row) {
      throw new CloudStackError(
        'InvalidParameterValue',
        `The zone '${zone.name}' is not deletable because it still has ${what}; delete them first`,
      );
    }
  }
  await ctx.tx.updateTable('zones').set({ removed: ctx.now }).where('id', '=', zone.id).execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'ZONE.DELETE',
    description: `Zone ${zone.name} deleted`,
    resourceType: 'Zone',
    resourceId: zone.uuid,
    owner: ctx.caller,
  });
}

// ------------------------------------------------------------------------------------------------ pods

export interface CreatePodParams {
  zoneid: string;
  name: string;
  gateway?: string | undefined;
  netmask?: string | undefined;
  startip?: string | undefined;
  endip?: string | undefined;
  allocationstate?: string | undefined;
}

export const podRange = (pod: PodRow): IpRange | undefined => {
  const s = parseIpOf(4, pod.start_ip);
  const e = pod.end_ip ? parseIpOf(4, pod.end_ip) : s;
  return { family: 4, start: s.value, end: e.value };
};

export async function createPod(ctx: NetCtx, p: CreatePodParams): Promise<PodRow> {
  requireRootAdmin(ctx.caller, 'createPod');
  const zone = await zoneByUuid(ctx.tx, p.zoneid);
  if (!p.gateway || !p.netmask || !p.startip) {
    const missing = !p.gateway ? 'gateway' : !p.netmask ? 'netmask' : 'startip';
    throw new CloudStackError(
      'InvalidParameterValue',
      `Unable to execute API command createPod due to missing parameter ${missing}`,
    );
  }
  const cidr = cidrFromGatewayAndNetmask(p.gateway, p.netmask);
  const range = parseRange(p.startip, p.endip ?? p.startip);
  checkRangeInsideCidr(range, cidr, 'startip');
  const gw = parseIpOf(4, p.gateway, 'gateway');
  if (gw.value >= range.start && gw.value <= range.end) {
    throw invalidParameter(
      'gateway',
      p.gateway,
      `the gateway is inside the pod's range ${formatRange(range)}`,
    );
  }
  const others = await ctx.tx
    .selectFrom('pods')
    .selectAll()
    .where('zone_id', '=', zone.id)
    .where('removed', 'is', null)
    .execute();
  for (const o of others) {
    if (o.name === p.name)
      throw invalidParameter('name', p.name, `a pod with this name exists in zone '${zone.name}'`);
    const r = podRange(o);
    if (r && rangesOverlap(r, range)) {
      throw invalidParameter(
        'startip',
        formatRange(range),
        `the range overlaps ${formatRange(r)} of pod '${o.name}'`,
      );
    }
  }
  const uuid = randomUUID();
  await ctx.tx
    .insertInto('pods')
    .values({
      uuid,
      zone_id: zone.id,
      name: p.name,
      gateway: formatIp(gw),
      netmask: prefixToNetmask(netmaskToPrefix(p.netmask)),
      start_ip: formatIp({ family: 4, value: range.start }),
      end_ip: formatIp({ family: 4, value: range.end }),
      allocation_state: checkAllocationState(p.allocationstate) ?? 'Enabled',
      created: ctx.now,
      removed: null,
    })
    .execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'POD.CREATE',
    description: `Pod ${p.name} created in zone ${zone.name}`,
    resourceType: 'Pod',
    resourceId: uuid,
    owner: ctx.caller,
  });
  return ctx.tx.selectFrom('pods').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
}

export async function listPods(
  ctx: NetCtx,
  p: {
    id?: string | undefined;
    zoneid?: string | undefined;
    name?: string | undefined;
    keyword?: string | undefined;
    allocationstate?: string | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<PodRow & { zone_uuid: string; zone_name: string }>> {
  requireRootAdmin(ctx.caller, 'listPods');
  let q = ctx.tx
    .selectFrom('pods')
    .innerJoin('zones', 'zones.id', 'pods.zone_id')
    .where('pods.removed', 'is', null);
  if (p.id) q = q.where('pods.uuid', '=', p.id);
  if (p.zoneid) q = q.where('zones.uuid', '=', p.zoneid);
  if (p.name) q = q.where('pods.name', '=', p.name);
  if (p.keyword) q = q.where('pods.name', 'like', `%${p.keyword}%`);
  if (p.allocationstate) q = q.where('pods.allocation_state', '=', p.allocationstate);
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q
    .selectAll('pods')
    .select(['zones.uuid as zone_uuid', 'zones.name as zone_name'])
    .orderBy('pods.id')
    .offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await rq.execute() };
}

export function zoneResponse(z: ZoneRow): Record<string, unknown> {
  return {
    id: z.uuid,
    name: z.name,
    description: z.description ?? undefined,
    dns1: z.dns1 ?? undefined,
    dns2: z.dns2 ?? undefined,
    internaldns1: z.internaldns1 ?? undefined,
    internaldns2: z.internaldns2 ?? undefined,
    ip6dns1: z.ip6dns1 ?? undefined,
    ip6dns2: z.ip6dns2 ?? undefined,
    guestcidraddress: z.guest_cidr ?? undefined,
    domain: z.domain ?? undefined,
    networktype: z.network_type,
    allocationstate: z.allocation_state,
    securitygroupsenabled: false,
    localstorageenabled: false,
    dhcpprovider: 'VirtualRouter',
    type: 'Core',
    tags: [],
    hasannotations: false,
  };
}

/**
 * listZonesMetrics: a zone's answer plus the UI's metrics columns. Those sum the zone's hypervisor hosts and
 * clusters, and stacknet has none, so they are zeros written as CloudStack writes them, with no threshold crossed.
 */
export function zoneMetricsResponse(z: ZoneRow): Record<string, unknown> {
  const ghz = '0.00 Ghz';
  const gb = '0.00 GB';
  return {
    ...zoneResponse(z),
    state: z.allocation_state,
    clusters: '0 / 0',
    cputotal: ghz,
    cpuused: ghz,
    cpuallocated: ghz,
    cpumaxdeviation: '0.00%',
    memorytotal: gb,
    memoryused: gb,
    memoryallocated: gb,
    memorymaxdeviation: '0.00%',
    cputhreshold: false,
    cpudisablethreshold: false,
    cpuallocatedthreshold: false,
    cpuallocateddisablethreshold: false,
    memorythreshold: false,
    memorydisablethreshold: false,
    memoryallocatedthreshold: false,
    memoryallocateddisablethreshold: false,
  };
}

export function podResponse(p: PodRow & { zone_uuid: string; zone_name: string }): Record<string, unknown> {
  const cidr = cidrFromGatewayAndNetmask(p.gateway, p.netmask);
  return {
    id: p.uuid,
    name: p.name,
    zoneid: p.zone_uuid,
    zonename: p.zone_name,
    gateway: p.gateway,
    netmask: p.netmask,
    startip: [p.start_ip],
    endip: [p.end_ip ?? p.start_ip],
    forsystemvms: ['0'],
    vlanid: [''],
    ipranges: [
      {
        startip: p.start_ip,
        endip: p.end_ip ?? p.start_ip,
        forsystemvms: '0',
        vlanid: '',
        gateway: p.gateway,
        cidr: formatCidr(cidr),
      },
    ],
    allocationstate: p.allocation_state,
    hasannotations: false,
  };
}
