/** listRouters, startRouter, stopRouter, rebootRouter, destroyRouter, getRouterHealthCheckResults. */
import { hostname } from 'node:os';
import { adminRoles, defineCommand, listResult, objectResult, refParams } from '../api/command.js';
import type { AnyCommand, Caller, CommandContext, ResponseObject } from '../api/command.js';
import { invalidParameter } from '../errors/catalogue.js';
import { jobAttempt } from '../api/jobs/rerun.js';
import { idsOf, keywordMatch, mapByIds, pageOf, pageOfQuery, readByKeys } from '../api/list.js';
import { withNet } from '../infrastructure/net-context.js';
import { prefixToNetmask, parseCidr } from '../ipam/index.js';
import { scopeToCaller } from '../accounts/scope.js';
import { ownersByIds } from '../accounts/repository.js';
import type { Executor } from '../store/db.js';
import { vmRuntimeFor } from '../vms/runtime-services.js';
import { APPLIANCE_ROLE, bumpRouter, routerById } from './repository.js';
import type { RouterRow } from './repository.js';
import { routerRuntime } from './runtime.js';
import { routerPublicNics } from './public-inputs.js';
import { getSetting } from '../configuration/repository.js';
import { stableUuid } from '../offerings/os-types.js';
import { offeringDb } from '../offerings/tables.js';
import { dhcpBackend, healthChecks, redundantState } from './health.js';
import { destroyRouterRow, ROUTER_VERSION, STACKNET_VERSION } from './service.js';
import { placementFields } from '../hosts/repository.js';

const COLS = { accountColumn: 'routers.account_id', domainColumn: 'routers.domain_id' };

export async function routerResponse(ex: Executor, r: RouterRow): Promise<ResponseObject> {
  return (await routerResponses(ex, [r]))[0]!;
}

/**
 * CloudStack's router objects of a page of routers, in order: each referenced table read once for the page
 * (networks, zones, owners, VPCs, offerings, hosts), then each router's public NICs (`routerPublicNics`, a
 * handful of rows per router).
 */
export async function routerResponses(
  ex: Executor,
  routers: readonly RouterRow[],
): Promise<ResponseObject[]> {
  if (routers.length === 0) return [];
  const nets = await mapByIds(idsOf(routers.map((r) => r.network_id)), (chunk) =>
    ex.selectFrom('networks').selectAll().where('id', 'in', chunk).execute(),
  );
  const zones = await mapByIds(idsOf(routers.map((r) => r.zone_id)), (chunk) =>
    ex.selectFrom('zones').select(['id', 'uuid', 'name', 'dns1', 'dns2']).where('id', 'in', chunk).execute(),
  );
  const accts = await ownersByIds(ex, idsOf(routers.map((r) => r.account_id)));
  const vpcs = await mapByIds(idsOf([...nets.values()].map((n) => n.vpc_id)), (chunk) =>
    ex.selectFrom('vpcs').select(['id', 'uuid', 'name']).where('id', 'in', chunk).execute(),
  );
  const offeringOf = await routerServiceOfferings(ex, [...nets.values()]);
  const controlPrefix = parseCidr(String(await getSetting(ex, 'control.cidr')), 'control.cidr', {
    strict: false,
  }).prefix;
  const placements = new Map<number, Awaited<ReturnType<typeof placementFields>>>();
  for (const h of idsOf(routers.map((r) => r.host_id))) placements.set(h, await placementFields(ex, h));
  const out: ResponseObject[] = [];
  for (const r of routers) {
    const n = nets.get(Number(r.network_id));
    const z = zones.get(Number(r.zone_id));
    const acct = r.account_id === null ? undefined : accts.get(Number(r.account_id));
    const cidr = n?.network_cidr ?? n?.cidr;
    const checks = healthChecks(r);
    const netmask = cidr ? prefixToNetmask(parseCidr(cidr, 'cidr', { strict: false }).prefix) : undefined;
    const vpc = n?.vpc_id == null ? undefined : vpcs.get(Number(n.vpc_id));
    const appliance = r.role === APPLIANCE_ROLE;
    const so = await offeringOf(n, appliance);
    // An internal LB appliance has its guest and control NICs only, whatever its tier's router holds.
    const publicNics = n && !appliance ? await routerPublicNics(ex, Number(n.id)) : [];
    // CloudStack's router NICs: guest (eth0), control (link local, eth1), public (eth2...). stacknet's ids are
    // derived from the router's and the device's, so a NIC keeps its id across listings.
    const nicId = (device: number) => stableUuid(`${r.uuid}/nic/${device}`);
    const nics: ResponseObject[] = [
      {
        id: nicId(0),
        deviceid: '0',
        networkid: n?.uuid,
        networkname: n?.name,
        ipaddress: r.guest_ip ?? undefined,
        netmask,
        gateway: n?.gateway ?? undefined,
        macaddress: r.guest_mac ?? undefined,
        traffictype: 'Guest',
        type: n?.type,
        isdefault: false,
        broadcasturi: n?.vnet == null ? undefined : `vlan://${n.vnet}`,
        ...(vpc ? { vpcid: vpc.uuid, vpcname: vpc.name } : {}),
      },
      {
        id: nicId(1),
        deviceid: '1',
        ipaddress: r.control_ip ?? undefined,
        netmask: prefixToNetmask(controlPrefix),
        traffictype: 'Control',
        isdefault: false,
      },
      ...publicNics.map((p) => ({
        id: nicId(Number(p.interface.slice(3))),
        deviceid: p.interface.slice(3),
        ipaddress: p.ips[0]!.address,
        netmask: prefixToNetmask(p.prefix),
        gateway: p.gateway,
        traffictype: 'Public',
        isdefault: p.interface === 'eth2',
        broadcasturi: `vlan://${p.vlan}`,
        vlanid: p.vlan,
      })),
    ];
    const snat = publicNics.flatMap((p) => p.ips).find((i) => i.sourceNat);
    const placed = r.host_id === null || r.host_id === undefined ? null : placements.get(Number(r.host_id));
    out.push({
      id: r.uuid,
      name: r.name,
      state: r.state,
      // CloudStack's VirtualRouter.Role: INTERNAL_LB_VM for the internal LB appliance.
      role: appliance ? 'INTERNAL_LB_VM' : 'VIRTUAL_ROUTER',
      zoneid: z?.uuid,
      zonename: z?.name,
      dns1: z?.dns1 ?? undefined,
      dns2: z?.dns2 ?? undefined,
      networkdomain: n?.network_domain ?? undefined,
      guestnetworkid: n?.uuid,
      guestnetworkname: n?.name,
      guestipaddress: r.guest_ip ?? undefined,
      guestmacaddress: r.guest_mac ?? undefined,
      guestnetmask: netmask,
      gateway: n?.gateway ?? undefined,
      linklocalip: r.control_ip ?? undefined,
      linklocalnetmask: prefixToNetmask(controlPrefix),
      publicip: appliance ? undefined : (snat?.address ?? r.public_ip ?? undefined),
      publicnetmask: publicNics[0] ? prefixToNetmask(publicNics[0].prefix) : undefined,
      vpcid: vpc?.uuid,
      vpcname: vpc?.name,
      serviceofferingid: so?.uuid,
      serviceofferingname: so?.name,
      nic: nics,
      isredundantrouter: r.role === 'primary' || r.role === 'backup',
      redundantstate: redundantState(r),
      version: r.version,
      // What runs the router is stacknet's own agent: on the simulator and netns drivers on the management
      // server's machine, on the hosts driver on the host it was placed on.
      softwareversion: STACKNET_VERSION,
      hostname: placed?.hostname ?? hostname(),
      hostid: placed?.hostid,
      hostcontrolstate: placed?.hostcontrolstate,
      requiresupgrade: r.version !== ROUTER_VERSION,
      account: acct?.account,
      domainid: acct?.domainid,
      domain: acct?.domain,
      created: new Date(Number(r.created)).toISOString().replace(/\.\d{3}Z$/, '+0000'),
      healthchecksfailed: checks.some((c) => c.success === false),
      // stacknet's own fields: the reconciler's view (CloudStack has no generations).
      desiredgeneration: Number(r.desired_generation),
      appliedgeneration: r.applied_generation === null ? undefined : Number(r.applied_generation),
      lasterror: r.last_error ?? undefined,
      dhcpbackend: dhcpBackend(r),
    });
  }
  return out;
}

/**
 * The system offering each router is sized by, as CloudStack names it: its network offering's (a tier router:
 * its VPC offering's) `serviceofferingid`, else the default system offering for its kind (migration 0025). The
 * networks' offerings are read once; the defaults once per kind asked for.
 */
async function routerServiceOfferings(ex: Executor, networks: readonly NetworkLike[]) {
  const db = offeringDb(ex);
  const chosenByOffering = new Map(
    (
      await readByKeys(idsOf(networks.filter((n) => n.vpc_id === null).map((n) => n.offering_id)), (chunk) =>
        db
          .selectFrom('network_offerings')
          .select(['id', 'service_offering_id'])
          .where('id', 'in', chunk)
          .execute(),
      )
    ).map((o) => [Number(o.id), o.service_offering_id]),
  );
  const chosenByVpc = new Map(
    (
      await readByKeys(idsOf(networks.map((n) => n.vpc_id)), (chunk) =>
        db
          .selectFrom('vpcs')
          .innerJoin('vpc_offerings', 'vpc_offerings.id', 'vpcs.vpc_offering_id')
          .select(['vpcs.id as id', 'vpc_offerings.service_offering_id'])
          .where('vpcs.id', 'in', chunk)
          .execute(),
      )
    ).map((o) => [Number(o.id), o.service_offering_id]),
  );
  const chosen = idsOf([...chosenByOffering.values(), ...chosenByVpc.values()]);
  const offerings = new Map(
    (
      await readByKeys(chosen, (chunk) =>
        db.selectFrom('service_offerings').select(['id', 'uuid', 'name']).where('id', 'in', chunk).execute(),
      )
    ).map((o) => [Number(o.id), { uuid: o.uuid, name: o.name }]),
  );
  const defaults = new Map<string, { uuid: string; name: string } | undefined>();
  const defaultFor = async (kind: string) => {
    if (!defaults.has(kind))
      defaults.set(
        kind,
        await db
          .selectFrom('service_offerings')
          .select(['uuid', 'name'])
          .where('is_system', '=', 1)
          .where('system_vm_type', '=', kind)
          .where('removed', 'is', null)
          .orderBy('id')
          .limit(1)
          .executeTakeFirst(),
      );
    return defaults.get(kind);
  };
  return async (
    n: NetworkLike | undefined,
    appliance: boolean,
  ): Promise<{ uuid: string; name: string } | undefined> => {
    let id: number | null = null;
    if (n && !appliance) {
      const c =
        n.vpc_id === null ? chosenByOffering.get(Number(n.offering_id)) : chosenByVpc.get(Number(n.vpc_id));
      id = c == null ? null : Number(c);
    }
    return id === null
      ? defaultFor(appliance ? 'internalloadbalancervm' : 'domainrouter')
      : offerings.get(id);
  };
}
type NetworkLike = { offering_id: number | null; vpc_id: number | null };

/**
 * The router (or, `appliances`, the internal LB appliance) named `uuid` the caller may act on. The router
 * commands do not see appliances (CloudStack lists internal LB VMs with listInternalLoadBalancerVMs only).
 */
export async function routerForCaller(
  ctx: CommandContext,
  uuid: string,
  param = 'id',
  includeRemoved = false,
  appliances = false,
): Promise<RouterRow> {
  let q = ctx.store.db
    .selectFrom('routers')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('role', appliances ? '=' : '!=', APPLIANCE_ROLE);
  if (!includeRemoved) q = q.where('removed', 'is', null);
  const r = await scopeToCaller(q, ctx.caller, COLS).executeTakeFirst();
  if (!r)
    throw invalidParameter(
      param,
      uuid,
      `no ${appliances ? 'internal LB VM' : 'router'} with this id that the caller can access`,
    );
  return r;
}

export async function waitFor(
  ctx: CommandContext,
  id: number,
  ok: (r: RouterRow) => boolean,
  timeoutMs = 60_000,
): Promise<RouterRow> {
  const { reconciler } = vmRuntimeFor(ctx.store);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await reconciler.reconcile(id);
    const r = (await routerById(ctx.store.db, id))!;
    if (ok(r) || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

export const converged = (r: RouterRow) =>
  r.state === 'Running' &&
  r.applied_generation !== null &&
  Number(r.applied_generation) >= Number(r.desired_generation);

/**
 * The live router rows the caller may see, tier routers or internal LB appliances, with the filters listRouters
 * and listInternalLoadBalancerVMs share (an id that names nothing finds nothing).
 */
export async function routerListQuery(
  ex: Executor,
  caller: Caller,
  p: {
    id?: string | undefined;
    name?: string | undefined;
    state?: string | undefined;
    keyword?: string | undefined;
    networkid?: string | undefined;
    zoneid?: string | undefined;
  },
  o: { appliances: boolean },
) {
  let q = scopeToCaller(
    ex
      .selectFrom('routers')
      .selectAll('routers')
      .where('routers.removed', 'is', null)
      .where('routers.role', o.appliances ? '=' : '!=', APPLIANCE_ROLE),
    caller,
    COLS,
  );
  if (p.id !== undefined) q = q.where('routers.uuid', '=', p.id);
  if (p.name !== undefined) q = q.where('routers.name', '=', p.name);
  if (p.state !== undefined) q = q.where('routers.state', '=', p.state as RouterRow['state']);
  if (p.keyword !== undefined) q = q.where(keywordMatch(['routers.name'], p.keyword));
  if (p.networkid !== undefined)
    q = q.where('routers.network_id', '=', await idOf(ex, 'networks', p.networkid));
  if (p.zoneid !== undefined) q = q.where('routers.zone_id', '=', await idOf(ex, 'zones', p.zoneid));
  return q;
}

/** The internal id of a uuid, or -1 (matches nothing). */
export async function idOf(
  ex: Executor,
  table: 'networks' | 'zones' | 'vpcs',
  uuid: string,
): Promise<number> {
  const r = await ex.selectFrom(table).select('id').where('uuid', '=', uuid).executeTakeFirst();
  return r ? Number(r.id) : -1;
}

/** One page of routerListQuery's rows as CloudStack's router answers, with health checks when asked. */
export async function routerListResult(
  ex: Executor,
  q: Awaited<ReturnType<typeof routerListQuery>>,
  p: {
    page?: number | undefined;
    pagesize?: number | undefined;
    fetchhealthcheckresults?: boolean | undefined;
  },
  responseName: string,
) {
  const page = await pageOf(ex, p);
  const { rows, total } = await pageOfQuery(q, page, (x) => x.orderBy('routers.id'));
  const items = await routerResponses(ex, rows);
  if (p.fetchhealthcheckresults) rows.forEach((r, i) => (items[i]!.healthcheckresults = healthChecks(r)));
  return listResult(responseName, items, total);
}

const listRouters = defineCommand({
  name: 'listRouters',
  roles: adminRoles,
  params: refParams('listRouters', [
    'id',
    'name',
    'state',
    'zoneid',
    'networkid',
    'keyword',
    'listall',
    'page',
    'pagesize',
    'fetchhealthcheckresults',
  ]),
  async handler(p, ctx) {
    const q = await routerListQuery(ctx.store.db, ctx.caller, p, { appliances: false });
    return routerListResult(ctx.store.db, q, p, 'router');
  },
});

const startRouter = defineCommand({
  name: 'startRouter',
  roles: adminRoles,
  params: refParams('startRouter', ['id']),
  jobInstance: (p) => ({ type: 'DomainRouter', id: p.id }),
  async handler(p, ctx) {
    const r = await routerForCaller(ctx, p.id);
    await withNet(ctx, async (n) => {
      await n.tx.updateTable('routers').set({ state: 'Starting' }).where('id', '=', r.id).execute();
      await bumpRouter(n.tx as never, Number(r.id));
    });
    const done = await waitFor(ctx, Number(r.id), converged);
    return objectResult('router', await routerResponse(ctx.store.db, done));
  },
});

const stopRouter = defineCommand({
  name: 'stopRouter',
  roles: adminRoles,
  params: refParams('stopRouter', ['id', 'forced']),
  jobInstance: (p) => ({ type: 'DomainRouter', id: p.id }),
  async handler(p, ctx) {
    const r = await routerForCaller(ctx, p.id);
    await withNet(ctx, async (n) => {
      await n.tx.updateTable('routers').set({ state: 'Stopping' }).where('id', '=', r.id).execute();
    });
    const done = await waitFor(ctx, Number(r.id), (x) => x.state === 'Stopped');
    return objectResult('router', await routerResponse(ctx.store.db, done));
  },
});

const rebootRouter = defineCommand({
  name: 'rebootRouter',
  roles: adminRoles,
  params: refParams('rebootRouter', ['id', 'forced']),
  jobInstance: (p) => ({ type: 'DomainRouter', id: p.id }),
  async handler(p, ctx) {
    const r = await routerForCaller(ctx, p.id);
    const { driver } = vmRuntimeFor(ctx.store);
    // The rebooted VR comes back empty; the reconciler rebuilds it entirely from the database.
    await driver.rebootRouter(await routerRuntime(ctx.store.db, r));
    await withNet(ctx, async (n) => {
      await n.tx
        .updateTable('routers')
        .set({ state: 'Starting', applied_generation: null, applied_hash: null })
        .where('id', '=', r.id)
        .execute();
      await bumpRouter(n.tx as never, Number(r.id));
    });
    const done = await waitFor(ctx, Number(r.id), converged);
    return objectResult('router', await routerResponse(ctx.store.db, done));
  },
});

const destroyRouter = defineCommand({
  name: 'destroyRouter',
  roles: adminRoles,
  params: refParams('destroyRouter', ['id']),
  jobInstance: (p) => ({ type: 'DomainRouter', id: p.id }),
  async handler(p, ctx) {
    // A re-run whose earlier run committed the destruction finds the router removed: only the wait is left.
    const r = await routerForCaller(ctx, p.id, 'id', jobAttempt(ctx) > 1);
    if (r.removed === null) await withNet(ctx, (n) => destroyRouterRow(n, r));
    await waitFor(ctx, Number(r.id), (x) => x.state === 'Expunged', 30_000);
    const gone = (await routerById(ctx.store.db, Number(r.id)))!;
    return objectResult('router', { ...(await routerResponse(ctx.store.db, gone)), state: 'Destroyed' });
  },
});

const getRouterHealthCheckResults = defineCommand({
  name: 'getRouterHealthCheckResults',
  roles: adminRoles,
  params: refParams('getRouterHealthCheckResults', ['routerid', 'performfreshchecks']),
  async handler(p, ctx) {
    let r = await routerForCaller(ctx, p.routerid, 'routerid');
    if (p.performfreshchecks) {
      await vmRuntimeFor(ctx.store).reconciler.reconcile(Number(r.id));
      r = (await routerById(ctx.store.db, Number(r.id)))!;
    }
    return objectResult('routerhealthchecks', { routerid: r.uuid, healthchecks: healthChecks(r) });
  },
});

export const commands: AnyCommand[] = [
  listRouters,
  startRouter,
  stopRouter,
  rebootRouter,
  destroyRouter,
  getRouterHealthCheckResults,
];
