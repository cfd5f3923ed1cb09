/**
 * Implementing and shutting down a guest network (NetworkOrchestrator.implementNetwork / shutdownNetwork):
 * implement takes a VLAN/VNI from the physical network's ranges and, for an isolated network with SourceNat,
 * a source-NAT public IP, and for an IPv6 (DualStack) network a /64 of the zone's guest IPv6 prefixes; shutdown
 * gives the VLAN and the /64 back (the source-NAT IP stays, as in CloudStack).
 * Router creation (issue 6) plugs in through `networkHooks`.
 */
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import { isUniqueViolation } from '../store/db.js';
import type { NetCtx } from '../infrastructure/context.js';
import { ownerById } from '../infrastructure/owners.js';
import { vnetCandidates } from '../infrastructure/dedicated-guest-vlans.js';
import { physicalNetworkFor } from '../infrastructure/physical-networks.js';
import { zoneById } from '../infrastructure/zones.js';
import { assignPublicIp } from '../public-ips/assign.js';
import { assignGuestIpv6Subnet, releaseGuestIpv6Subnet, wantsGuestIpv6Subnet } from './ipv6-subnets.js';
import type { NetTx } from './tables.js';
import type { NetworkRow } from './repository.js';
import { hasService, lockNetwork, networkById, offeringById } from './repository.js';
import { offeringProviders, requireProviderEnabled } from '../infrastructure/provider-rows.js';

export interface NetworkHooks {
  /**
   * After the network has its VLAN and source-NAT IP, in the same transaction (create/start the VR here).
   * 'bumped': every router of the network had its desired generation bumped in this transaction (a caller that
   * changes what they serve in it need not bump them again).
   */
  afterImplement?(ctx: NetCtx, network: NetworkRow): Promise<void | 'bumped'>;
  /** Before the VLAN is given back (stop the VR here). */
  beforeShutdown?(ctx: NetCtx, network: NetworkRow): Promise<void>;
  /** restartNetwork: after implement; `cleanup` asks for routers to be recreated. */
  afterRestart?(ctx: NetCtx, network: NetworkRow, cleanup: boolean): Promise<void>;
  /** deleteNetwork: before the network's rows go (destroy the VR here). */
  beforeDestroy?(ctx: NetCtx, network: NetworkRow): Promise<void>;
}

/** The hook point for routers; the router concern (issue 6) registers its functions here at start-up. */
export const networkHooks: NetworkHooks = {};

async function insertVnet(
  tx: NetTx,
  row: {
    zone_id: number;
    physical_network_id: number;
    vnet: number;
    network_id: number;
    account_id: number | null;
    taken: number;
  },
): Promise<boolean> {
  // A lost race on UNIQUE(physical_network_id, vnet) must not abort the surrounding PostgreSQL transaction.
  const adapter = tx.getExecutor().adapter.constructor.name.toLowerCase();
  if (adapter.includes('mysql')) {
    try {
      await tx.insertInto('vnet_allocations').values(row).execute();
      return true;
    } catch (e) {
      // A network's second VLAN (vnet_allocations_network_uq) is not a lost race for this value.
      if (isUniqueViolation(e) && !String((e as Error).message).includes('network_uq')) return false;
      throw e;
    }
  }
  const r = await tx
    .insertInto('vnet_allocations')
    .values(row)
    .onConflict((oc) => oc.columns(['physical_network_id', 'vnet']).doNothing())
    .returning('id')
    .executeTakeFirst();
  return r !== undefined;
}

/**
 * Takes the lowest free VLAN/VNI of the physical network: walks each span with a bounded window of taken
 * values, so the cost depends on the taken VLANs in the way, never on the size of the range. A candidate lost
 * to a concurrent allocation (the unique constraint refused it) is remembered and counted as taken in every
 * later window, so each retry moves on even if the caller's transaction reads from an older snapshot (issue 12:
 * under MariaDB's REPEATABLE READ a retry saw the same gap fifty times and a burst of deploys failed 530).
 */
export async function allocateVnet(
  ctx: NetCtx,
  network: NetworkRow,
  physicalNetworkId: number,
  zoneName: string,
  zoneUuid: string,
): Promise<number> {
  // The account's dedicated VLANs first, then the undedicated ones (CloudStack's allocateVnet).
  const useSystem =
    network.account_id === null ||
    (await ctx.setting('use.system.guest.vlans', { accountId: network.account_id })) !== 'false';
  const spans = await vnetCandidates(ctx.tx, physicalNetworkId, network.account_id, useSystem);
  const lost = new Set<number>();
  // Every lost race moves the candidate up by at least one: this only bounds a pathological loop.
  for (let attempt = 0; attempt < 1000; attempt++) {
    let candidate: number | undefined;
    for (const span of spans) {
      let from = span.start;
      while (candidate === undefined && from <= span.end) {
        const rows = await ctx.tx
          .selectFrom('vnet_allocations')
          .select('vnet')
          .where('physical_network_id', '=', physicalNetworkId)
          .where('vnet', '>=', from)
          .where('vnet', '<=', span.end)
          .orderBy('vnet')
          .limit(WINDOW)
          .execute();
        const taken = [
          ...new Set([...rows.map((t) => t.vnet), ...[...lost].filter((v) => v >= from && v <= span.end)]),
        ].sort((a, b) => a - b);
        let expect = from;
        let gap = false;
        for (const t of taken) {
          if (t > expect) {
            gap = true;
            break;
          }
          expect = t + 1;
        }
        if (gap || rows.length < WINDOW) {
          if (expect <= span.end) candidate = expect;
          break;
        }
        from = expect;
      }
      if (candidate !== undefined) break;
    }
    if (candidate === undefined) {
      throw new CloudStackError(
        'InsufficientAddressCapacity',
        `Insufficient address capacity: zone ${zoneName} has no free VLAN in its physical network's ranges${spans.length ? '' : ' (none is undedicated or dedicated to this account)'}`,
        { uuidList: [zoneUuid] },
      );
    }
    if (
      await insertVnet(ctx.tx, {
        zone_id: network.zone_id,
        physical_network_id: physicalNetworkId,
        vnet: candidate,
        network_id: network.id,
        account_id: network.account_id,
        taken: ctx.now,
      })
    ) {
      return candidate;
    }
    lost.add(candidate);
  }
  throw new CloudStackError(
    'ConcurrentOperation',
    `Could not take a VLAN for network ${network.name}: too many concurrent allocations; retry`,
  );
}

const WINDOW = 64;

/**
 * implementNetwork(tx, networkId): idempotent; returns the implemented network. Holds the network row from the
 * start: concurrent first uses (a burst of deploys or associates on a new network) queue here, and each after
 * the first finds the VLAN and source NAT the first committed instead of taking its own.
 */
export async function implementNetwork(ctx: NetCtx, networkId: number): Promise<NetworkRow> {
  let network = await lockNetwork(ctx.tx, networkId);
  if (network.removed !== null) throw invalidParameter('id', network.uuid, 'the network is being deleted');
  if (network.type === 'L2' && network.vnet === null && network.specify_vlan !== 1) {
    // An L2 network still needs its own broadcast domain.
  }
  const zone = await zoneById(ctx.tx, network.zone_id);
  const set: Partial<NetworkRow> = {};
  if (network.vnet === null && network.type !== 'Shared') {
    const pn =
      network.physical_network_id !== null
        ? { id: network.physical_network_id }
        : await physicalNetworkFor(ctx.tx, network.zone_id, 'Guest');
    if (!pn) {
      throw invalidParameter(
        'zoneid',
        zone.uuid,
        `zone ${zone.name} has no physical network to take a VLAN from`,
      );
    }
    set.vnet = await allocateVnet(ctx, network, pn.id, zone.name, zone.uuid);
    set.physical_network_id = pn.id;
  }
  const offering = network.offering_id !== null ? await offeringById(ctx.tx, network.offering_id) : undefined;
  const pnId = set.physical_network_id ?? network.physical_network_id;
  if (network.state !== 'Implemented' && offering && pnId !== null)
    await requireProviderEnabled(ctx.tx, pnId, offeringProviders(offering.services));
  if (wantsGuestIpv6Subnet(network, offering) && network.ip6_cidr === null) {
    Object.assign(set, await assignGuestIpv6Subnet(ctx, network));
  }
  if (
    network.type === 'Isolated' &&
    network.vpc_id === null &&
    offering &&
    hasService(offering, 'SourceNat') &&
    network.account_id !== null
  ) {
    const snat = await ctx.tx
      .selectFrom('ip_allocations')
      .select('id')
      .where('network_id', '=', network.id)
      .where('source_nat', '=', 1)
      .where('owner_kind', '=', 'publicip')
      .executeTakeFirst();
    if (!snat) {
      await assignPublicIp(ctx, {
        zone,
        owner: await ownerById(ctx.tx, network.account_id),
        networkId: network.id,
        sourceNat: true,
        skipLimit: true,
      });
    }
  }
  if (network.state !== 'Implemented') set.state = 'Implemented';
  if (Object.keys(set).length) {
    await ctx.tx.updateTable('networks').set(set).where('id', '=', network.id).execute();
    network = await networkById(ctx.tx, network.id);
  }
  await networkHooks.afterImplement?.(ctx, network);
  return network;
}

/** shutdownNetwork(tx, networkId): gives the VLAN back unless the admin chose it; source NAT stays. */
export async function shutdownNetwork(ctx: NetCtx, networkId: number): Promise<NetworkRow> {
  const network = await networkById(ctx.tx, networkId);
  if (network.state !== 'Implemented') return network;
  await networkHooks.beforeShutdown?.(ctx, network);
  const set: Partial<NetworkRow> = { state: network.type === 'Shared' ? 'Setup' : 'Allocated' };
  if (network.vnet !== null && network.specify_vlan !== 1) {
    await ctx.tx.deleteFrom('vnet_allocations').where('network_id', '=', network.id).execute();
    set.vnet = null;
  }
  // The /64 an IPv6 network took from the zone's prefixes goes back with the VLAN.
  if (await releaseGuestIpv6Subnet(ctx.tx, network.id)) {
    set.ip6_cidr = null;
    set.ip6_gateway = null;
  }
  await ctx.tx.updateTable('networks').set(set).where('id', '=', network.id).execute();
  return networkById(ctx.tx, network.id);
}
