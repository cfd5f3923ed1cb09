/**
 * Routers as first-class objects: created when their network is implemented (control secret issued then, named
 * `r-<id>-VM` as CloudStack does), stopped when the network is shut down, destroyed with it. Everything here
 * runs inside the caller's transaction and only changes rows (and bumps generations); the reconciler makes the
 * driver and the agent follow.
 */
import { randomUUID } from 'node:crypto';
import { allocateAddressTx, nextMacAddress } from '../addresses/address-service.js';
import { addressFromKey, firstHost, formatIp, lastHost, parseCidr, RangeSet } from '../ipam/index.js';
import type { IpAddress } from '../ipam/index.js';
import type { Executor } from '../store/db.js';
import type { NetCtx } from '../infrastructure/context.js';
import { ownerById } from '../infrastructure/owners.js';
import type { NetworkRow } from '../networks/repository.js';
import { hasService, offeringById } from '../networks/repository.js';
import { networkHooks } from '../networks/lifecycle.js';
import { allocateGuestAddress } from '../networks/service.js';
import { APPLIANCE_ROLE, bumpNetworkRouters, bumpVpcRouters, liveRoutersOfNetwork } from './repository.js';
import type { RouterRow } from './repository.js';
import { issueSecret, sealSecret } from './secrets.js';

export const ROUTER_VERSION = '4.18.0';
/** stacknet's release (package.json `version`): the software a router runs, shown as `softwareversion`. */
export const STACKNET_VERSION = '0.1.0';
export const CONTROL_SCOPE = 'ctl';
export const CONTROL_PORT = 3922;

const plain = (ctx: NetCtx): Executor => ctx.tx as unknown as Executor;

type OfferingRow = Awaited<ReturnType<typeof offeringById>>;

/** The network's offering, or none (null offering_id): read once for both questions below. */
async function offeringOf(ex: Executor, network: NetworkRow): Promise<OfferingRow | undefined> {
  return network.offering_id === null ? undefined : offeringById(ex as never, Number(network.offering_id));
}

const routerServed = (network: NetworkRow, o: OfferingRow | undefined): boolean =>
  o !== undefined &&
  !!network.cidr &&
  network.type !== 'L2' &&
  (hasService(o, 'Dhcp') || hasService(o, 'Dns') || hasService(o, 'UserData'));

const redundantOffering = (o: OfferingRow | undefined): boolean =>
  o !== undefined && (/RedundantRouter/i.test(o.services) || /redundant/i.test(o.name));

/** Does this network get a virtual router (DHCP/DNS/UserData from VirtualRouter)? */
export async function needsRouter(ex: Executor, network: NetworkRow): Promise<boolean> {
  if (network.offering_id === null || !network.cidr || network.type === 'L2') return false;
  return routerServed(network, await offeringOf(ex, network));
}

export async function isRedundantNetwork(ex: Executor, network: NetworkRow): Promise<boolean> {
  return redundantOffering(await offeringOf(ex, network));
}

async function controlPool(ctx: NetCtx): Promise<{ pool: RangeSet; gateway: IpAddress }> {
  const cidr = parseCidr((await ctx.setting('control.cidr')) ?? '169.254.0.0/16', 'control.cidr', {
    strict: false,
  });
  // The first host is the management server's own end of the control network (CloudStack's control.gateway).
  const gw = firstHost(cidr);
  return {
    pool: RangeSet.of({ family: 4, start: gw.value + 1n, end: lastHost(cidr).value }),
    gateway: gw,
  };
}

/**
 * Creates one router of `network` (role standalone / primary / backup), or an internal LB appliance (role
 * internallb: `b-<id>-VM` as CloudStack names them, its guest address `requested` or any free one of the tier,
 * allocated like a NIC's and released with the row). Returns its row.
 */
export async function createRouter(
  ctx: NetCtx,
  network: NetworkRow,
  role: RouterRow['role'],
  opts: { requested?: IpAddress; requestedParam?: string } = {},
): Promise<RouterRow> {
  const appliance = role === APPLIANCE_ROLE;
  const tx = plain(ctx);
  const secret = issueSecret();
  const uuid = randomUUID();
  await tx
    .insertInto('routers')
    .values({
      uuid,
      name: `r-${uuid}`,
      network_id: network.id,
      zone_id: network.zone_id,
      account_id: network.account_id,
      domain_id: network.domain_id,
      state: 'Starting',
      role,
      guest_ip: null,
      guest_mac: await nextMacAddress(tx, Number(network.zone_id)),
      control_ip: null,
      control_port: CONTROL_PORT,
      secret_sealed: await sealSecret(tx, secret),
      public_ip: null,
      desired_generation: 1,
      applied_generation: null,
      applied_hash: null,
      health: null,
      health_checked: null,
      last_error: null,
      lease_owner: null,
      lease_until: null,
      version: ROUTER_VERSION,
      created: ctx.now,
      removed: null,
    })
    .execute();
  // Portable insert id (MariaDB has no RETURNING): the uuid is unique.
  const { id } = await tx
    .selectFrom('routers')
    .select('id')
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
  const { pool, gateway } = await controlPool(ctx);
  const control = await allocateAddressTx(tx, {
    scope: CONTROL_SCOPE,
    pool,
    strategy: 'random',
    gateway,
    owner: { kind: 'router', id: Number(id) },
    zoneId: network.zone_id,
    isSystem: true,
    exhaustedMessage: 'the control network has no free address for a new router (control.cidr)',
  });
  let guestIp = network.gateway;
  if (role !== 'standalone') {
    // A member of a redundant pair has its own guest address; the gateway is the VRRP VIP (reference §2.1).
    const a = await allocateGuestAddress(ctx, network, {
      owner: { kind: 'router', id: Number(id) },
      isSystem: true,
      strategy: 'random',
      ...(opts.requested
        ? { requested: opts.requested, requestedParam: opts.requestedParam ?? 'ipaddress' }
        : {}),
    });
    guestIp = a.ip;
  }
  const snat = appliance
    ? undefined
    : await tx
        .selectFrom('ip_allocations')
        .select(['family', 'address'])
        .where('network_id', '=', network.id)
        .where('source_nat', '=', 1)
        .where('owner_kind', '=', 'publicip')
        .executeTakeFirst();
  await tx
    .updateTable('routers')
    .set({
      name: `${appliance ? 'b' : 'r'}-${id}-VM`,
      control_ip: control.ip,
      guest_ip: guestIp,
      public_ip: snat ? formatIp(addressFromKey(Number(snat.family) === 6 ? 6 : 4, snat.address)) : null,
    })
    .where('id', '=', id)
    .execute();
  if (network.account_id !== null) {
    await ctx.recorder.event(ctx.tx, {
      type: 'ROUTER.CREATE',
      description: `${appliance ? 'Internal LB VM' : 'Virtual router'} ${appliance ? 'b' : 'r'}-${id}-VM created for network ${network.name}`,
      resourceType: appliance ? 'InternalLbVm' : 'DomainRouter',
      resourceId: uuid,
      resourceName: `${appliance ? 'b' : 'r'}-${id}-VM`,
      owner: await ownerById(ctx.tx, Number(network.account_id)),
    });
  }
  return (await tx
    .selectFrom('routers')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow()) as RouterRow;
}

/** afterImplement: the network has its VLAN; make sure its router(s) exist and are meant to run. */
export async function ensureRoutersForNetwork(ctx: NetCtx, network: NetworkRow): Promise<RouterRow[]> {
  const tx = plain(ctx);
  if (network.offering_id === null || !network.cidr || network.type === 'L2') return [];
  // One read of the offering for both questions: every deploy into an implemented network passes here.
  const offering = await offeringOf(tx, network);
  if (!routerServed(network, offering)) return [];
  const live = await liveRoutersOfNetwork(tx, network.id);
  const redundant = redundantOffering(offering);
  for (const r of live) {
    if (r.state === 'Stopped' || r.state === 'Stopping' || r.state === 'Error') {
      await tx.updateTable('routers').set({ state: 'Starting' }).where('id', '=', r.id).execute();
    }
  }
  const roles: RouterRow['role'][] = redundant ? ['primary', 'backup'] : ['standalone'];
  for (const role of roles.slice(live.length)) live.push(await createRouter(ctx, network, role));
  // A VPC tier's new router may make it the edge (routers/public-inputs.ts): every tier's router re-reads.
  if (network.vpc_id !== null) await bumpVpcRouters(tx, network.vpc_id);
  else await bumpNetworkRouters(tx, network.id);
  return live;
}

/** beforeShutdown (network GC, restart with cleanup): routers stop; their rows and addresses stay. */
export async function stopRoutersOfNetwork(ctx: NetCtx, network: NetworkRow): Promise<void> {
  const tx = plain(ctx);
  await tx
    .updateTable('routers')
    .set({ state: 'Stopping' })
    .where('network_id', '=', network.id)
    .where('removed', 'is', null)
    .where('state', 'in', ['Starting', 'Running', 'Error'])
    .execute();
}

/** destroyRouter and network deletion: the row is marked removed, its addresses go back at once. */
export async function destroyRouterRow(ctx: NetCtx, router: RouterRow): Promise<void> {
  const tx = plain(ctx);
  await tx
    .updateTable('routers')
    .set({ state: 'Destroyed', removed: ctx.now })
    .where('id', '=', router.id)
    .execute();
  await tx
    .deleteFrom('ip_allocations')
    .where('owner_kind', '=', 'router')
    .where('owner_id', '=', router.id)
    .execute();
  // The VPC's edge may move to another tier with this router gone (an appliance is never the edge).
  const net = await tx
    .selectFrom('networks')
    .select('vpc_id')
    .where('id', '=', router.network_id)
    .executeTakeFirst();
  if (net?.vpc_id != null && router.role !== APPLIANCE_ROLE) await bumpVpcRouters(tx, Number(net.vpc_id));
  if (router.account_id !== null) {
    await ctx.recorder.event(ctx.tx, {
      type: 'ROUTER.DESTROY',
      description: `${router.role === APPLIANCE_ROLE ? 'Internal LB VM' : 'Virtual router'} ${router.name} destroyed`,
      resourceType: router.role === APPLIANCE_ROLE ? 'InternalLbVm' : 'DomainRouter',
      resourceId: router.uuid,
      resourceName: router.name,
      owner: await ownerById(ctx.tx, Number(router.account_id)),
    });
  }
}

/** With `appliances` (the network is deleted) its internal LB appliances go too; a restart keeps them. */
export async function destroyRoutersOfNetwork(
  ctx: NetCtx,
  network: NetworkRow,
  opts: { appliances?: boolean } = {},
): Promise<void> {
  for (const r of await liveRoutersOfNetwork(plain(ctx), network.id, opts)) await destroyRouterRow(ctx, r);
}

let installed = false;

/** Plugs routers into the network lifecycle (called once by the composition root). */
export function installRouterHooks(): void {
  if (installed) return;
  installed = true;
  networkHooks.afterImplement = async (ctx, network) =>
    // Routers there (made or found) means they were bumped, a VPC's every tier's with them.
    (await ensureRoutersForNetwork(ctx, network)).length > 0 ? 'bumped' : undefined;
  networkHooks.beforeShutdown = async (ctx, network) => {
    await stopRoutersOfNetwork(ctx, network);
  };
  networkHooks.afterRestart = async (ctx, network, cleanup) => {
    if (cleanup) {
      // restartNetwork cleanup=true: CloudStack destroys the VRs and deploys new ones, programmed from the DB.
      await destroyRoutersOfNetwork(ctx, network);
    }
    await ensureRoutersForNetwork(ctx, network);
  };
  networkHooks.beforeDestroy = async (ctx, network) => {
    await destroyRoutersOfNetwork(ctx, network, { appliances: true });
  };
}
