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
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { addressFromKey, formatIp, netmaskToPrefix } from '../ipam/index.js';
import type { Executor } from '../store/db.js';
import { netDb } from '../networks/tables.js';
import { dialectOf } from '../store/migrations/helpers.js';
import { MARIADB_HEADS } from '../store/migrations/0032-router-public-heads-mariadb.js';
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
  const vpcId = network.vpc_id === null ? null : Number(network.vpc_id);
  if (vpcId !== null && (await vpcEdgeNetworkId(ex, vpcId)) !== Number(network.id)) return undefined;
  const q = db.selectFrom('ip_allocations');
  if (dialectOf(ex as unknown as Kysely<unknown>) === 'mysql') {
    // MariaDB has no partial indexes: 0032's virtual columns hold the network (VPC) of an Allocated IPv4 public
    // IP and NULL for any other row, and are indexed; MariaDB uses that index only when the query names them.
    const [column] = vpcId === null ? MARIADB_HEADS[0]! : MARIADB_HEADS[1]!;
    return q.where(sql.ref(`ip_allocations.${column}`), '=', vpcId ?? Number(network.id));
  }
  // Literals, not parameters: SQLite uses a partial index (0030's) only when it can prove the query implies the
  // index's predicate when the statement is prepared, which a bound parameter never does.
  const held = q
    .where('ip_allocations.owner_kind', '=', sql.lit('publicip'))
    .where('ip_allocations.family', '=', sql.lit(4))
    .where('ip_allocations.state', '=', sql.lit('Allocated'));
  return vpcId === null
    ? held.where('ip_allocations.network_id', '=', network.id)
    : held.where('ip_allocations.vpc_id', '=', vpcId);
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
 * `ips` holds only the first address of each range on that VLAN, and the source NAT, which is all an interface's
 * name, gateway, prefix and first address depend on. listRouters and the driver runtime use it; a network with
 * 10,000 public IPs answers from a handful of index entries and rows: the heads from 0030's partial index
 * (`(network_id | vpc_id, scope, range_id, address)` of the Allocated public IPs: the GROUP BY reads the
 * network's entries only, never their rows, where it used to read the rows of every allocation of the network,
 * its guest NICs included; on MariaDB 0032's index on a virtual column does the same), then each head's row and
 * the source NAT's by index.
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
  if (heads.length === 0) return [];
  const byId = new Map<number, RouterPublicIp>();
  const keep = (ips: RouterPublicIp[]) => ips.forEach((ip) => byId.set(ip.id, ip));
  keep(await publicIpRows(q.where('ip_allocations.source_nat', '=', sql.lit(1))));
  for (const h of heads)
    keep(
      await publicIpRows(
        q
          .where('ip_allocations.scope', '=', h.scope)
          .where('ip_allocations.range_id', h.range_id === null ? 'is' : '=', h.range_id)
          .where('ip_allocations.address', '=', String(h.first)),
      ),
    );
  return groupPublicNics([...byId.values()].sort(comparePublicIps));
}

/** CloudStack writes VLANs as `vlan://10`, `10` or `untagged`. */
export function normalizeVlan(v: string): string {
  const s = v
    .trim()
    .toLowerCase()
    .replace(/^vlan:\/\//, '');
  return s === '' || s === 'untagged' ? 'untagged' : s;
}
