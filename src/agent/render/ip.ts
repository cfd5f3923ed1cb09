/** Tiny IPv4 helpers for the renderer and validator (the agent does not depend on the server's ipam/). */

export function parseIpv4(ip: string): number {
  const parts = ip.split('.').map(Number);
  return (((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Ipv4Cidr {
  network: number;
  prefix: number;
  mask: number;
}

export function parseIpv4Cidr(cidr: string): Ipv4Cidr {
  const [addr, len] = cidr.split('/');
  const prefix = Number(len);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: (parseIpv4(addr!) & mask) >>> 0, prefix, mask };
}

export function cidrContains(c: Ipv4Cidr, ip: string): boolean {
  return (parseIpv4(ip) & c.mask) >>> 0 === c.network;
}

export function netmaskOf(c: Ipv4Cidr): string {
  return formatIpv4(c.mask);
}

export function networkAddressOf(c: Ipv4Cidr): string {
  return formatIpv4(c.network);
}

/** Usable host addresses in the subnet (what `--dhcp-lease-max` should cover). */
export function hostCapacity(c: Ipv4Cidr): number {
  if (c.prefix >= 31) return 2 ** (32 - c.prefix);
  return 2 ** (32 - c.prefix) - 2;
}
