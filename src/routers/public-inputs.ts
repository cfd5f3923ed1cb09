/**
 * Which public IPs a network's router holds, and on which public VLAN: the one query the desired-state builder
 * (the router's `public` section), the driver runtime (which public interfaces to plug) and the rules module
 * (which rules a router enforces) share, so the three never disagree.
 *
 * - An isolated network's router holds every public IP associated with the network (source NAT first).
 * - In a VPC the public IPs belong to the VPC; the router of the VPC's *edge* tier holds them all: the live tier
 *   with the lowest id. The other tiers' routers reach outside through it (see the VPC transit).
 * - Only Allocated addresses: an address an association job still holds (Allocating) is not the network's yet,
 *   and its routers' generations move when it becomes Allocated (finishAssign) or is given back, not before.
 */
import { addressFromKey, formatIp, netmaskToPrefix } from '../ipam/index.js';
import type { Executor } from '../store/db.js';
import { netDb } from '../networks/tables.js';
import { comparePublicIps, groupPublicNics } from './public-nics.js';
import type { PublicNicGroup, RouterPublicIp } from './public-nics.js';

export type { RouterPublicIp };

/** The tier of `vpcId` whose router holds the VPC's public IPs, or null while no tier has a live router. */
export async function vpcEdgeNetworkId(ex: Executor, vpcId: number): Promise<number | null> {
  const row = await netDb(ex)
    .selectFrom('networks')
    .innerJoin('routers', 'routers.network_id', 'networks.id')
    .select('networks.id')
    .where('networks.vpc_id', '=', vpcId)
    .where('networks.removed', 'is', null)
    .where('routers.removed', 'is', null)
    // An internal LB appliance in a tier is not the tier's router.
    .where('routers.role', '!=', 'internallb')
    .orderBy('networks.id')
    .limit(1)
    .executeTakeFirst();
  return row ? Number(row.id) : null;
}

/** The Allocated public IPs the router(s) of `networkId` hold, as a query (undefined: none, not the VPC's edge). */
async function heldPublicIps(ex: Executor, networkId: number) {
  const db = netDb(ex);
  const network = await db
    .selectFrom('networks')
    .select(['id', 'vpc_id'])
    .where('id', '=', networkId)
    .executeTakeFirst();
  if (!network) return undefined;
  const q = db
    .selectFrom('ip_allocations')
    .where('ip_allocations.owner_kind', '=', 'publicip')
    .where('ip_allocations.family', '=', 4)
    .where('ip_allocations.state', '=', 'Allocated');
  if (network.vpc_id === null) return q.where('ip_allocations.network_id', '=', network.id);
  if ((await vpcEdgeNetworkId(ex, Number(network.vpc_id))) !== Number(network.id)) return undefined;
  return q.where('ip_allocations.vpc_id', '=', network.vpc_id);
}

type HeldQuery = NonNullable<Awaited<ReturnType<typeof heldPublicIps>>>;

async function publicIpRows(q: HeldQuery): Promise<RouterPublicIp[]> {
  const rows = await q
    .leftJoin('public_ip_ranges', 'public_ip_ranges.id', 'ip_allocations.range_id')
    .leftJoin('portable_ip_ranges', 'portable_ip_ranges.id', 'ip_allocations.range_id')
    .select([
      'ip_allocations.id',
      'ip_allocations.uuid',
      'ip_allocations.scope',
      'ip_allocations.family',
      'ip_allocations.address',
      'ip_allocations.source_nat',
      'ip_allocations.static_nat',
      'ip_allocations.vm_ip',
      'ip_allocations.vm_id',
      'public_ip_ranges.vlan_tag as pub_vlan',
      'public_ip_ranges.gateway as pub_gateway',
      'public_ip_ranges.netmask as pub_netmask',
      'portable_ip_ranges.vlan_tag as port_vlan',
      'portable_ip_ranges.gateway as port_gateway',
      'portable_ip_ranges.netmask as port_netmask',
    ])
    .execute();
  const out: RouterPublicIp[] = [];
  for (const r of rows) {
    const portable = r.scope.startsWith('portable:');
    const vlan = (portable ? r.port_vlan : r.pub_vlan) ?? 'untagged';
    const gateway = portable ? r.port_gateway : r.pub_gateway;
    const netmask = portable ? r.port_netmask : r.pub_netmask;
    if (!gateway || !netmask) continue;
    out.push({
      id: Number(r.id),
      uuid: r.uuid,
      address: formatIp(addressFromKey(4, r.address)),
      sourceNat: Number(r.source_nat) === 1,
      staticNatGuestIp: Number(r.static_nat) === 1 ? r.vm_ip : null,
      staticNatVmId: Number(r.static_nat) === 1 && r.vm_id !== null ? Number(r.vm_id) : null,
      vlan: normalizeVlan(vlan),
      gateway,
      prefix: netmaskToPrefix(netmask),
    });
  }
  return out.sort(comparePublicIps);
}

/** The public IPs the router(s) of `networkId` hold, source NAT first, then by address. */
export async function routerPublicIps(ex: Executor, networkId: number): Promise<RouterPublicIp[]> {
  const q = await heldPublicIps(ex, networkId);
  return q ? publicIpRows(q) : [];
}

/**
 * The router's public interfaces as groupPublicNics names them, without loading every address: each group's
 * `ips` holds only the first address of each range on that VLAN (the source NAT, else the range's lowest), which
 * is all an interface's name, gateway, prefix and first address depend on. listRouters and the driver runtime use
 * it; a network with 10,000 public IPs answers from a handful of rows.
 */
export async function routerPublicNics(ex: Executor, networkId: number): Promise<PublicNicGroup[]> {
  const q = await heldPublicIps(ex, networkId);
  if (!q) return [];
  const heads = await q
    .select((eb) => [
      'ip_allocations.scope',
      'ip_allocations.range_id',
      eb.fn.min('ip_allocations.address').as('first'),
    ])
    .groupBy(['ip_allocations.scope', 'ip_allocations.range_id'])
    .execute();
  const pairs = heads.map((h) => ({ scope: h.scope, address: String(h.first) }));
  if (pairs.length === 0) return [];
  const firsts = await publicIpRows(
    q.where((eb) =>
      eb.or([
        eb('ip_allocations.source_nat', '=', 1),
        ...pairs.map((p) =>
          eb.and([eb('ip_allocations.scope', '=', p.scope), eb('ip_allocations.address', '=', p.address)]),
        ),
      ]),
    ),
  );
  return groupPublicNics(firsts);
}

/** CloudStack writes VLANs as `vlan://10`, `10` or `untagged`. */
export function normalizeVlan(v: string): string {
  const s = v
    .trim()
    .toLowerCase()
    .replace(/^vlan:\/\//, '');
  return s === '' || s === 'untagged' ? 'untagged' : s;
}
