import { insufficientAddressCapacity, invalidParameter } from '../errors/catalogue.js';
import type { IpAddress } from './address.js';
import type { Cidr } from './cidr.js';
import { formatCidr } from './cidr.js';

/**
 * Generated MAC layout (48 bits), unique per zone by construction:
 *
 *     octet 1      octet 2      octets 3..6
 *     zzzz 1110    zzzz zzzz    ssss ssss × 4
 *
 * - low nibble of octet 1 is 0xe: bit 0 = 0 (unicast), bit 1 = 1 (locally administered). It differs from
 *   CloudStack's 02:00:… and 06:…, QEMU's 52:54:00 and Docker's 02:42, so our MACs never collide with theirs
 *   on a shared segment.
 * - 12 zone bits: the high nibble of octet 1 and all of octet 2 (zone ids 0..4095).
 * - 32 sequence bits: a per-zone counter the store hands out (CloudStack uses a per-network counter, which
 *   can repeat across networks of a zone; ours cannot repeat within a zone).
 *
 * Zone 1, sequence 1 → 0e:01:00:00:00:01; zone 0x123, sequence 0xdeadbeef → 1e:23:de:ad:be:ef.
 */
export const MAC_ZONE_BITS = 12;
export const MAC_SEQUENCE_BITS = 32;
export const MAX_MAC_ZONE = (1 << MAC_ZONE_BITS) - 1;
export const MAX_MAC_SEQUENCE = 2 ** MAC_SEQUENCE_BITS - 1;

const MAC_COLON = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const MAC_DASH = /^[0-9a-fA-F]{2}(-[0-9a-fA-F]{2}){5}$/;

export interface ParseMacOptions {
  /** Reject multicast/broadcast MACs (a NIC address must be unicast). Default true. */
  unicast?: boolean;
}

/** Parses aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff (any case) to a 48-bit value. */
export function parseMac(text: string, param = 'macaddress', options: ParseMacOptions = {}): bigint {
  if (typeof text !== 'string' || !(MAC_COLON.test(text) || MAC_DASH.test(text))) {
    throw invalidParameter(param, text, 'not a MAC address; use six hex pairs such as 02:00:0a:01:02:03');
  }
  const value = BigInt(`0x${text.replace(/[:-]/g, '')}`);
  if (options.unicast !== false && (value >> 40n) & 1n) {
    throw invalidParameter(param, text, 'a multicast or broadcast MAC cannot be assigned to a NIC');
  }
  return value;
}

export function formatMac(value: bigint): string {
  if (value < 0n || value >= 1n << 48n) throw new RangeError(`${value} is not a 48-bit MAC value`);
  return (value.toString(16).padStart(12, '0').match(/../g) as string[]).join(':');
}

const toMacValue = (mac: bigint | string): bigint => (typeof mac === 'bigint' ? mac : parseMac(mac));

/** The MAC for the seq-th NIC of a zone (see the layout above). */
export function macFromSequence(zoneId: number, seq: number): string {
  if (!Number.isInteger(zoneId) || zoneId < 0 || zoneId > MAX_MAC_ZONE) {
    throw insufficientAddressCapacity(
      `zone id ${zoneId} is beyond the ${MAX_MAC_ZONE + 1} zones the generated MAC layout can address`,
    );
  }
  if (!Number.isInteger(seq) || seq < 0)
    throw new RangeError(`MAC sequence ${seq} is not a non-negative integer`);
  if (seq > MAX_MAC_SEQUENCE) {
    throw insufficientAddressCapacity(`Unable to allocate more mac addresses in zone ${zoneId}`);
  }
  const z = BigInt(zoneId);
  const value = ((((z >> 8n) << 4n) | 0xen) << 40n) | ((z & 0xffn) << 32n) | BigInt(seq);
  return formatMac(value);
}

/** The zone and sequence of a generated MAC, or undefined if the MAC is not of our layout. */
export function macZoneAndSequence(mac: bigint | string): { zoneId: number; seq: number } | undefined {
  const v = toMacValue(mac);
  const o1 = Number(v >> 40n);
  if ((o1 & 0x0f) !== 0x0e) return undefined;
  return { zoneId: ((o1 >> 4) << 8) | Number((v >> 32n) & 0xffn), seq: Number(v & 0xffffffffn) };
}

/** Modified EUI-64 interface identifier (RFC 4291 appendix A): flip the U/L bit, insert ff:fe in the middle. */
export function eui64InterfaceId(mac: bigint | string): bigint {
  const v = toMacValue(mac);
  const high = (v >> 24n) ^ 0x020000n;
  const low = v & 0xffffffn;
  return (high << 40n) | (0xfffen << 24n) | low;
}

/**
 * The SLAAC address a NIC takes in a /64 (CloudStack stores this as the NIC's ip6_address, reference §2.6,
 * NetUtils.EUI64Address), so no IPv6 pool is kept for isolated networks.
 */
export function slaacAddress(prefix64: Cidr, mac: bigint | string, param = 'ip6cidr'): IpAddress {
  if (prefix64.family !== 6 || prefix64.prefix !== 64) {
    throw invalidParameter(param, formatCidr(prefix64), 'SLAAC (EUI-64) addresses need an IPv6 /64 prefix');
  }
  return { family: 6, value: prefix64.network | eui64InterfaceId(mac) };
}

/** DHCPv6 DUID-LL for a NIC, as CloudStack's NetUtils.getDuidLL sends it in vm_dhcp_entry (ipv6_duid). */
export const duidLL = (mac: bigint | string): string => `00:03:00:01:${formatMac(toMacValue(mac))}`;
