/**
 * Pure rules for guest network addressing: default CIDR/gateway, network domain, VPC tier placement and the
 * guestvmcidr reservation (reference §2.3, §2.5). No I/O: the service passes in what it read.
 */
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import { formatIp, parseIpOf } from '../ipam/address.js';
import type { Cidr } from '../ipam/cidr.js';
import {
  cidrContains,
  cidrContainsCidr,
  cidrFromGatewayAndNetmask,
  cidrsOverlap,
  firstHost,
  formatCidr,
  lastHost,
  parseCidr,
  prefixToNetmask,
} from '../ipam/cidr.js';

export interface GuestAddressing {
  cidr: Cidr;
  gateway: string;
  netmask: string;
}

/** CloudStack's default when the zone has no guestcidraddress (reference §5.8 createNetwork). */
export const DEFAULT_GUEST_CIDR = '10.1.1.0/24';

/**
 * The CIDR and gateway of a new isolated network. With gateway+netmask given they define it; otherwise the
 * zone's guest CIDR is used and the gateway is its first host, as CloudStack does.
 */
export function isolatedAddressing(input: {
  gateway?: string | undefined;
  netmask?: string | undefined;
  zoneGuestCidr?: string | null | undefined;
  /** network.guest.cidr.limit: the smallest prefix length (largest network) allowed. */
  guestCidrLimit?: number;
}): GuestAddressing {
  if ((input.gateway === undefined) !== (input.netmask === undefined)) {
    const missing = input.gateway === undefined ? 'gateway' : 'netmask';
    throw new CloudStackError(
      'InvalidParameterValue',
      `gateway and netmask must be given together (missing ${missing})`,
    );
  }
  let cidr: Cidr;
  let gateway: string;
  if (input.gateway !== undefined && input.netmask !== undefined) {
    cidr = cidrFromGatewayAndNetmask(input.gateway, input.netmask);
    gateway = formatIp(parseIpOf(4, input.gateway, 'gateway'));
    const gw = parseIpOf(4, gateway, 'gateway');
    if (gw.value === cidr.network || gw.value === lastHost(cidr).value + 1n) {
      throw invalidParameter(
        'gateway',
        input.gateway,
        `the gateway cannot be the network or broadcast address of ${formatCidr(cidr)}`,
      );
    }
  } else {
    cidr = parseCidr(input.zoneGuestCidr ?? DEFAULT_GUEST_CIDR, 'guestcidraddress', { family: 4 });
    gateway = formatIp(firstHost(cidr));
  }
  const limit = input.guestCidrLimit ?? 22;
  // The limit is on what a user asks for; the zone's own guest CIDR is the admin's choice.
  if (input.gateway !== undefined && cidr.prefix < limit) {
    throw invalidParameter(
      'netmask',
      input.netmask ?? prefixToNetmask(cidr.prefix),
      `guest networks may be at most /${limit} (network.guest.cidr.limit); ${formatCidr(cidr)} is larger`,
    );
  }
  if (cidr.prefix > 29) {
    throw invalidParameter(
      'netmask',
      input.netmask ?? prefixToNetmask(cidr.prefix),
      'a guest network needs at least a /29',
    );
  }
  return { cidr, gateway, netmask: prefixToNetmask(cidr.prefix) };
}

/**
 * `"cs" + hex(accountId) + guest.domain.suffix`, literally without a dot (NetworkOrchestrator): the default
 * suffix `cloud.internal` gives `cs2cloud.internal`.
 */
export const defaultNetworkDomain = (accountId: number, suffix: string): string =>
  `cs${accountId.toString(16)}${suffix}`;

const DOMAIN =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

export function checkNetworkDomain(domain: string, param = 'networkdomain'): string {
  if (!DOMAIN.test(domain)) {
    throw invalidParameter(
      param,
      domain,
      'a network domain is dot-separated labels of letters, digits and hyphens',
    );
  }
  return domain;
}

/** A VPC super-CIDR: IPv4, and no larger than /16 nor smaller than a /28 (so at least one tier fits). */
export function parseVpcCidr(text: string): Cidr {
  const cidr = parseCidr(text, 'cidr', { family: 4 });
  if (cidr.prefix < 8 || cidr.prefix > 28) {
    throw invalidParameter('cidr', text, 'a VPC CIDR must be between /8 and /28');
  }
  return cidr;
}

/** A tier must lie inside its VPC's CIDR and overlap no other tier of the VPC. */
export function checkTierPlacement(
  tier: Cidr,
  vpc: { name: string; cidr: Cidr },
  siblings: readonly { name: string; cidr: Cidr }[],
): void {
  if (!cidrContainsCidr(vpc.cidr, tier)) {
    throw invalidParameter(
      'gateway',
      formatCidr(tier),
      `the tier's CIDR ${formatCidr(tier)} is not inside the CIDR ${formatCidr(vpc.cidr)} of VPC '${vpc.name}'`,
    );
  }
  const hit = siblings.find((s) => cidrsOverlap(s.cidr, tier));
  if (hit) {
    throw invalidParameter(
      'gateway',
      formatCidr(tier),
      `the tier's CIDR ${formatCidr(tier)} overlaps ${formatCidr(hit.cidr)} of tier '${hit.name}' in VPC '${vpc.name}'`,
    );
  }
}

export interface Reservation {
  /** The CIDR VMs are given addresses from (network.cidr). */
  cidr: Cidr;
  /** The network's whole CIDR when a reservation is active (network.network_cidr), else undefined. */
  networkCidr: Cidr | undefined;
}

/**
 * updateNetwork guestvmcidr (NetworkServiceImpl): the VM range becomes the given subset of the network; equal
 * to the whole network resets it. Every address in use must stay inside the new VM range.
 */
export function applyGuestVmCidr(
  current: Reservation,
  guestVmCidrText: string,
  usedAddresses: readonly { address: string; owner: string }[],
): Reservation {
  const whole = current.networkCidr ?? current.cidr;
  const wanted = parseCidr(guestVmCidrText, 'guestvmcidr', { family: 4 });
  if (!cidrContainsCidr(whole, wanted)) {
    throw invalidParameter(
      'guestvmcidr',
      guestVmCidrText,
      `it must lie inside the network's CIDR ${formatCidr(whole)}`,
    );
  }
  const outside = usedAddresses.find((u) => !cidrContains(wanted, parseIpOf(4, u.address)));
  if (outside) {
    throw invalidParameter(
      'guestvmcidr',
      guestVmCidrText,
      `address ${outside.address} of ${outside.owner} is outside it; move or remove it first`,
    );
  }
  if (wanted.prefix === whole.prefix) return { cidr: whole, networkCidr: undefined };
  return { cidr: wanted, networkCidr: whole };
}

/**
 * listNetworks `reservediprange`: the part of networkcidr outside cidr, as CloudStack prints it
 * (`start-end` pieces joined by commas), or undefined without a reservation.
 */
export function reservedIpRange(reservation: Reservation): string | undefined {
  const whole = reservation.networkCidr;
  if (!whole) return undefined;
  const vm = reservation.cidr;
  const wholeStart = firstHost(whole).value;
  const wholeEnd = lastHost(whole).value;
  const vmStart = vm.network;
  const vmEnd = vm.network + (1n << BigInt(32 - vm.prefix)) - 1n;
  const parts: string[] = [];
  const fmt = (v: bigint): string => formatIp({ family: 4, value: v });
  if (wholeStart < vmStart) parts.push(`${fmt(wholeStart)}-${fmt(vmStart - 1n)}`);
  if (vmEnd < wholeEnd) parts.push(`${fmt(vmEnd + 1n)}-${fmt(wholeEnd)}`);
  return parts.join(',');
}

export { formatCidr };
