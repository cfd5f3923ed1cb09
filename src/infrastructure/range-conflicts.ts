/**
 * What a new VLAN IP range (public or shared-network) must not collide with, as CloudStack's
 * createVlanAndPublicIpRange / checkZoneVlanIpOverlap decide it:
 *
 * - a VLAN tag a guest network already uses is refused;
 * - one VLAN carries either public ranges or one shared network's ranges, not both;
 * - several subnets on one VLAN are normal. Only when the new subnet overlaps a subnet already on that VLAN must
 *   it use the same gateway and netmask (it then extends that subnet), and a subnet overlapping one on another
 *   VLAN is refused where a public range is involved (two shared networks may reuse a private subnet);
 * - address ranges never overlap another range of the zone or a portable range.
 *
 * IPv6 (ip6cidr) follows the same rules with ip6gateway/ip6cidr.
 */
import { invalidParameter } from '../errors/catalogue.js';
import { addressFromKey } from '../ipam/address.js';
import type { Cidr } from '../ipam/cidr.js';
import { cidrFromGatewayAndNetmask, cidrsOverlap, formatCidr, parseCidr } from '../ipam/cidr.js';
import type { IpRange } from '../ipam/range.js';
import { formatRange, rangesOverlap } from '../ipam/range.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import { ip6RangeOf, rangeOf, vlanTagText } from './range-rows.js';

/** The parts of a new range the checks look at. */
export interface NewRange {
  tag: number | 'untagged';
  /** The shared network the range belongs to; null for a public range. */
  networkId: number | null;
  v4?: { cidr: Cidr; range: IpRange; gateway: string; netmask: string } | undefined;
  v6?: { cidr: Cidr; range: IpRange | undefined; gateway: string } | undefined;
}

/** Another address range in the zone (public, shared-network) or region (portable) that a new one overlaps. */
async function overlappingRange(db: Executor, zoneId: number, range: IpRange): Promise<string | undefined> {
  const rows = await db
    .selectFrom('public_ip_ranges')
    .select(['id', 'uuid', 'family', 'start_key', 'end_key', 'ip6_start_key', 'ip6_end_key', 'vlan_tag'])
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .execute();
  for (const r of rows) {
    const other = range.family === 6 ? ip6RangeOf(r) : rangeOf(r);
    if (other && rangesOverlap(other, range))
      return `range ${formatRange(other)} (${r.vlan_tag}, id ${r.uuid})`;
  }
  if (range.family !== 4) return undefined;
  const portable = await db
    .selectFrom('portable_ip_ranges')
    .select(['uuid', 'start_key', 'end_key'])
    .execute();
  for (const p of portable) {
    const other: IpRange = {
      family: 4,
      start: addressFromKey(4, p.start_key).value,
      end: addressFromKey(4, p.end_key).value,
    };
    if (rangesOverlap(other, range)) return `portable range ${formatRange(other)} (id ${p.uuid})`;
  }
  return undefined;
}

export async function checkNoOverlap(
  db: Executor,
  zoneId: number,
  range: IpRange,
  param = 'startip',
): Promise<void> {
  const hit = await overlappingRange(db, zoneId, range);
  if (hit) throw invalidParameter(param, formatRange(range), `the range overlaps the existing ${hit}`);
}

/** The VLAN tag is not a guest network's. */
async function checkTagNotGuest(db: Executor, zoneId: number, tag: number, forNetworkId: number | null) {
  const guest = await db
    .selectFrom('networks')
    .select(['name', 'uuid', 'id'])
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .where('vnet', '=', tag)
    .executeTakeFirst();
  if (guest && guest.id !== forNetworkId) {
    throw invalidParameter(
      'vlan',
      String(tag),
      `VLAN ${tag} is already used by network '${guest.name}' (id ${guest.uuid})`,
    );
  }
  const taken = await db
    .selectFrom('vnet_allocations')
    .leftJoin('networks', 'networks.id', 'vnet_allocations.network_id')
    .select(['networks.name', 'vnet_allocations.network_id'])
    .where('vnet_allocations.zone_id', '=', zoneId)
    .where('vnet_allocations.vnet', '=', tag)
    .executeTakeFirst();
  if (taken && taken.network_id !== forNetworkId) {
    throw invalidParameter(
      'vlan',
      String(tag),
      `VLAN ${tag} is already used by network '${taken.name ?? taken.network_id}'`,
    );
  }
}

export async function checkRangeConflicts(db: Executor, zoneId: number, n: NewRange): Promise<void> {
  if (n.tag !== 'untagged') await checkTagNotGuest(db, zoneId, n.tag, n.networkId);
  const tagText = vlanTagText(n.tag);
  const others = await db
    .selectFrom('public_ip_ranges')
    .select(['uuid', 'vlan_tag', 'gateway', 'netmask', 'ip6_gateway', 'ip6_cidr', 'network_id'])
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .execute();
  for (const o of others) {
    const sameTag = o.vlan_tag === tagText;
    if (sameTag && n.tag !== 'untagged' && o.network_id !== n.networkId) {
      throw invalidParameter(
        'vlan',
        String(n.tag),
        `VLAN ${n.tag} is already used by ${o.network_id !== null ? 'a shared network' : 'public ranges'} in this zone`,
      );
    }
    // A public range is involved: an overlapping subnet elsewhere would route one subnet two ways.
    const publicInvolved = n.networkId === null || o.network_id === null;
    if (n.v4 && o.gateway && o.netmask) {
      const other = cidrFromGatewayAndNetmask(o.gateway, o.netmask);
      if (cidrsOverlap(other, n.v4.cidr)) {
        if (sameTag) {
          if (o.gateway !== n.v4.gateway || o.netmask !== n.v4.netmask) {
            throw invalidParameter(
              'gateway',
              n.v4.gateway,
              `the subnet overlaps ${formatCidr(other)} already added on ${o.vlan_tag} with gateway ${o.gateway} and netmask ${o.netmask}; give that gateway and netmask to extend it`,
            );
          }
        } else if (publicInvolved) {
          throw invalidParameter(
            'gateway',
            n.v4.gateway,
            `the subnet ${formatCidr(n.v4.cidr)} overlaps ${formatCidr(other)} of the range on ${o.vlan_tag} (id ${o.uuid}); give a different gateway/netmask`,
          );
        }
      }
    }
    if (n.v6 && o.ip6_cidr && o.ip6_gateway) {
      const other = parseCidr(o.ip6_cidr, 'ip6cidr', { family: 6 });
      if (cidrsOverlap(other, n.v6.cidr)) {
        if (sameTag) {
          if (o.ip6_gateway !== n.v6.gateway || o.ip6_cidr !== formatCidr(n.v6.cidr)) {
            throw invalidParameter(
              'ip6cidr',
              formatCidr(n.v6.cidr),
              `the IPv6 subnet overlaps ${o.ip6_cidr} already added on ${o.vlan_tag} with gateway ${o.ip6_gateway}; give that ip6gateway and ip6cidr to extend it`,
            );
          }
        } else if (publicInvolved) {
          throw invalidParameter(
            'ip6cidr',
            formatCidr(n.v6.cidr),
            `the IPv6 subnet overlaps ${o.ip6_cidr} of the range on ${o.vlan_tag} (id ${o.uuid}); give a different ip6cidr`,
          );
        }
      }
    }
  }
  if (n.v4) await checkNoOverlap(db, zoneId, n.v4.range);
  if (n.v6?.range) await checkNoOverlap(db, zoneId, n.v6.range, 'startipv6');
}
