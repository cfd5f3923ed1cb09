/** VPC offerings: listVPCOfferings, createVPCOffering, updateVPCOffering, deleteVPCOffering. */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { invalidParameter } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { pageWindow, requireRootAdmin } from '../infrastructure/context.js';
import { decodeServices, encodeServices, serviceNames, servicesResponse } from './defaults.js';
import type { ServiceMap } from './defaults.js';
import { internetProtocol } from './network-offerings.js';
import { resolveDomainList, resolveZoneList, scopeFields, setScopes, listScopeConditions } from './scopes.js';
import { offeringDb } from './tables.js';
import type { OfferingDatabase } from './tables.js';
import { applyOfferingUpdate, csDate, deleteUnusedOffering, routerServiceOffering } from './common.js';

export type VpcOfferingRow = Selectable<OfferingDatabase['vpc_offerings']>;

/** What a VPC's router provides; firewall and security groups are per-tier ACLs in a VPC. */
const VPC_SERVICES: readonly string[] = serviceNames.filter((s) => s !== 'Firewall' && s !== 'SecurityGroup');

export interface ListVpcOfferingsParams {
  id?: string | undefined;
  name?: string | undefined;
  displaytext?: string | undefined;
  isdefault?: boolean | undefined;
  state?: string | undefined;
  supportedservices?: string[] | undefined;
  domainid?: string | undefined;
  zoneid?: string | undefined;
  keyword?: string | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

export async function listVpcOfferings(
  ctx: NetCtx,
  p: ListVpcOfferingsParams,
): Promise<Listed<VpcOfferingRow>> {
  const db = offeringDb(ctx.tx);
  let q = db.selectFrom('vpc_offerings').selectAll().where('removed', 'is', null);
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.name) q = q.where('name', '=', p.name);
  if (p.displaytext) q = q.where('display_text', '=', p.displaytext);
  if (p.isdefault !== undefined) q = q.where('is_default', '=', p.isdefault ? 1 : 0);
  if (p.state) q = q.where('state', '=', p.state);
  else if (ctx.caller.role !== 'Admin') q = q.where('state', '=', 'Enabled');
  if (p.keyword) q = q.where('name', 'like', `%${p.keyword}%`);
  for (const c of await listScopeConditions(ctx.tx, 'vpc', 'vpc_offerings.id', ctx.caller, p)) q = q.where(c);
  let rows = await q.orderBy('sort_key').orderBy('id').execute();
  if (p.supportedservices?.length) {
    const want = p.supportedservices.map((s) => s.toLowerCase());
    rows = rows.filter((r) => {
      const have = Object.keys(decodeServices(r.services)).map((s) => s.toLowerCase());
      return want.every((w) => have.includes(w));
    });
  }
  const { limit, offset } = pageWindow(p);
  return { count: rows.length, items: rows.slice(offset, limit === undefined ? undefined : offset + limit) };
}

export interface CreateVpcOfferingParams {
  name: string;
  displaytext: string;
  supportedservices: string[];
  serviceproviderlist?: Record<string, string>[] | undefined;
  serviceofferingid?: string | undefined;
  internetprotocol?: string | undefined;
  domainid?: string[] | undefined;
  zoneid?: string[] | undefined;
  enable?: boolean | undefined;
}

export async function createVpcOffering(ctx: NetCtx, p: CreateVpcOfferingParams): Promise<VpcOfferingRow> {
  requireRootAdmin(ctx.caller, 'createVPCOffering');
  if (!p.name.trim()) throw invalidParameter('name', p.name, 'an offering needs a name');
  const services: ServiceMap = {};
  for (const s of p.supportedservices) {
    const name = serviceNames.find((n) => n.toLowerCase() === s.trim().toLowerCase());
    if (!name)
      throw invalidParameter('supportedservices', s, `unknown service; known: ${VPC_SERVICES.join(', ')}`);
    if (!VPC_SERVICES.includes(name))
      throw invalidParameter('supportedservices', s, `the ${name} service is not supported in a VPC`);
    services[name] = 'VpcVirtualRouter';
  }
  // A VPC's router is its tiers' gateway whatever else it provides.
  services.Gateway = 'VpcVirtualRouter';
  for (const entry of p.serviceproviderlist ?? []) {
    const svc = serviceNames.find((n) => n.toLowerCase() === (entry.service ?? '').toLowerCase());
    if (!svc || !(svc in services))
      throw invalidParameter(
        'serviceproviderlist',
        entry.service ?? '',
        'the service is not in supportedservices',
      );
    if (entry.provider !== 'VpcVirtualRouter')
      throw invalidParameter(
        'serviceproviderlist',
        entry.provider ?? '',
        'stacknet provides VPC services with VpcVirtualRouter',
      );
  }
  const protocol = await internetProtocol(ctx, p.internetprotocol);
  const domainIds = (await resolveDomainList(ctx.tx, p.domainid)) ?? [];
  const zoneIds = (await resolveZoneList(ctx.tx, p.zoneid)) ?? [];
  const routerOffering = p.serviceofferingid
    ? await routerServiceOffering(ctx.tx, p.serviceofferingid)
    : undefined;
  const db = offeringDb(ctx.tx);
  const dupe = await db
    .selectFrom('vpc_offerings')
    .select('id')
    .where('name', '=', p.name)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (dupe) throw invalidParameter('name', p.name, 'a VPC offering with this name exists already');
  const uuid = randomUUID();
  await db
    .insertInto('vpc_offerings')
    .values({
      uuid,
      name: p.name,
      display_text: p.displaytext,
      services: encodeServices(services),
      // As network offerings: Disabled until enabled.
      state: p.enable ? 'Enabled' : 'Disabled',
      is_default: 0,
      internet_protocol: protocol,
      service_offering_id: routerOffering?.id ?? null,
      created: ctx.now,
    })
    .execute();
  const row = await vpcOfferingByUuid(ctx, uuid);
  await setScopes(ctx.tx, 'vpc', row.id, 'domain', domainIds);
  await setScopes(ctx.tx, 'vpc', row.id, 'zone', zoneIds);
  await ctx.recorder.event(ctx.tx, {
    type: 'VPC.OFFERING.CREATE',
    description: `VPC offering ${p.name} created`,
    resourceType: 'VpcOffering',
    resourceId: uuid,
    owner: ctx.caller,
  });
  return row;
}

async function vpcOfferingByUuid(ctx: NetCtx, uuid: string, param = 'id'): Promise<VpcOfferingRow> {
  const o = await offeringDb(ctx.tx)
    .selectFrom('vpc_offerings')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!o) throw invalidParameter(param, uuid, 'no VPC offering has this id');
  return o;
}

export interface UpdateVpcOfferingParams {
  id: string;
  name?: string | undefined;
  displaytext?: string | undefined;
  sortkey?: number | undefined;
  state?: string | undefined;
  domainid?: string | undefined;
  zoneid?: string | undefined;
}

export async function updateVpcOffering(ctx: NetCtx, p: UpdateVpcOfferingParams): Promise<VpcOfferingRow> {
  requireRootAdmin(ctx.caller, 'updateVPCOffering');
  const o = await vpcOfferingByUuid(ctx, p.id);
  await applyOfferingUpdate(ctx, 'vpc', o, {}, p);
  return vpcOfferingByUuid(ctx, o.uuid);
}

export async function deleteVpcOffering(ctx: NetCtx, p: { id: string }): Promise<void> {
  requireRootAdmin(ctx.caller, 'deleteVPCOffering');
  await deleteUnusedOffering(ctx, 'vpc', await vpcOfferingByUuid(ctx, p.id));
}

export async function vpcOfferingResponse(ex: unknown, o: VpcOfferingRow): Promise<Record<string, unknown>> {
  return {
    id: o.uuid,
    name: o.name,
    displaytext: o.display_text,
    state: o.state,
    isdefault: o.is_default === 1,
    service: servicesResponse(decodeServices(o.services)),
    ...(await scopeFields(ex, 'vpc', o.id)),
    distributedvpcrouter: false,
    supportsregionLevelvpc: false,
    internetprotocol: o.internet_protocol,
    created: csDate(o.created),
  };
}
