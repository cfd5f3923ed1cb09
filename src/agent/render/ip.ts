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

/** IPv6 text → 128-bit integer (accepts `::` compression; no embedded IPv4). */
export function parseIpv6(ip: string): bigint {
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) + BigInt(parseInt(g || '0', 16)), 0n);
}

/** 128-bit integer → RFC 5952 text (lower case, longest run of zero groups as `::`). */
export function formatIpv6(n: bigint): string {
  const g = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(16 * (7 - i))) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface Ipv6Cidr {
  network: bigint;
  prefix: number;
}

export function parseIpv6Cidr(cidr: string): Ipv6Cidr {
  const [addr, len] = cidr.split('/');
  const prefix = Number(len);
  const mask = prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefix)) - 1n);
  return { network: parseIpv6(addr!) & mask, prefix };
}

export function ipv6CidrContains(c: Ipv6Cidr, ip: string): boolean {
  return parseIpv6(ip) >> BigInt(128 - c.prefix) === c.network >> BigInt(128 - c.prefix);
}

/**
 * The router's IPv6 address on the guest network: the network's IPv6 gateway, or the first address of the prefix
 * (what CloudStack's isolated networks use as ip6_gateway).
 */
export function ipv6GatewayOf(net: { ipv6Cidr?: string; ipv6Gateway?: string }): string | null {
  if (!net.ipv6Cidr) return null;
  if (net.ipv6Gateway) return formatIpv6(parseIpv6(net.ipv6Gateway));
  return formatIpv6(parseIpv6Cidr(net.ipv6Cidr).network + 1n);
}

/**
 * SLAAC EUI-64 address of a MAC in a /64 (RFC 4291 appendix A; CloudStack's NetUtils.EUI64Address): the MAC split
 * in half around ff:fe, with the universal/local bit flipped.
 */
export function eui64Address(cidr: string, mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0]! ^= 2;
  const iid = [b[0], b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]].reduce<bigint>(
    (acc, x) => (acc << 8n) + BigInt(x!),
    0n,
  );
  return formatIpv6(parseIpv6Cidr(cidr).network + iid);
}

/** Whether text is an IPv6 address in the hex form the renderer handles (no embedded IPv4, no zone). */
export function isIpv6(ip: string): boolean {
  const halves = ip.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? groups.length <= 7 : groups.length === 8;
}
