import { invalidParameter } from '../errors/catalogue.js';
import type { Family, IpAddress } from './address.js';
import { familyBits, formatIp, maxValue, parseIp, parseIpOf } from './address.js';

/** A network: `network` has no host bits set. */
export interface Cidr {
  family: Family;
  network: bigint;
  prefix: number;
}

const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

/** All-ones in the top `prefix` bits. */
export const prefixMask = (family: Family, prefix: number): bigint => {
  const bits = familyBits(family);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) {
    throw new RangeError(`prefix ${prefix} is outside 0..${bits} for IPv${family}`);
  }
  return maxValue(family) ^ ((1n << BigInt(bits - prefix)) - 1n);
};

/** Host-bit mask (the complement of prefixMask). */
export const hostMask = (family: Family, prefix: number): bigint =>
  maxValue(family) ^ prefixMask(family, prefix);

export const makeCidr = (family: Family, value: bigint, prefix: number): Cidr => ({
  family,
  network: value & prefixMask(family, prefix),
  prefix,
});

export interface ParseCidrOptions {
  /**
   * true (the default): host bits set (10.1.1.5/24) is an error that says which network was probably meant.
   * false: normalise to the network, as CloudStack does for some inputs (e.g. NetUtils.getCidrSubNet users).
   */
  strict?: boolean;
  /** Require this family. */
  family?: Family;
}

export function parseCidr(text: string, param = 'cidr', options: ParseCidrOptions = {}): Cidr {
  if (typeof text !== 'string' || text.length === 0)
    throw invalidParameter(param, text, 'a CIDR is required');
  const slash = text.indexOf('/');
  if (slash < 0) {
    throw invalidParameter(param, text, 'a CIDR needs a prefix length, e.g. 10.1.1.0/24 or 2001:db8::/64');
  }
  const addrText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  let addr: IpAddress;
  try {
    addr = parseIp(addrText, param);
  } catch {
    // Re-raise naming the whole CIDR the caller sent, not just its address half.
    const why = isProbablyV6(addrText)
      ? 'the address part is not a valid IPv6 address'
      : 'the address part is not a valid IPv4 address';
    throw invalidParameter(param, text, why);
  }
  const bits = familyBits(addr.family);
  if (!PREFIX.test(prefixText) || Number(prefixText) > bits) {
    throw invalidParameter(param, text, `the prefix length must be a whole number from 0 to ${bits}`);
  }
  if (options.family !== undefined && addr.family !== options.family) {
    throw invalidParameter(param, text, `an IPv${options.family} CIDR is required here`);
  }
  const prefix = Number(prefixText);
  const cidr = makeCidr(addr.family, addr.value, prefix);
  if (cidr.network !== addr.value && options.strict !== false) {
    throw invalidParameter(param, text, `host bits are set; the network is ${formatCidr(cidr)}`);
  }
  return cidr;
}

const isProbablyV6 = (s: string): boolean => s.includes(':');

export const formatCidr = (c: Cidr): string =>
  `${formatIp({ family: c.family, value: c.network })}/${c.prefix}`;

/** Dotted IPv4 netmask → prefix length; non-contiguous masks (255.0.255.0) are rejected. */
export function netmaskToPrefix(mask: string, param = 'netmask'): number {
  let m: IpAddress;
  try {
    m = parseIpOf(4, mask, param);
  } catch {
    throw invalidParameter(param, mask, 'not a dotted IPv4 netmask such as 255.255.255.0');
  }
  const inverted = maxValue(4) ^ m.value;
  // contiguous ⇔ the inverted mask is 2^k - 1
  if ((inverted & (inverted + 1n)) !== 0n) {
    throw invalidParameter(
      param,
      mask,
      'the netmask is not contiguous (ones must be followed only by zeros)',
    );
  }
  return 32 - inverted.toString(2).replace(/^0+$/, '').length;
}

export function prefixToNetmask(prefix: number): string {
  return formatIp({ family: 4, value: prefixMask(4, prefix) });
}

export const cidrSize = (c: Cidr): bigint => 1n << BigInt(familyBits(c.family) - c.prefix);

export const networkAddress = (c: Cidr): IpAddress => ({ family: c.family, value: c.network });

/** IPv4: the broadcast address. IPv6 has none: the last address of the prefix. */
export const broadcastAddress = (c: Cidr): IpAddress => ({
  family: c.family,
  value: c.network | hostMask(c.family, c.prefix),
});

/**
 * The first address a host may use. IPv4 /31 (RFC 3021) and /32 have no network/broadcast address to skip.
 * IPv6 skips the subnet-router anycast address (the network address) except on /127 (RFC 6164) and /128.
 */
export const firstHost = (c: Cidr): IpAddress => ({
  family: c.family,
  value: c.network + (hasReservedEnds(c) ? 1n : 0n),
});

/** The last usable address: IPv4 broadcast − 1 (except /31 /32); IPv6 the last address of the prefix. */
export const lastHost = (c: Cidr): IpAddress => {
  const last = broadcastAddress(c).value;
  return { family: c.family, value: c.family === 4 && hasReservedEnds(c) ? last - 1n : last };
};

const hasReservedEnds = (c: Cidr): boolean => familyBits(c.family) - c.prefix >= 2;

/** Number of host addresses between firstHost and lastHost inclusive. */
export const hostCount = (c: Cidr): bigint => lastHost(c).value - firstHost(c).value + 1n;

export function cidrContains(c: Cidr, addr: IpAddress | bigint): boolean {
  if (typeof addr !== 'bigint' && addr.family !== c.family) return false;
  const v = typeof addr === 'bigint' ? addr : addr.value;
  return (v & prefixMask(c.family, c.prefix)) === c.network;
}

export const cidrContainsCidr = (outer: Cidr, inner: Cidr): boolean =>
  outer.family === inner.family && outer.prefix <= inner.prefix && cidrContains(outer, inner.network);

export const cidrsOverlap = (a: Cidr, b: Cidr): boolean => cidrContainsCidr(a, b) || cidrContainsCidr(b, a);

export const cidrEquals = (a: Cidr, b: Cidr): boolean =>
  a.family === b.family && a.prefix === b.prefix && a.network === b.network;

/**
 * CloudStack defines guest and public ranges by gateway + netmask (createNetwork, createVlanIpRange).
 * The gateway may be any address in the subnet; the result is the subnet.
 */
export function cidrFromGatewayAndNetmask(
  gateway: string,
  netmask: string,
  params: { gateway?: string; netmask?: string } = {},
): Cidr {
  const gw = parseIpOf(4, gateway, params.gateway ?? 'gateway');
  const prefix = netmaskToPrefix(netmask, params.netmask ?? 'netmask');
  return makeCidr(4, gw.value, prefix);
}

/** IPv6 gateway + CIDR (createNetwork ip6gateway/ip6cidr): the gateway must lie inside the prefix. */
export function checkGatewayInCidr(gateway: IpAddress, cidr: Cidr, param = 'gateway'): void {
  if (!cidrContains(cidr, gateway)) {
    throw invalidParameter(param, formatIp(gateway), `the gateway is not inside ${formatCidr(cidr)}`);
  }
}
