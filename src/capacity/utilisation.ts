/**
 * Pool utilisation per public range and per guest network, for the metrics scrape (src/metrics). Bounded work
 * whatever the pool sizes: the range and network rows (a handful per zone) and one grouped COUNT over
 * ip_allocations, which holds a row only for an address that is not Free. Totals are arithmetic on bounds.
 */
import type { Executor } from '../store/db.js';
import { rangeOf } from '../infrastructure/range-rows.js';
import { rangeSize } from '../ipam/range.js';
import { parseCidr } from '../ipam/cidr.js';

export interface PoolFigure {
  kind: 'public' | 'guest';
  /** The range's or the network's uuid. */
  id: string;
  zone: string;
  /** The network's name, or the range's VLAN tag. */
  name: string;
  total: bigint;
  used: number;
}

/**
 * Addresses a guest network can give out: its CIDR less the network and broadcast addresses and the gateway
 * (IPv4; a /31 or /32 keeps them all).
 */
export function guestPoolSize(cidr: string): bigint {
  const c = parseCidr(cidr);
  const size = 1n << BigInt((c.family === 4 ? 32 : 128) - c.prefix);
  return c.family === 4 && c.prefix <= 30 ? size - 3n : size;
}

export async function poolUtilisation(db: Executor): Promise<PoolFigure[]> {
  const [zones, ranges, networks, counts] = await Promise.all([
    db.selectFrom('zones').select(['id', 'name']).where('removed', 'is', null).execute(),
    db
      .selectFrom('public_ip_ranges')
      .select(['id', 'uuid', 'zone_id', 'vlan_tag', 'family', 'start_key', 'end_key'])
      .where('removed', 'is', null)
      .execute(),
    db
      .selectFrom('networks')
      .select(['id', 'uuid', 'zone_id', 'name', 'cidr'])
      .where('removed', 'is', null)
      .where('cidr', 'is not', null)
      .execute(),
    // One pass over the index: public rows counted by range, guest rows by network.
    db
      .selectFrom('ip_allocations')
      .select(['scope', 'range_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where((eb) => eb.or([eb('scope', 'like', 'pub:%'), eb('scope', 'like', 'net:%')]))
      .groupBy(['scope', 'range_id'])
      .execute(),
  ]);
  const zoneName = new Map(zones.map((z) => [Number(z.id), z.name]));
  const byRange = new Map<number, number>();
  const byNetwork = new Map<number, number>();
  for (const c of counts) {
    if (c.scope.startsWith('pub:') && c.range_id !== null)
      byRange.set(Number(c.range_id), (byRange.get(Number(c.range_id)) ?? 0) + Number(c.n));
    else if (c.scope.startsWith('net:')) {
      const id = Number(c.scope.slice(4));
      byNetwork.set(id, (byNetwork.get(id) ?? 0) + Number(c.n));
    }
  }
  const out: PoolFigure[] = [];
  for (const r of ranges) {
    const rr = rangeOf(r);
    if (!rr) continue;
    out.push({
      kind: 'public',
      id: r.uuid,
      zone: zoneName.get(Number(r.zone_id)) ?? String(r.zone_id),
      name: r.vlan_tag,
      total: rangeSize(rr),
      used: byRange.get(Number(r.id)) ?? 0,
    });
  }
  for (const n of networks) {
    out.push({
      kind: 'guest',
      id: n.uuid,
      zone: zoneName.get(Number(n.zone_id)) ?? String(n.zone_id),
      name: n.name,
      total: guestPoolSize(n.cidr!),
      used: byNetwork.get(Number(n.id)) ?? 0,
    });
  }
  return out;
}
