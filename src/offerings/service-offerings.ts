/**
 * Service (compute) offerings: createServiceOffering, updateServiceOffering, deleteServiceOffering,
 * listServiceOfferings. Root admins manage all of them; a domain admin only offerings limited to domains of its
 * own subtree (CloudStack's rule: never public ones, never the zones). deleteServiceOffering makes an offering
 * Inactive: VMs keep it, nobody deploys with it again.
 */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Caller } from '../api/command.js';
import { invalidParameter, permissionDenied } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { pageWindow } from '../infrastructure/context.js';
import { csDate } from './common.js';
import {
  limitedToDomain,
  requireOfferingUsable,
  resolveDomainList,
  resolveZoneList,
  scopeFields,
  scopesOf,
  setScopes,
  usableInZone,
  visibleToCaller,
} from './scopes.js';
import { offeringDb } from './tables.js';
import type { OfferingDatabase } from './tables.js';

export type ServiceOfferingRow = Selectable<OfferingDatabase['service_offerings']>;

const INT_MAX = 2147483647;
const SYSTEM_VM_TYPES = ['domainrouter', 'consoleproxy', 'secondarystoragevm', 'internalloadbalancervm'];

export interface CreateServiceOfferingParams {
  name: string;
  displaytext: string;
  cpunumber?: number | undefined;
  cpuspeed?: number | undefined;
  memory?: number | undefined;
  customized?: boolean | undefined;
  mincpunumber?: number | undefined;
  maxcpunumber?: number | undefined;
  minmemory?: number | undefined;
  maxmemory?: number | undefined;
  offerha?: boolean | undefined;
  limitcpuuse?: boolean | undefined;
  isvolatile?: boolean | undefined;
  storagetype?: string | undefined;
  provisioningtype?: string | undefined;
  tags?: string | undefined;
  hosttags?: string | undefined;
  issystem?: boolean | undefined;
  systemvmtype?: string | undefined;
  networkrate?: number | undefined;
  dynamicscalingenabled?: boolean | undefined;
  domainid?: string[] | undefined;
  zoneid?: string[] | undefined;
}

async function domainAdminMayTag(ctx: NetCtx, caller: Caller): Promise<boolean> {
  const v = await ctx.setting('allow.domain.admins.to.create.tagged.offerings', {
    accountId: caller.accountId,
  });
  return v === 'true';
}

/** Domain ids (internal) the caller may limit an offering to: every one for root, its subtree for a domain admin. */
async function checkDomainAdminDomains(ctx: NetCtx, ids: readonly number[], verb: string): Promise<void> {
  if (ctx.caller.role !== 'DomainAdmin') return;
  if (ids.length === 0)
    throw invalidParameter(
      'domainid',
      'public',
      `a domain admin cannot ${verb} a public service offering; give domainid (domains of its own subtree)`,
    );
  const rows = await offeringDb(ctx.tx)
    .selectFrom('domains')
    .select(['uuid', 'path'])
    .where('id', 'in', ids)
    .execute();
  for (const d of rows)
    if (!d.path.startsWith(ctx.caller.domainPath))
      throw invalidParameter(
        'domainid',
        d.uuid,
        `a domain admin can ${verb} offerings only for domains of its own subtree`,
      );
}

const range = (param: string, v: number | undefined, min: number, max: number, unit = ''): void => {
  if (v !== undefined && (v < min || v > max))
    throw invalidParameter(param, v, `must be between ${min} and ${max}${unit}`);
};

export async function createServiceOffering(
  ctx: NetCtx,
  p: CreateServiceOfferingParams,
): Promise<ServiceOfferingRow> {
  if (ctx.caller.role === 'User')
    throw permissionDenied('Only root and domain admins create service offerings');
  if (!p.name.trim()) throw invalidParameter('name', p.name, 'specify a name that is not empty');
  if (!p.displaytext.trim())
    throw invalidParameter('displaytext', p.displaytext, 'specify a display text that is not empty');
  const customized = p.customized ?? (p.cpunumber === undefined || p.memory === undefined);
  if (customized) {
    // CPU count and memory come with each deploy (details); the offering may bound them.
    if (p.cpunumber !== undefined)
      throw invalidParameter(
        'cpunumber',
        p.cpunumber,
        'a customized offering takes its CPU count at deploy time',
      );
    if (p.memory !== undefined)
      throw invalidParameter('memory', p.memory, 'a customized offering takes its memory at deploy time');
    range('mincpunumber', p.mincpunumber, 1, INT_MAX);
    range('maxcpunumber', p.maxcpunumber, 1, INT_MAX);
    range('minmemory', p.minmemory, 32, INT_MAX, ' MB');
    range('maxmemory', p.maxmemory, 32, INT_MAX, ' MB');
    if (p.mincpunumber !== undefined && p.maxcpunumber !== undefined && p.mincpunumber > p.maxcpunumber)
      throw invalidParameter('mincpunumber', p.mincpunumber, `is more than maxcpunumber ${p.maxcpunumber}`);
    if (p.minmemory !== undefined && p.maxmemory !== undefined && p.minmemory > p.maxmemory)
      throw invalidParameter('minmemory', p.minmemory, `is more than maxmemory ${p.maxmemory}`);
  } else {
    range('cpunumber', p.cpunumber, 1, INT_MAX);
    range('memory', p.memory, 32, INT_MAX, ' MB');
    if (p.cpuspeed === undefined)
      throw invalidParameter('cpuspeed', '', 'specify the CPU speed in MHz (0 or more)');
  }
  range('cpuspeed', p.cpuspeed, 0, INT_MAX, ' MHz');
  const storageType = (p.storagetype ?? 'shared').toLowerCase();
  if (storageType !== 'shared' && storageType !== 'local')
    throw invalidParameter('storagetype', p.storagetype, 'must be local or shared');
  if (storageType === 'local' && p.offerha)
    throw invalidParameter('offerha', true, 'HA is not offered with local storage');
  const provisioning = (p.provisioningtype ?? 'thin').toLowerCase();
  if (!['thin', 'sparse', 'fat'].includes(provisioning))
    throw invalidParameter('provisioningtype', p.provisioningtype, 'must be thin, sparse or fat');
  let systemVmType: string | null = null;
  if (p.issystem) {
    systemVmType = (p.systemvmtype ?? 'domainrouter').toLowerCase();
    if (!SYSTEM_VM_TYPES.includes(systemVmType))
      throw invalidParameter('systemvmtype', p.systemvmtype, `must be one of ${SYSTEM_VM_TYPES.join(', ')}`);
    if (ctx.caller.role !== 'Admin')
      throw invalidParameter('issystem', true, 'only root admins create system offerings');
  }
  if (p.networkrate !== undefined) {
    if (systemVmType !== null && systemVmType !== 'domainrouter')
      throw invalidParameter(
        'networkrate',
        p.networkrate,
        'a network rate applies to VM and router offerings only',
      );
    range('networkrate', p.networkrate, 0, INT_MAX, ' Mb/s');
  }
  const domainIds = (await resolveDomainList(ctx.tx, p.domainid)) ?? [];
  const zoneIds = (await resolveZoneList(ctx.tx, p.zoneid)) ?? [];
  await checkDomainAdminDomains(ctx, domainIds, 'create');
  if (
    ctx.caller.role === 'DomainAdmin' &&
    (p.tags || p.hosttags) &&
    !(await domainAdminMayTag(ctx, ctx.caller))
  )
    throw invalidParameter(
      p.tags ? 'tags' : 'hosttags',
      p.tags ?? p.hosttags,
      'domain admins may not tag offerings unless allow.domain.admins.to.create.tagged.offerings is true',
    );
  const db = offeringDb(ctx.tx);
  const uuid = randomUUID();
  await db
    .insertInto('service_offerings')
    .values({
      uuid,
      name: p.name,
      display_text: p.displaytext,
      cpu_number: p.cpunumber ?? 0,
      cpu_speed: p.cpuspeed ?? 0,
      memory: p.memory ?? 0,
      customized: customized ? 1 : 0,
      min_cpu: p.mincpunumber ?? null,
      max_cpu: p.maxcpunumber ?? null,
      min_memory: p.minmemory ?? null,
      max_memory: p.maxmemory ?? null,
      offer_ha: p.offerha ? 1 : 0,
      limit_cpu_use: p.limitcpuuse ? 1 : 0,
      is_volatile: p.isvolatile ? 1 : 0,
      storage_type: storageType,
      provisioning_type: provisioning,
      storage_tags: p.tags || null,
      host_tags: p.hosttags || null,
      is_system: p.issystem ? 1 : 0,
      system_vm_type: systemVmType,
      network_rate: p.networkrate ?? null,
      dynamic_scaling: p.dynamicscalingenabled === false ? 0 : 1,
      state: 'Active',
      created: ctx.now,
    })
    .execute();
  const row = await serviceOfferingByUuid(ctx.tx, uuid, 'id');
  await setScopes(ctx.tx, 'service', row.id, 'domain', domainIds);
  await setScopes(ctx.tx, 'service', row.id, 'zone', zoneIds);
  await ctx.recorder.event(ctx.tx, {
    type: 'SERVICE.OFFERING.CREATE',
    description: `Service offering ${p.name} created`,
    resourceType: 'ServiceOffering',
    resourceId: uuid,
    owner: ctx.caller,
  });
  return row;
}

/** An active (not deleted) service offering by its API id. */
export async function serviceOfferingByUuid(
  ex: unknown,
  uuid: string,
  param: string,
): Promise<ServiceOfferingRow> {
  const o = await offeringDb(ex)
    .selectFrom('service_offerings')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .where('state', '=', 'Active')
    .executeTakeFirst();
  if (!o) throw invalidParameter(param, uuid, 'no active service offering has this id');
  return o;
}

/** What a domain admin may change: offerings limited only to domains of its subtree. */
async function checkDomainAdminOwns(ctx: NetCtx, o: ServiceOfferingRow, verb: string): Promise<number[]> {
  const s = await scopesOf(ctx.tx, 'service', o.id);
  if (ctx.caller.role !== 'DomainAdmin') return s.domainIds;
  if (s.domainIds.length === 0)
    throw invalidParameter(
      'id',
      o.uuid,
      `service offering ${o.name} is public; a domain admin cannot ${verb} it`,
    );
  const rows = await offeringDb(ctx.tx)
    .selectFrom('domains')
    .select('path')
    .where('id', 'in', s.domainIds)
    .execute();
  if (rows.some((d) => !d.path.startsWith(ctx.caller.domainPath)))
    throw invalidParameter(
      'id',
      o.uuid,
      `service offering ${o.name} is also limited to domains outside this domain admin's subtree; it cannot ${verb} it`,
    );
  return s.domainIds;
}

export interface UpdateServiceOfferingParams {
  id: string;
  name?: string | undefined;
  displaytext?: string | undefined;
  sortkey?: number | undefined;
  domainid?: string | undefined;
  zoneid?: string | undefined;
  storagetags?: string | undefined;
  hosttags?: string | undefined;
}

export async function updateServiceOffering(
  ctx: NetCtx,
  p: UpdateServiceOfferingParams,
): Promise<ServiceOfferingRow> {
  if (ctx.caller.role === 'User')
    throw permissionDenied('Only root and domain admins update service offerings');
  const o = await serviceOfferingByUuid(ctx.tx, p.id, 'id');
  await checkDomainAdminOwns(ctx, o, 'update');
  const set: Partial<ServiceOfferingRow> = {};
  if (p.name !== undefined) {
    if (!p.name.trim()) throw invalidParameter('name', p.name, 'specify a name that is not empty');
    set.name = p.name;
  }
  if (p.displaytext !== undefined) set.display_text = p.displaytext;
  if (p.sortkey !== undefined) set.sort_key = p.sortkey;
  if (p.storagetags !== undefined) set.storage_tags = p.storagetags || null;
  if (p.hosttags !== undefined) set.host_tags = p.hosttags || null;
  if (
    ctx.caller.role === 'DomainAdmin' &&
    (p.storagetags || p.hosttags) &&
    !(await domainAdminMayTag(ctx, ctx.caller))
  )
    throw invalidParameter(
      p.storagetags ? 'storagetags' : 'hosttags',
      p.storagetags ?? p.hosttags,
      'domain admins may not tag offerings unless allow.domain.admins.to.create.tagged.offerings is true',
    );
  const domainIds = await resolveDomainList(ctx.tx, p.domainid);
  const zoneIds = await resolveZoneList(ctx.tx, p.zoneid);
  if (domainIds) await checkDomainAdminDomains(ctx, domainIds, 'update');
  if (zoneIds && ctx.caller.role === 'DomainAdmin')
    throw invalidParameter('zoneid', p.zoneid, 'a domain admin cannot change the zones of an offering');
  if (Object.keys(set).length)
    await offeringDb(ctx.tx).updateTable('service_offerings').set(set).where('id', '=', o.id).execute();
  if (domainIds) await setScopes(ctx.tx, 'service', o.id, 'domain', domainIds);
  if (zoneIds) await setScopes(ctx.tx, 'service', o.id, 'zone', zoneIds);
  await ctx.recorder.event(ctx.tx, {
    type: 'SERVICE.OFFERING.EDIT',
    description: `Service offering ${o.name} updated`,
    resourceType: 'ServiceOffering',
    resourceId: o.uuid,
    owner: ctx.caller,
  });
  return serviceOfferingByUuid(ctx.tx, o.uuid, 'id');
}

export async function deleteServiceOffering(ctx: NetCtx, p: { id: string }): Promise<void> {
  if (ctx.caller.role === 'User')
    throw permissionDenied('Only root and domain admins delete service offerings');
  const o = await serviceOfferingByUuid(ctx.tx, p.id, 'id');
  await checkDomainAdminOwns(ctx, o, 'delete');
  await offeringDb(ctx.tx)
    .updateTable('service_offerings')
    .set({ state: 'Inactive', removed: ctx.now })
    .where('id', '=', o.id)
    .execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'SERVICE.OFFERING.DELETE',
    description: `Service offering ${o.name} deleted`,
    resourceType: 'ServiceOffering',
    resourceId: o.uuid,
    owner: ctx.caller,
  });
}

export interface ListServiceOfferingsParams {
  id?: string | undefined;
  name?: string | undefined;
  keyword?: string | undefined;
  issystem?: boolean | undefined;
  systemvmtype?: string | undefined;
  domainid?: string | undefined;
  isrecursive?: boolean | undefined;
  zoneid?: string | undefined;
  cpunumber?: number | undefined;
  cpuspeed?: number | undefined;
  memory?: number | undefined;
  virtualmachineid?: string | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

export async function listServiceOfferings(
  ctx: NetCtx,
  p: ListServiceOfferingsParams,
): Promise<Listed<ServiceOfferingRow>> {
  if ((p.issystem || p.systemvmtype) && ctx.caller.role !== 'Admin')
    throw invalidParameter('issystem', true, "only root admins may list the system's offerings");
  const db = offeringDb(ctx.tx);
  let q = db
    .selectFrom('service_offerings')
    .selectAll()
    .where('removed', 'is', null)
    .where('state', '=', 'Active')
    .where('is_system', '=', p.issystem || p.systemvmtype ? 1 : 0);
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.name) q = q.where('name', '=', p.name);
  if (p.keyword) q = q.where('name', 'like', `%${p.keyword}%`);
  if (p.systemvmtype) q = q.where('system_vm_type', '=', p.systemvmtype.toLowerCase());
  // A size asked for matches fixed offerings of that size and customized ones (which take any).
  if (p.cpunumber !== undefined)
    q = q.where((eb) => eb.or([eb('cpu_number', '=', p.cpunumber!), eb('customized', '=', 1)]));
  if (p.cpuspeed !== undefined)
    q = q.where((eb) => eb.or([eb('cpu_speed', '=', p.cpuspeed!), eb('cpu_speed', '=', 0)]));
  if (p.memory !== undefined)
    q = q.where((eb) => eb.or([eb('memory', '=', p.memory!), eb('customized', '=', 1)]));
  const visible = await visibleToCaller(ctx.tx, 'service', 'service_offerings.id', ctx.caller);
  if (visible) q = q.where(visible);
  if (p.domainid) {
    const d = await db
      .selectFrom('domains')
      .select(['id', 'path'])
      .where('uuid', '=', p.domainid)
      .executeTakeFirst();
    if (!d) throw invalidParameter('domainid', p.domainid, 'no domain has this id');
    if (
      ctx.caller.role !== 'Admin' &&
      !d.path.startsWith(ctx.caller.domainPath) &&
      !ctx.caller.domainPath.startsWith(d.path)
    )
      throw permissionDenied(
        `The caller's account ${ctx.caller.accountName} has no access to domain ${p.domainid}`,
      );
    q = q.where(
      limitedToDomain(
        'service',
        'service_offerings.id',
        { id: Number(d.id), path: d.path },
        p.isrecursive === true,
      ),
    );
  }
  if (p.zoneid) {
    const z = await db.selectFrom('zones').select('id').where('uuid', '=', p.zoneid).executeTakeFirst();
    if (!z) throw invalidParameter('zoneid', p.zoneid, 'no zone has this id');
    q = q.where(usableInZone('service', 'service_offerings.id', Number(z.id)));
  }
  if (p.virtualmachineid) {
    // The offerings this VM could change to: any but the one it has.
    const vm = await db
      .selectFrom('vms')
      .select(['service_offering_id', 'account_id', 'domain_id'])
      .where('uuid', '=', p.virtualmachineid)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!vm || (ctx.caller.role === 'User' && Number(vm.account_id) !== ctx.caller.accountId))
      throw invalidParameter(
        'virtualmachineid',
        p.virtualmachineid,
        'no virtual machine with this id that the caller can access',
      );
    if (vm.service_offering_id !== null) q = q.where('id', '!=', Number(vm.service_offering_id));
  }
  const rows = await q.orderBy('sort_key').orderBy('id').execute();
  const { limit, offset } = pageWindow(p);
  return { count: rows.length, items: rows.slice(offset, limit === undefined ? undefined : offset + limit) };
}

export async function serviceOfferingResponse(
  ex: unknown,
  o: ServiceOfferingRow,
): Promise<Record<string, unknown>> {
  const custom = o.customized === 1;
  const details: Record<string, string> = {};
  if (o.min_cpu !== null) details.mincpunumber = String(o.min_cpu);
  if (o.max_cpu !== null) details.maxcpunumber = String(o.max_cpu);
  if (o.min_memory !== null) details.minmemory = String(o.min_memory);
  if (o.max_memory !== null) details.maxmemory = String(o.max_memory);
  return {
    id: o.uuid,
    name: o.name,
    displaytext: o.display_text,
    // A customized offering has no size of its own (CloudStack leaves the fields out).
    cpunumber: custom && o.cpu_number === 0 ? undefined : o.cpu_number,
    cpuspeed: custom && o.cpu_speed === 0 ? undefined : o.cpu_speed,
    memory: custom && o.memory === 0 ? undefined : o.memory,
    iscustomized: custom,
    storagetype: o.storage_type,
    provisioningtype: o.provisioning_type,
    offerha: o.offer_ha === 1,
    limitcpuuse: o.limit_cpu_use === 1,
    isvolatile: o.is_volatile === 1,
    issystem: o.is_system === 1,
    systemvmtype: o.system_vm_type ?? undefined,
    defaultuse: false,
    networkrate: o.network_rate ?? undefined,
    storagetags: o.storage_tags ?? undefined,
    hosttags: o.host_tags ?? undefined,
    ...(await scopeFields(ex, 'service', o.id)),
    iscustomizediops: false,
    dynamicscalingenabled: o.dynamic_scaling === 1,
    diskofferingstrictness: false,
    encryptroot: false,
    cacheMode: 'none',
    hasannotations: false,
    serviceofferingdetails: Object.keys(details).length ? details : undefined,
    created: csDate(o.created),
  };
}

export interface VmSize {
  cpuNumber: number;
  cpuSpeed: number;
  memory: number;
}

/** `details[0].cpuNumber=2` and `details[0].key=cpuNumber&details[0].value=2` both, as one map. */
function flatDetails(details: readonly Record<string, string>[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of details ?? []) {
    if (d.key !== undefined && d.value !== undefined) out[d.key] = d.value;
    for (const [k, v] of Object.entries(d)) if (k !== 'key' && k !== 'value') out[k] = v;
  }
  return out;
}

/**
 * The size a VM gets from its offering. A customized offering takes CloudStack's custom details
 * (`cpuNumber`, `cpuSpeed`, `memory`) within the offering's bounds; a fixed one ignores them, as CloudStack keeps
 * other details of a fixed offering as plain VM details.
 */
export function vmSizeFor(o: ServiceOfferingRow, details?: readonly Record<string, string>[]): VmSize {
  if (o.customized !== 1) return { cpuNumber: o.cpu_number, cpuSpeed: o.cpu_speed, memory: o.memory };
  const d = flatDetails(details);
  const need = ['cpuNumber', 'memory', ...(o.cpu_speed === 0 ? ['cpuSpeed'] : [])];
  const missing = need.filter((k) => d[k] === undefined);
  if (missing.length)
    throw invalidParameter(
      'details',
      missing.join(','),
      `service offering ${o.name} is customized: give ${need.map((k) => `details[0].${k}`).join(', ')}`,
    );
  const int = (k: string, min: number, max: number): number => {
    const v = Number(d[k]);
    if (!Number.isInteger(v) || v < min || v > max)
      throw invalidParameter(`details[0].${k}`, d[k], `must be a whole number between ${min} and ${max}`);
    return v;
  };
  return {
    cpuNumber: o.cpu_number || int('cpuNumber', o.min_cpu ?? 1, o.max_cpu ?? INT_MAX),
    cpuSpeed: o.cpu_speed || int('cpuSpeed', 1, INT_MAX),
    memory: o.memory || int('memory', o.min_memory ?? 32, o.max_memory ?? INT_MAX),
  };
}

/**
 * The offering a VM of `owner` in `zone` is deployed with or changed to: active, not a system offering, and
 * usable by the owner's domain in that zone; 431 naming `param` otherwise.
 */
export async function serviceOfferingForVm(
  ex: unknown,
  uuid: string,
  owner: { domainId: number },
  zone: { id: number; name: string },
  param = 'serviceofferingid',
): Promise<ServiceOfferingRow> {
  const o = await serviceOfferingByUuid(ex, uuid, param);
  if (o.is_system === 1)
    throw invalidParameter(param, uuid, `${o.name} is a system offering; guest VMs need a compute offering`);
  await requireOfferingUsable(ex, 'service', o, owner, zone, param, uuid);
  return o;
}
