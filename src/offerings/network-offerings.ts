/** Network offerings: listNetworkOfferings, createNetworkOffering, updateNetworkOffering, deleteNetworkOffering. */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { CloudStackError, invalidParameter, missingParameter } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { pageWindow, requireRootAdmin } from '../infrastructure/context.js';
import { networkByUuid } from '../networks/repository.js';
import { decodeServices, encodeServices, serviceNames, servicesResponse } from './defaults.js';
import type { ServiceMap } from './defaults.js';
import { resolveDomainList, resolveZoneList, scopeFields, setScopes, listScopeConditions } from './scopes.js';
import { offeringDb } from './tables.js';
import type { OfferingDatabase } from './tables.js';
import { applyOfferingUpdate, csDate, deleteUnusedOffering, routerServiceOffering } from './common.js';

export type NetworkOfferingRow = Selectable<OfferingDatabase['network_offerings']>;

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
  zoneid?: string | undefined;
  domainid?: string | undefined;
  tags?: string | undefined;
  istagged?: boolean | undefined;
  keyword?: string | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

export async function listNetworkOfferings(
  ctx: NetCtx,
  p: ListNetworkOfferingsParams,
): Promise<Listed<NetworkOfferingRow>> {
  const db = offeringDb(ctx.tx);
  let q = db.selectFrom('network_offerings').selectAll().where('removed', 'is', null);
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
  if (p.tags) q = q.where('tags', '=', p.tags);
  if (p.istagged !== undefined) q = q.where('tags', p.istagged ? 'is not' : 'is', null);
  if (p.keyword) q = q.where('name', 'like', `%${p.keyword}%`);
  // Users see enabled offerings only; admins all, or the state asked for.
  if (p.state) q = q.where('state', '=', p.state);
  else if (ctx.caller.role !== 'Admin') q = q.where('state', '=', 'Enabled');
  for (const c of await listScopeConditions(ctx.tx, 'network', 'network_offerings.id', ctx.caller, p))
    q = q.where(c);
  let rows = await q.orderBy('sort_key').orderBy('id').execute();
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
  domainid?: string[] | undefined;
  zoneid?: string[] | undefined;
  maxconnections?: number | undefined;
  keepaliveenabled?: boolean | undefined;
  internetprotocol?: string | undefined;
  serviceofferingid?: string | undefined;
}

const AVAILABILITIES = ['Required', 'Optional'];

/** `ipv4` / `dualstack` in any case, as CloudStack's NetUtils.InternetProtocol; IPv6 offerings need the setting. */
export async function internetProtocol(
  ctx: NetCtx,
  v: string | undefined,
  guestType?: string,
): Promise<string> {
  if (v === undefined) return 'IPv4';
  const t = v.trim().toLowerCase();
  if (t === 'ipv4') return 'IPv4';
  if (t === 'dualstack') {
    if ((await ctx.setting('ipv6.offering.enabled')) !== 'true')
      throw invalidParameter(
        'internetprotocol',
        v,
        'IPv6 offerings are disabled; an admin enables them with the setting ipv6.offering.enabled',
      );
    // CloudStack gives guest IPv6 /64s to isolated networks (and VPC tiers) only.
    if (guestType !== undefined && guestType !== 'Isolated')
      throw invalidParameter(
        'internetprotocol',
        v,
        `IPv6 is supported for Isolated networks only, not ${guestType}`,
      );
    return 'DualStack';
  }
  throw invalidParameter('internetprotocol', v, 'must be IPv4 or DualStack');
}

export async function createNetworkOffering(
  ctx: NetCtx,
  p: CreateNetworkOfferingParams,
): Promise<NetworkOfferingRow> {
  requireRootAdmin(ctx.caller, 'createNetworkOffering');
  const db = offeringDb(ctx.tx);
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
  if (p.availability && !AVAILABILITIES.includes(p.availability))
    throw invalidParameter('availability', p.availability, 'must be Required or Optional');
  if (p.availability === 'Required') await checkRequiredAvailability(ctx, type, services, undefined);
  if (p.maxconnections !== undefined && p.maxconnections < 0)
    throw invalidParameter('maxconnections', p.maxconnections, 'must be 0 or more');
  if (p.networkrate !== undefined && p.networkrate < 0)
    throw invalidParameter('networkrate', p.networkrate, 'must be 0 or more (megabits per second)');
  const protocol = await internetProtocol(ctx, p.internetprotocol, type);
  const domainIds = (await resolveDomainList(ctx.tx, p.domainid)) ?? [];
  const zoneIds = (await resolveZoneList(ctx.tx, p.zoneid)) ?? [];
  const routerOffering = p.serviceofferingid
    ? await routerServiceOffering(ctx.tx, p.serviceofferingid)
    : undefined;
  const dupe = await db
    .selectFrom('network_offerings')
    .select('id')
    .where('name', '=', p.name)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (dupe)
    throw new CloudStackError('InvalidParameterValue', `Network offering with name ${p.name} already exists`);
  const uuid = randomUUID();
  await db
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
      // NetworkOfferingBaseCmd: egressdefaultpolicy absent = true (allow); the built-in offerings (seeded) deny.
      egress_default_policy: p.egressdefaultpolicy === false ? 0 : 1,
      availability: p.availability ?? 'Optional',
      // CloudStack creates offerings Disabled unless `enable=true`.
      state: p.enable ? 'Enabled' : 'Disabled',
      is_default: 0,
      network_rate: p.networkrate ?? null,
      tags: p.tags ?? null,
      max_connections: p.maxconnections ?? null,
      keepalive_enabled: p.keepaliveenabled ? 1 : 0,
      internet_protocol: protocol,
      service_offering_id: routerOffering?.id ?? null,
      created: ctx.now,
      removed: null,
    })
    .execute();
  const row = await networkOfferingByUuid(ctx, uuid);
  await setScopes(ctx.tx, 'network', row.id, 'domain', domainIds);
  await setScopes(ctx.tx, 'network', row.id, 'zone', zoneIds);
  await ctx.recorder.event(ctx.tx, {
    type: 'NETWORK.OFFERING.CREATE',
    description: `Network offering ${p.name} created`,
    resourceType: 'NetworkOffering',
    resourceId: uuid,
    owner: ctx.caller,
  });
  return row;
}

/**
 * CloudStack lets one offering be Required (networks with it are created for new accounts): an isolated one
 * with source NAT, and only one at a time.
 */
async function checkRequiredAvailability(
  ctx: NetCtx,
  type: string,
  services: ServiceMap,
  exceptId: number | undefined,
): Promise<void> {
  if (type !== 'Isolated' || !('SourceNat' in services))
    throw invalidParameter(
      'availability',
      'Required',
      'only an isolated offering with the SourceNat service can be Required',
    );
  let q = offeringDb(ctx.tx)
    .selectFrom('network_offerings')
    .select(['uuid', 'name'])
    .where('availability', '=', 'Required')
    .where('removed', 'is', null);
  if (exceptId !== undefined) q = q.where('id', '!=', exceptId);
  const other = await q.executeTakeFirst();
  if (other)
    throw invalidParameter(
      'availability',
      'Required',
      `network offering ${other.name} (${other.uuid}) is Required already; only one offering can be`,
    );
}

async function networkOfferingByUuid(ctx: NetCtx, uuid: string, param = 'id'): Promise<NetworkOfferingRow> {
  const o = await offeringDb(ctx.tx)
    .selectFrom('network_offerings')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!o) throw invalidParameter(param, uuid, 'no network offering has this id');
  return o;
}

export interface UpdateNetworkOfferingParams {
  id?: string | undefined;
  name?: string | undefined;
  displaytext?: string | undefined;
  availability?: string | undefined;
  state?: string | undefined;
  sortkey?: number | undefined;
  tags?: string | undefined;
  maxconnections?: number | undefined;
  keepaliveenabled?: boolean | undefined;
  domainid?: string | undefined;
  zoneid?: string | undefined;
}

export async function updateNetworkOffering(
  ctx: NetCtx,
  p: UpdateNetworkOfferingParams,
): Promise<NetworkOfferingRow> {
  requireRootAdmin(ctx.caller, 'updateNetworkOffering');
  if (p.id === undefined) throw missingParameter('id');
  const o = await networkOfferingByUuid(ctx, p.id);
  const set: Partial<NetworkOfferingRow> = {};
  if (p.tags !== undefined) set.tags = p.tags === '' ? null : p.tags;
  if (p.maxconnections !== undefined) {
    if (p.maxconnections < 0) throw invalidParameter('maxconnections', p.maxconnections, 'must be 0 or more');
    set.max_connections = p.maxconnections;
  }
  if (p.keepaliveenabled !== undefined) set.keepalive_enabled = p.keepaliveenabled ? 1 : 0;
  if (p.availability !== undefined) {
    const a = AVAILABILITIES.find((s) => s.toLowerCase() === p.availability!.toLowerCase());
    if (!a) throw invalidParameter('availability', p.availability, 'must be Required or Optional');
    if (a === 'Required')
      await checkRequiredAvailability(ctx, o.guest_ip_type, decodeServices(o.services), o.id);
    set.availability = a;
  }
  await applyOfferingUpdate(ctx, 'network', o, set, p);
  return networkOfferingByUuid(ctx, o.uuid);
}

export async function deleteNetworkOffering(ctx: NetCtx, p: { id: string }): Promise<void> {
  requireRootAdmin(ctx.caller, 'deleteNetworkOffering');
  await deleteUnusedOffering(ctx, 'network', await networkOfferingByUuid(ctx, p.id));
}

export async function networkOfferingResponse(
  ex: unknown,
  o: NetworkOfferingRow,
): Promise<Record<string, unknown>> {
  const so =
    o.service_offering_id !== null
      ? await offeringDb(ex)
          .selectFrom('service_offerings')
          .select('uuid')
          .where('id', '=', o.service_offering_id)
          .executeTakeFirst()
      : undefined;
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
    maxconnections: o.max_connections ?? undefined,
    tags: o.tags ?? undefined,
    serviceofferingid: so?.uuid,
    service: servicesResponse(decodeServices(o.services)),
    ...(await scopeFields(ex, 'network', o.id)),
    internetprotocol: o.internet_protocol,
    supportspublicaccess: false,
    supportsstrechedl2subnet: false,
    fortungsten: false,
    hasannotations: false,
    created: csDate(o.created),
  };
}
