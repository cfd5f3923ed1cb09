/** Physical networks (VLAN/VNI ranges) and their traffic types (root admin). */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import type { NetDatabase, TrafficTypesTable } from '../networks/tables.js';
import type { Listed, NetCtx } from './context.js';
import { notFound, pageWindow, requireRootAdmin } from './context.js';
import { zoneByUuid } from './zones.js';
import { addDefaultProviders } from './provider-rows.js';
import type { IsolationMethod, VnetSpan } from './vnet-ranges.js';
import {
  checkNoOverlapWithOthers,
  checkShrinkKeepsUsed,
  formatVnetRanges,
  parseVnetRanges,
} from './vnet-ranges.js';

export type PhysicalNetworkRow = Selectable<NetDatabase['physical_networks']>;
export type TrafficTypeRow = Selectable<TrafficTypesTable>;

export async function physicalNetworkByUuid(
  db: Executor,
  uuid: string,
  param = 'physicalnetworkid',
): Promise<PhysicalNetworkRow> {
  const pn = await db
    .selectFrom('physical_networks')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!pn) throw notFound(param, uuid, 'physical network');
  return pn;
}

export async function vnetSpansOf(db: Executor, physicalNetworkId: number): Promise<VnetSpan[]> {
  const rows = await db
    .selectFrom('vnet_ranges')
    .select(['vnet_start', 'vnet_end'])
    .where('physical_network_id', '=', physicalNetworkId)
    .orderBy('vnet_start')
    .execute();
  return rows.map((r) => ({ start: r.vnet_start, end: r.vnet_end }));
}

async function otherSpansInZone(db: Executor, zoneId: number, exceptId: number | null) {
  let q = db
    .selectFrom('physical_networks')
    .innerJoin('vnet_ranges', 'vnet_ranges.physical_network_id', 'physical_networks.id')
    .select([
      'physical_networks.id',
      'physical_networks.name',
      'vnet_ranges.vnet_start',
      'vnet_ranges.vnet_end',
    ])
    .where('physical_networks.zone_id', '=', zoneId)
    .where('physical_networks.removed', 'is', null);
  if (exceptId !== null) q = q.where('physical_networks.id', '!=', exceptId);
  const rows = await q.execute();
  const byName = new Map<string, VnetSpan[]>();
  for (const r of rows) {
    const list = byName.get(r.name) ?? [];
    list.push({ start: r.vnet_start, end: r.vnet_end });
    byName.set(r.name, list);
  }
  return [...byName].map(([name, spans]) => ({ name, spans }));
}

function isolationOf(methods: string[] | string | undefined): IsolationMethod {
  const list = methods === undefined ? [] : Array.isArray(methods) ? methods : methods.split(',');
  if (list.length === 0) return 'VLAN';
  if (list.length > 1)
    throw invalidParameter('isolationmethods', list.join(','), 'give one isolation method, VLAN or VXLAN');
  const m = list[0]!.trim().toUpperCase();
  if (m !== 'VLAN' && m !== 'VXLAN')
    throw invalidParameter('isolationmethods', list[0]!, 'stacknet supports VLAN or VXLAN');
  return m;
}

export interface CreatePhysicalNetworkParams {
  /** The new physical network's id when a job names it (jobScopedUuid). */
  uuid?: string;
  zoneid: string;
  name: string;
  isolationmethods?: string[] | string | undefined;
  vlan?: string | undefined;
  tags?: string[] | string | undefined;
  networkspeed?: string | undefined;
  broadcastdomainrange?: string | undefined;
}

/** The tags as stored, comma-joined: 255 characters in all, as CloudStack's column. */
function tagsText(t: string[] | string | undefined): string | null {
  const text = t === undefined ? null : (Array.isArray(t) ? t.join(',') : t) || null;
  if (text && text.length > 255) throw invalidParameter('tags', text, 'longer than 255 characters in all');
  return text;
}

/** The speed as CloudStack stores it (`1G`, `10G`): free text of at most 32 characters. */
function networkSpeed(v: string): string {
  if (v.length > 32) throw invalidParameter('networkspeed', v, 'longer than 32 characters (say 1G or 10G)');
  return v;
}

export async function createPhysicalNetwork(
  ctx: NetCtx,
  p: CreatePhysicalNetworkParams,
): Promise<PhysicalNetworkRow> {
  requireRootAdmin(ctx.caller, 'createPhysicalNetwork');
  const zone = await zoneByUuid(ctx.tx, p.zoneid);
  if (p.broadcastdomainrange && p.broadcastdomainrange.toUpperCase() !== 'ZONE') {
    throw invalidParameter('broadcastdomainrange', p.broadcastdomainrange, 'Advanced zones use ZONE');
  }
  const isolation = isolationOf(p.isolationmethods);
  const spans = p.vlan ? parseVnetRanges(p.vlan, isolation) : [];
  checkNoOverlapWithOthers(spans, await otherSpansInZone(ctx.tx, zone.id, null));
  const uuid = p.uuid ?? randomUUID();
  await ctx.tx
    .insertInto('physical_networks')
    .values({
      uuid,
      zone_id: zone.id,
      name: p.name,
      isolation,
      state: 'Disabled',
      tags: tagsText(p.tags),
      network_speed: p.networkspeed === undefined ? null : networkSpeed(p.networkspeed),
      domain_id: null,
      created: ctx.now,
      removed: null,
    })
    .execute();
  const pn = await physicalNetworkByUuid(ctx.tx, uuid);
  await addDefaultProviders(ctx.tx, pn.id, ctx.now);
  await ctx.recorder.event(ctx.tx, {
    type: 'PHYSICAL.NETWORK.CREATE',
    description: `Physical network ${p.name} created in zone ${zone.name}`,
    resourceType: 'PhysicalNetwork',
    resourceId: uuid,
    owner: ctx.caller,
  });
  if (spans.length) {
    await ctx.tx
      .insertInto('vnet_ranges')
      .values(spans.map((s) => ({ physical_network_id: pn.id, vnet_start: s.start, vnet_end: s.end })))
      .execute();
  }
  return pn;
}

export interface UpdatePhysicalNetworkParams {
  id: string;
  vlan?: string | undefined;
  state?: string | undefined;
  tags?: string[] | string | undefined;
  networkspeed?: string | undefined;
}

export async function updatePhysicalNetwork(
  ctx: NetCtx,
  p: UpdatePhysicalNetworkParams,
): Promise<PhysicalNetworkRow> {
  requireRootAdmin(ctx.caller, 'updatePhysicalNetwork');
  const pn = await physicalNetworkByUuid(ctx.tx, p.id, 'id');
  if (p.state !== undefined && p.state !== 'Enabled' && p.state !== 'Disabled') {
    throw invalidParameter('state', p.state, 'must be Enabled or Disabled');
  }
  if (p.vlan !== undefined) {
    const spans = parseVnetRanges(p.vlan, pn.isolation);
    checkNoOverlapWithOthers(spans, await otherSpansInZone(ctx.tx, pn.zone_id, pn.id));
    const used = await ctx.tx
      .selectFrom('vnet_allocations')
      .leftJoin('networks', 'networks.id', 'vnet_allocations.network_id')
      .select(['vnet_allocations.vnet', 'networks.name'])
      .where('vnet_allocations.physical_network_id', '=', pn.id)
      .execute();
    checkShrinkKeepsUsed(
      spans,
      used.map((u) => ({ vnet: u.vnet, networkName: u.name ?? '(unknown)' })),
    );
    const dedicated = await ctx.tx
      .selectFrom('dedicated_guest_vlan_ranges')
      .select(['vnet_start', 'vnet_end'])
      .where('physical_network_id', '=', pn.id)
      .execute();
    const stranded = dedicated.find(
      (d) => !spans.some((s) => d.vnet_start >= s.start && d.vnet_end <= s.end),
    );
    if (stranded) {
      throw invalidParameter(
        'vlan',
        p.vlan,
        `guest VLAN range ${stranded.vnet_start}-${stranded.vnet_end} is dedicated to an account and would fall outside the new ranges; release it first (releaseDedicatedGuestVlanRange)`,
      );
    }
    await ctx.tx.deleteFrom('vnet_ranges').where('physical_network_id', '=', pn.id).execute();
    await ctx.tx
      .insertInto('vnet_ranges')
      .values(spans.map((s) => ({ physical_network_id: pn.id, vnet_start: s.start, vnet_end: s.end })))
      .execute();
  }
  const set: Partial<PhysicalNetworkRow> = {};
  if (p.state !== undefined) set.state = p.state;
  if (p.tags !== undefined) set.tags = tagsText(p.tags);
  if (p.networkspeed !== undefined) set.network_speed = networkSpeed(p.networkspeed);
  if (Object.keys(set).length)
    await ctx.tx.updateTable('physical_networks').set(set).where('id', '=', pn.id).execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'PHYSICAL.NETWORK.UPDATE',
    description: `Physical network ${pn.name} updated`,
    resourceType: 'PhysicalNetwork',
    resourceId: pn.uuid,
    owner: ctx.caller,
  });

  return physicalNetworkByUuid(ctx.tx, p.id, 'id');
}

export async function listPhysicalNetworks(
  ctx: NetCtx,
  p: {
    id?: string | undefined;
    zoneid?: string | undefined;
    name?: string | undefined;
    keyword?: string | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<PhysicalNetworkRow>> {
  requireRootAdmin(ctx.caller, 'listPhysicalNetworks');
  let q = ctx.tx
    .selectFrom('physical_networks')
    .innerJoin('zones', 'zones.id', 'physical_networks.zone_id')
    .where('physical_networks.removed', 'is', null);
  if (p.id) q = q.where('physical_networks.uuid', '=', p.id);
  if (p.zoneid) q = q.where('zones.uuid', '=', p.zoneid);
  if (p.name) q = q.where('physical_networks.name', '=', p.name);
  if (p.keyword) q = q.where('physical_networks.name', 'like', `%${p.keyword}%`);
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll('physical_networks').orderBy('physical_networks.id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await rq.execute() };
}

export async function physicalNetworkResponse(
  db: Executor,
  pn: PhysicalNetworkRow,
): Promise<Record<string, unknown>> {
  const zone = await db
    .selectFrom('zones')
    .select(['uuid', 'name'])
    .where('id', '=', pn.zone_id)
    .executeTakeFirstOrThrow();
  const spans = await vnetSpansOf(db, pn.id);
  return {
    id: pn.uuid,
    name: pn.name,
    zoneid: zone.uuid,
    zonename: zone.name,
    isolationmethods: pn.isolation,
    vlan: spans.length ? formatVnetRanges(spans) : undefined,
    state: pn.state,
    tags: pn.tags ?? undefined,
    networkspeed: pn.network_speed ?? undefined,
    broadcastdomainrange: 'ZONE',
  };
}

// ------------------------------------------------------------------------------------------ traffic types

const TRAFFIC_TYPES = ['Guest', 'Public', 'Management', 'Storage'] as const;

export interface AddTrafficTypeParams {
  /** The new traffic type's id when a job names it (jobScopedUuid). */
  uuid?: string;
  physicalnetworkid: string;
  traffictype: string;
  kvmnetworklabel?: string | undefined;
  xennetworklabel?: string | undefined;
  vmwarenetworklabel?: string | undefined;
  hypervnetworklabel?: string | undefined;
  ovm3networklabel?: string | undefined;
  vlan?: string | undefined;
  isolationmethod?: string | undefined;
}

export async function addTrafficType(ctx: NetCtx, p: AddTrafficTypeParams): Promise<TrafficTypeRow> {
  requireRootAdmin(ctx.caller, 'addTrafficType');
  const pn = await physicalNetworkByUuid(ctx.tx, p.physicalnetworkid);
  const type = TRAFFIC_TYPES.find((t) => t.toLowerCase() === p.traffictype.toLowerCase());
  if (!type)
    throw invalidParameter('traffictype', p.traffictype, `must be one of ${TRAFFIC_TYPES.join(', ')}`);
  const existing = await ctx.tx
    .selectFrom('traffic_types')
    .select('id')
    .where('physical_network_id', '=', pn.id)
    .where('traffic_type', '=', type)
    .executeTakeFirst();
  if (existing) {
    throw invalidParameter(
      'traffictype',
      type,
      `physical network '${pn.name}' already carries ${type} traffic`,
    );
  }
  // Public and Guest traffic each belong to one physical network of a zone (CloudStack's
  // PhysicalNetworkTrafficTypeDao check), or ranges and VLANs could not be placed unambiguously.
  if (type === 'Public' || type === 'Guest') {
    const other = await ctx.tx
      .selectFrom('traffic_types')
      .innerJoin('physical_networks', 'physical_networks.id', 'traffic_types.physical_network_id')
      .select('physical_networks.name')
      .where('physical_networks.zone_id', '=', pn.zone_id)
      .where('physical_networks.removed', 'is', null)
      .where('traffic_types.traffic_type', '=', type)
      .executeTakeFirst();
    if (other && type === 'Public') {
      throw invalidParameter(
        'traffictype',
        type,
        `physical network '${other.name}' already carries Public traffic in this zone`,
      );
    }
  }
  const uuid = p.uuid ?? randomUUID();
  await ctx.tx
    .insertInto('traffic_types')
    .values({
      uuid,
      physical_network_id: pn.id,
      traffic_type: type,
      kvm_label: p.kvmnetworklabel ?? null,
      xen_label: p.xennetworklabel ?? null,
      vmware_label: p.vmwarenetworklabel ?? null,
      hyperv_label: p.hypervnetworklabel ?? null,
      ovm3_label: p.ovm3networklabel ?? null,
      vlan: p.vlan ?? null,
      created: ctx.now,
    })
    .execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'TRAFFIC.TYPE.CREATE',
    description: `${type} traffic added to physical network ${pn.name}`,
    resourceType: 'TrafficType',
    resourceId: uuid,
    owner: ctx.caller,
  });
  return ctx.tx.selectFrom('traffic_types').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
}

export async function listTrafficTypes(
  ctx: NetCtx,
  p: {
    physicalnetworkid: string;
    keyword?: string | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<TrafficTypeRow>> {
  requireRootAdmin(ctx.caller, 'listTrafficTypes');
  const pn = await physicalNetworkByUuid(ctx.tx, p.physicalnetworkid);
  let q = ctx.tx.selectFrom('traffic_types').where('physical_network_id', '=', pn.id);
  if (p.keyword) q = q.where('traffic_type', 'like', `%${p.keyword}%`);
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll().orderBy('id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await rq.execute() };
}

export function trafficTypeResponse(t: TrafficTypeRow, physicalNetworkUuid: string): Record<string, unknown> {
  return {
    id: t.uuid,
    // listTrafficTypes is declared with ProviderResponse in 4.18's listApis (name/state); the traffic type
    // fields are what clients actually read, so both are filled.
    name: t.traffic_type,
    traffictype: t.traffic_type,
    physicalnetworkid: physicalNetworkUuid,
    kvmnetworklabel: t.kvm_label ?? undefined,
    xennetworklabel: t.xen_label ?? undefined,
    vmwarenetworklabel: t.vmware_label ?? undefined,
    hypervnetworklabel: t.hyperv_label ?? undefined,
    ovm3networklabel: t.ovm3_label ?? undefined,
    state: 'Enabled',
  };
}

/** The zone's physical network carrying `traffic` (Public ranges, Guest VLANs), else its only/first one. */
export async function physicalNetworkFor(
  db: Executor,
  zoneId: number,
  traffic: 'Public' | 'Guest',
): Promise<PhysicalNetworkRow | undefined> {
  const tagged = await db
    .selectFrom('physical_networks')
    .innerJoin('traffic_types', 'traffic_types.physical_network_id', 'physical_networks.id')
    .selectAll('physical_networks')
    .where('physical_networks.zone_id', '=', zoneId)
    .where('physical_networks.removed', 'is', null)
    .where('traffic_types.traffic_type', '=', traffic)
    .orderBy('physical_networks.id')
    .executeTakeFirst();
  if (tagged) return tagged;
  return db
    .selectFrom('physical_networks')
    .selectAll()
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .orderBy('id')
    .executeTakeFirst();
}

export function noPhysicalNetwork(zoneName: string): CloudStackError {
  return new CloudStackError(
    'InvalidParameterValue',
    `Zone '${zoneName}' has no physical network; create one (createPhysicalNetwork) before adding ranges or networks`,
  );
}
