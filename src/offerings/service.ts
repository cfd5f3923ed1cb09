/** Offerings and templates: listNetworkOfferings, createNetworkOffering, listVPCOfferings, listServiceOfferings, listTemplates. */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { pageWindow, requireRootAdmin } from '../infrastructure/context.js';
import type { NetDatabase } from '../networks/tables.js';
import { networkByUuid } from '../networks/repository.js';
import { decodeServices, encodeServices, serviceNames, servicesResponse } from './defaults.js';
import type { ServiceMap } from './defaults.js';

type NetworkOfferingRow = Selectable<NetDatabase['network_offerings']>;
type VpcOfferingRow = Selectable<NetDatabase['vpc_offerings']>;
type ServiceOfferingRow = Selectable<NetDatabase['service_offerings']>;
type TemplateRow = Selectable<NetDatabase['templates']>;

const csDate = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+0000');

export interface ListNetworkOfferingsParams {
  id?: string | undefined;
  name?: string | undefined;
  displaytext?: string | undefined;
  guestiptype?: string | undefined;
  traffictype?: string | undefined;
  forvpc?: boolean | undefined;
  isdefault?: boolean | undefined;
  specifyvlan?: boolean | undefined;
  specifyipranges?: boolean | undefined;
  sourcenatsupported?: boolean | undefined;
  state?: string | undefined;
  availability?: string | undefined;
  supportedservices?: string[] | undefined;
  networkid?: string | undefined;
  keyword?: string | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

export async function listNetworkOfferings(
  ctx: NetCtx,
  p: ListNetworkOfferingsParams,
): Promise<Listed<NetworkOfferingRow>> {
  let q = ctx.tx.selectFrom('network_offerings').selectAll().where('removed', 'is', null);
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.name) q = q.where('name', '=', p.name);
  if (p.displaytext) q = q.where('display_text', '=', p.displaytext);
  if (p.guestiptype) q = q.where('guest_ip_type', '=', p.guestiptype);
  if (p.traffictype) q = q.where('traffic_type', '=', p.traffictype);
  if (p.forvpc !== undefined) q = q.where('for_vpc', '=', p.forvpc ? 1 : 0);
  if (p.isdefault !== undefined) q = q.where('is_default', '=', p.isdefault ? 1 : 0);
  if (p.specifyvlan !== undefined) q = q.where('specify_vlan', '=', p.specifyvlan ? 1 : 0);
  if (p.specifyipranges !== undefined) q = q.where('specify_ip_ranges', '=', p.specifyipranges ? 1 : 0);
  if (p.availability) q = q.where('availability', '=', p.availability);
  if (p.keyword) q = q.where('name', 'like', `%${p.keyword}%`);
  // Users see enabled offerings only; admins all, or the state asked for.
  if (p.state) q = q.where('state', '=', p.state);
  else if (ctx.caller.role !== 'Admin') q = q.where('state', '=', 'Enabled');
  let rows = await q.orderBy('id').execute();
  if (p.sourcenatsupported !== undefined)
    rows = rows.filter((r) => 'SourceNat' in decodeServices(r.services) === p.sourcenatsupported);
  if (p.supportedservices?.length) {
    rows = rows.filter((r) => {
      const s = decodeServices(r.services);
      return p.supportedservices!.every((x) =>
        Object.keys(s).some((k) => k.toLowerCase() === x.toLowerCase()),
      );
    });
  }
  if (p.networkid) {
    // Offerings a network may be upgraded to: same guest IP type and VPC-ness as its current one.
    const n = await networkByUuid(ctx.tx, p.networkid);
    const cur = rows.find((r) => r.id === n.offering_id);
    rows = rows.filter((r) => r.guest_ip_type === n.type && (!cur || r.for_vpc === cur.for_vpc));
  }
  const { limit, offset } = pageWindow(p);
  return { count: rows.length, items: rows.slice(offset, limit === undefined ? undefined : offset + limit) };
}

export interface CreateNetworkOfferingParams {
  name: string;
  displaytext: string;
  guestiptype: string;
  traffictype: string;
  supportedservices?: string[] | undefined;
  serviceproviderlist?: Record<string, string>[] | undefined;
  specifyvlan?: boolean | undefined;
  specifyipranges?: boolean | undefined;
  forvpc?: boolean | undefined;
  ispersistent?: boolean | undefined;
  conservemode?: boolean | undefined;
  egressdefaultpolicy?: boolean | undefined;
  availability?: string | undefined;
  networkrate?: number | undefined;
  tags?: string | undefined;
  enable?: boolean | undefined;
  internetprotocol?: string | undefined;
}

export async function createNetworkOffering(
  ctx: NetCtx,
  p: CreateNetworkOfferingParams,
): Promise<NetworkOfferingRow> {
  requireRootAdmin(ctx.caller, 'createNetworkOffering');
  const type = ['Isolated', 'Shared', 'L2'].find((t) => t.toLowerCase() === p.guestiptype.toLowerCase());
  if (!type) throw invalidParameter('guestiptype', p.guestiptype, 'must be Isolated, Shared or L2');
  if (p.traffictype.toLowerCase() !== 'guest')
    throw invalidParameter('traffictype', p.traffictype, 'only Guest network offerings can be created');
  const services: ServiceMap = {};
  for (const s of p.supportedservices ?? []) {
    const name = serviceNames.find((n) => n.toLowerCase() === s.trim().toLowerCase());
    if (!name)
      throw invalidParameter('supportedservices', s, `unknown service; known: ${serviceNames.join(', ')}`);
    services[name] = p.forvpc ? 'VpcVirtualRouter' : 'VirtualRouter';
  }
  for (const entry of p.serviceproviderlist ?? []) {
    const svc = serviceNames.find((n) => n.toLowerCase() === (entry.service ?? '').toLowerCase());
    if (!svc || !(svc in services)) {
      throw invalidParameter(
        'serviceproviderlist',
        entry.service ?? '',
        'the service is not in supportedservices',
      );
    }
    const provider = entry.provider ?? '';
    if (!['VirtualRouter', 'VpcVirtualRouter'].includes(provider)) {
      throw invalidParameter(
        'serviceproviderlist',
        provider,
        'stacknet provides services with VirtualRouter or VpcVirtualRouter',
      );
    }
    services[svc] = provider;
  }
  if (type === 'L2' && Object.keys(services).length)
    throw invalidParameter(
      'supportedservices',
      (p.supportedservices ?? []).join(','),
      'L2 offerings have no services',
    );
  if (type === 'Shared' && 'SourceNat' in services)
    throw invalidParameter('supportedservices', 'SourceNat', 'shared networks have no source NAT');
  if (p.availability && !['Required', 'Optional'].includes(p.availability))
    throw invalidParameter('availability', p.availability, 'must be Required or Optional');
  const internetProtocol = await offeringInternetProtocol(ctx, p.internetprotocol, type);
  const dupe = await ctx.tx
    .selectFrom('network_offerings')
    .select('id')
    .where('name', '=', p.name)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (dupe)
    throw new CloudStackError('InvalidParameterValue', `Network offering with name ${p.name} already exists`);
  const uuid = randomUUID();
  await ctx.tx
    .insertInto('network_offerings')
    .values({
      uuid,
      name: p.name,
      display_text: p.displaytext,
      guest_ip_type: type,
      traffic_type: 'Guest',
      services: encodeServices(services),
      for_vpc: p.forvpc ? 1 : 0,
      specify_vlan: p.specifyvlan ? 1 : 0,
      specify_ip_ranges: (p.specifyipranges ?? type === 'Shared') ? 1 : 0,
      is_persistent: p.ispersistent ? 1 : 0,
      conserve_mode: p.conservemode === false ? 0 : 1,
      egress_default_policy: p.egressdefaultpolicy ? 1 : 0,
      availability: p.availability ?? 'Optional',
      // CloudStack creates offerings Disabled unless `enable=true`.
      state: p.enable ? 'Enabled' : 'Disabled',
      is_default: 0,
      network_rate: p.networkrate ?? null,
      tags: p.tags ?? null,
      internet_protocol: internetProtocol,
      created: ctx.now,
      removed: null,
    })
    .execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'NETWORK.OFFERING.CREATE',
    description: `Network offering ${p.name} created`,
    resourceType: 'NetworkOffering',
    resourceId: uuid,
    owner: ctx.caller,
  });
  return ctx.tx
    .selectFrom('network_offerings')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
}

/**
 * internetprotocol= (CloudStack 4.17+): IPv4, or DualStack for Isolated offerings whose networks take a /64 of
 * the zone's guest IPv6 prefixes (networks/ipv6-subnets.ts). CloudStack also gates DualStack behind the
 * ipv6.offering.enabled setting: it is honoured when set to false.
 */
async function offeringInternetProtocol(
  ctx: NetCtx,
  text: string | undefined,
  guestType: string,
): Promise<'IPv4' | 'DualStack'> {
  if (text === undefined || text === '') return 'IPv4';
  const v = (['IPv4', 'DualStack'] as const).find((x) => x.toLowerCase() === text.toLowerCase());
  if (!v) throw invalidParameter('internetprotocol', text, 'must be IPv4 or DualStack');
  if (v === 'DualStack') {
    if ((await ctx.setting('ipv6.offering.enabled')) === 'false') {
      throw invalidParameter(
        'internetprotocol',
        text,
        'Configuration ipv6.offering.enabled needs to be enabled for creating IPv6 supported network offering',
      );
    }
    if (guestType !== 'Isolated')
      throw invalidParameter(
        'internetprotocol',
        text,
        `IPv6 is supported for Isolated networks only, not ${guestType}`,
      );
  }
  return v;
}

export function networkOfferingResponse(o: NetworkOfferingRow): Record<string, unknown> {
  return {
    id: o.uuid,
    name: o.name,
    displaytext: o.display_text,
    guestiptype: o.guest_ip_type,
    traffictype: o.traffic_type,
    state: o.state,
    isdefault: o.is_default === 1,
    specifyvlan: o.specify_vlan === 1,
    specifyipranges: o.specify_ip_ranges === 1,
    forvpc: o.for_vpc === 1,
    ispersistent: o.is_persistent === 1,
    conservemode: o.conserve_mode === 1,
    egressdefaultpolicy: o.egress_default_policy === 1,
    availability: o.availability,
    networkrate: o.network_rate ?? undefined,
    tags: o.tags ?? undefined,
    service: servicesResponse(decodeServices(o.services)),
    internetprotocol: o.internet_protocol,
    supportspublicaccess: false,
    supportsstrechedl2subnet: false,
    fortungsten: false,
    hasannotations: false,
    created: csDate(o.created),
  };
}

export async function listVpcOfferings(
  ctx: NetCtx,
  p: {
    id?: string | undefined;
    name?: string | undefined;
    isdefault?: boolean | undefined;
    state?: string | undefined;
    keyword?: string | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<VpcOfferingRow>> {
  let q = ctx.tx.selectFrom('vpc_offerings').selectAll();
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.name) q = q.where('name', '=', p.name);
  if (p.isdefault !== undefined) q = q.where('is_default', '=', p.isdefault ? 1 : 0);
  if (p.state) q = q.where('state', '=', p.state);
  if (p.keyword) q = q.where('name', 'like', `%${p.keyword}%`);
  const rows = await q.orderBy('id').execute();
  const { limit, offset } = pageWindow(p);
  return { count: rows.length, items: rows.slice(offset, limit === undefined ? undefined : offset + limit) };
}

export function vpcOfferingResponse(o: VpcOfferingRow): Record<string, unknown> {
  return {
    id: o.uuid,
    name: o.name,
    displaytext: o.display_text,
    state: o.state,
    isdefault: o.is_default === 1,
    service: servicesResponse(decodeServices(o.services)),
    distributedvpcrouter: false,
    supportsregionLevelvpc: false,
    internetprotocol: 'IPv4',
    created: csDate(o.created),
  };
}

export async function listServiceOfferings(
  ctx: NetCtx,
  p: {
    id?: string | undefined;
    name?: string | undefined;
    keyword?: string | undefined;
    issystem?: boolean | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<ServiceOfferingRow>> {
  if (p.issystem) return { count: 0, items: [] };
  let q = ctx.tx.selectFrom('service_offerings').selectAll();
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.name) q = q.where('name', '=', p.name);
  if (p.keyword) q = q.where('name', 'like', `%${p.keyword}%`);
  const rows = await q.orderBy('id').execute();
  const { limit, offset } = pageWindow(p);
  return { count: rows.length, items: rows.slice(offset, limit === undefined ? undefined : offset + limit) };
}

export function serviceOfferingResponse(o: ServiceOfferingRow): Record<string, unknown> {
  return {
    id: o.uuid,
    name: o.name,
    displaytext: o.display_text,
    cpunumber: o.cpu_number,
    cpuspeed: o.cpu_speed,
    memory: o.memory,
    storagetype: 'shared',
    provisioningtype: 'thin',
    offerha: false,
    limitcpuuse: false,
    isvolatile: false,
    issystem: false,
    defaultuse: false,
    iscustomized: false,
    dynamicscalingenabled: true,
    hasannotations: false,
    created: csDate(o.created),
  };
}

const TEMPLATE_FILTERS = [
  'featured',
  'self',
  'selfexecutable',
  'sharedexecutable',
  'executable',
  'community',
  'all',
];

export async function listTemplates(
  ctx: NetCtx,
  p: {
    templatefilter: string;
    id?: string | undefined;
    name?: string | undefined;
    keyword?: string | undefined;
    zoneid?: string | undefined;
    hypervisor?: string | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<TemplateRow>> {
  if (!TEMPLATE_FILTERS.includes(p.templatefilter)) {
    throw invalidParameter(
      'templatefilter',
      p.templatefilter,
      `must be one of ${TEMPLATE_FILTERS.join(', ')}`,
    );
  }
  if (p.templatefilter === 'all' && ctx.caller.role !== 'Admin')
    throw invalidParameter('templatefilter', 'all', 'only admins may list all templates');
  // The built-in templates are the system's: public and featured, never "self" of a user account.
  if (p.templatefilter === 'self' || p.templatefilter === 'sharedexecutable') return { count: 0, items: [] };
  let q = ctx.tx.selectFrom('templates').selectAll();
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.name) q = q.where('name', '=', p.name);
  if (p.keyword) q = q.where('name', 'like', `%${p.keyword}%`);
  if (p.hypervisor) q = q.where('hypervisor', '=', p.hypervisor);
  if (p.templatefilter === 'featured') q = q.where('is_featured', '=', 1);
  const rows = await q.orderBy('id').execute();
  const { limit, offset } = pageWindow(p);
  return { count: rows.length, items: rows.slice(offset, limit === undefined ? undefined : offset + limit) };
}

export async function templateResponses(
  ctx: NetCtx,
  rows: readonly TemplateRow[],
  zoneUuid?: string,
): Promise<Record<string, unknown>[]> {
  const zones = zoneUuid
    ? await ctx.tx.selectFrom('zones').select(['uuid', 'name']).where('uuid', '=', zoneUuid).execute()
    : await ctx.tx.selectFrom('zones').select(['uuid', 'name']).where('removed', 'is', null).execute();
  const out: Record<string, unknown>[] = [];
  // CloudStack lists a template once per zone it is ready in; with no zone yet, once without a zone.
  for (const t of rows) {
    const base = {
      id: t.uuid,
      name: t.name,
      displaytext: t.display_text,
      ostypename: t.os_type_name,
      format: t.format,
      hypervisor: t.hypervisor,
      templatetype: t.template_type,
      passwordenabled: t.password_enabled === 1,
      ispublic: t.is_public === 1,
      isfeatured: t.is_featured === 1,
      isready: true,
      isextractable: false,
      bootable: true,
      crossZones: true,
      sshkeyenabled: false,
      isdynamicallyscalable: false,
      directdownload: false,
      deployasis: false,
      requireshvm: true,
      account: 'system',
      status: 'Download Complete',
      hasannotations: false,
      tags: [],
      created: csDate(t.created),
    };
    if (zones.length === 0) out.push(base);
    for (const z of zones) out.push({ ...base, zoneid: z.uuid, zonename: z.name });
  }
  return out;
}
