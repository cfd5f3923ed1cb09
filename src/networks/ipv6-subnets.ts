/**
 * A guest network's /64 from its zone's guest IPv6 prefixes (CloudStack's Ipv6Service pre-allocate / assign /
 * release): taken when an IPv6 (DualStack) isolated network or VPC tier is implemented, given back when it is shut
 * down or deleted. The lowest free /64 is found by walking the taken subnets of a prefix in bounded windows (cost
 * grows with the subnets in the way, never with the prefix size); UNIQUE(prefix_id, subnet_key) settles races and
 * UNIQUE(network_id) keeps one /64 per network.
 */
import { CloudStackError } from '../errors/catalogue.js';
import type { NetCtx } from '../infrastructure/context.js';
import { GUEST_IPV6_SUBNET_PREFIX, prefixCidr, subnetsIn } from '../infrastructure/guest-ipv6-prefixes.js';
import { addressFromKey, formatIp, valueKey } from '../ipam/address.js';
import { formatCidr, makeCidr, parseCidr } from '../ipam/cidr.js';
import { isUniqueViolation } from '../store/db.js';
import type { NetTx } from './tables.js';
import type { NetworkRow } from './repository.js';

const WINDOW = 64;
const STEP = 1n << BigInt(128 - GUEST_IPV6_SUBNET_PREFIX);

/** Does this network take a /64 from the zone's prefixes? Isolated networks and VPC tiers of a DualStack offering. */
export const wantsGuestIpv6Subnet = (
  network: Pick<NetworkRow, 'type'>,
  offering: { internet_protocol: string } | undefined,
): boolean => network.type === 'Isolated' && offering?.internet_protocol === 'DualStack';

async function insertSubnet(
  tx: NetTx,
  row: {
    prefix_id: number;
    subnet_key: string;
    subnet: string;
    network_id: number;
    zone_id: number;
    created: number;
  },
): Promise<boolean> {
  // As insertVnet: a lost race must not abort the surrounding PostgreSQL transaction.
  const adapter = tx.getExecutor().adapter.constructor.name.toLowerCase();
  if (adapter.includes('mysql')) {
    try {
      await tx.insertInto('guest_ipv6_subnets').values(row).execute();
      return true;
    } catch (e) {
      if (isUniqueViolation(e) && String((e as Error).message).includes('prefix_subnet_uq')) return false;
      throw e;
    }
  }
  const r = await tx
    .insertInto('guest_ipv6_subnets')
    .values(row)
    .onConflict((oc) => oc.columns(['prefix_id', 'subnet_key']).doNothing())
    .returning('id')
    .executeTakeFirst();
  return r !== undefined;
}

/** The lowest /64 of the prefix that is neither taken nor `lost`, if any. */
async function firstFree(
  tx: NetTx,
  prefixId: number,
  first: bigint,
  count: bigint,
  lost: ReadonlySet<bigint>,
): Promise<bigint | undefined> {
  const last = first + (count - 1n) * STEP;
  let from = first;
  for (;;) {
    const rows = await tx
      .selectFrom('guest_ipv6_subnets')
      .select('subnet_key')
      .where('prefix_id', '=', prefixId)
      .where('subnet_key', '>=', valueKey(from))
      .orderBy('subnet_key')
      .limit(WINDOW)
      .execute();
    const taken = [
      ...new Set([
        ...rows.map((r) => addressFromKey(6, r.subnet_key).value),
        ...[...lost].filter((v) => v >= from),
      ]),
    ].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let expect = from;
    for (const t of taken) {
      if (t > expect) return expect <= last ? expect : undefined;
      expect = t + STEP;
    }
    if (rows.length < WINDOW) return expect <= last ? expect : undefined;
    from = expect;
  }
}

/**
 * Gives the network a /64 of its zone's guest IPv6 prefixes (prefixes in the order they were added) and sets its
 * ip6cidr and ip6gateway (the subnet's first address after the network address, as CloudStack does). Idempotent.
 */
export async function assignGuestIpv6Subnet(
  ctx: NetCtx,
  network: NetworkRow,
): Promise<{ ip6_cidr: string; ip6_gateway: string }> {
  const tx = ctx.tx;
  const held = await tx
    .selectFrom('guest_ipv6_subnets')
    .select('subnet')
    .where('network_id', '=', network.id)
    .executeTakeFirst();
  if (held) return { ip6_cidr: held.subnet, ip6_gateway: gatewayOf(held.subnet) };
  const prefixes = await tx
    .selectFrom('guest_ipv6_prefixes')
    .select(['id', 'prefix'])
    .where('zone_id', '=', network.zone_id)
    .orderBy('id')
    .execute();
  for (const prefix of prefixes) {
    const cidr = prefixCidr(prefix);
    const lost = new Set<bigint>();
    // Each lost race moves the candidate on by one /64: this only bounds a pathological loop.
    for (let attempt = 0; attempt < 1000; attempt++) {
      const candidate = await firstFree(tx, prefix.id, cidr.network, subnetsIn(cidr), lost);
      if (candidate === undefined) break;
      const subnet = formatCidr(makeCidr(6, candidate, GUEST_IPV6_SUBNET_PREFIX));
      const won = await insertSubnet(tx, {
        prefix_id: prefix.id,
        subnet_key: valueKey(candidate),
        subnet,
        network_id: network.id,
        zone_id: network.zone_id,
        created: ctx.now,
      });
      if (won) return { ip6_cidr: subnet, ip6_gateway: gatewayOf(subnet) };
      lost.add(candidate);
    }
  }
  // CloudStack's preAllocateIpv6SubnetForNetwork: a ResourceAllocationException, with or without prefixes.
  throw new CloudStackError(
    'ResourceAllocation',
    `Unable to allocate IPv6 network: ${prefixes.length ? "every /64 of the zone's guest IPv6 prefixes is in use" : 'the zone has no guest IPv6 prefix'} (add one with createGuestNetworkIpv6Prefix)`,
  );
}

const gatewayOf = (subnet: string): string =>
  formatIp({ family: 6, value: parseCidr(subnet, 'ip6cidr', { family: 6 }).network + 1n });

/** Gives the network's /64 back (shutdown, delete). */
export async function releaseGuestIpv6Subnet(tx: NetTx, networkId: number): Promise<boolean> {
  const r = await tx.deleteFrom('guest_ipv6_subnets').where('network_id', '=', networkId).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}
