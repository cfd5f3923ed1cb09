/** A VM port's anti-spoofing in nftables: the rules, as a chain per port or as sets keyed by the port. */
import type { PortInspection, VmNicRuntime } from './types.js';

/**
 * The bridge-family table whose `ports` map sends each VM port's frames to its rules: the shared `guard` chain
 * (`GUARD_TEXT`, the netns driver's and the host agent's), or an older build's chain per port (`portRuleText`).
 */
export const PORT_TABLE_TEXT = `table bridge stacknet {
  map ports { type ifname : verdict; }
  chain forward { type filter hook forward priority 0; policy accept; iifname vmap @ports; }
}
`;

/**
 * The anti-spoofing rules (reference §4.10) a VM port's frames go through, in order, given how each names the
 * port's own MAC and addresses: written into a chain of the port's own (`portRuleText`) or matched against sets
 * keyed by the port (`GUARD_TEXT`). Every rule that drops counts, with a comment naming what it stops (tests read
 * the counters by comment).
 *
 * - Untagged IPv4, IPv6 and ARP only. A guest port is an access port: a guest never sends VLAN-tagged frames.
 *   Tagged frames also slip past the other rules: `ether type ip` sees the tag's 0x8100, and with two tags the
 *   kernel cannot find the IP header either, so `udp dport` does not match; yet a receiving guest strips
 *   priority tags (VID 0) and takes the frame as untagged. Measured: a rogue OFFER in two VID-0 tags won a
 *   udhcpc guest with `udp dport 68 drop` in place.
 * - No DHCP server or relay traffic, whatever the source port: clients accept an OFFER from any source port, so
 *   CloudStack's `udp sport 67` alone lets a guest answering from 1067 become other guests' gateway and DNS
 *   server. Everything to the client ports (68, DHCPv6 546) goes, and everything from the server/relay ports
 *   (67, 547: relay-forward and relay-reply, a server's replies); the guest's own client traffic (68 → 67,
 *   546 → 547) passes.
 * - No router advertisements, redirects or router renumbering: a guest is never the router of its network, and
 *   the IPv6 source rule below lets any link-local address through, the router's included (RAs give a SLAAC
 *   prefix and a default route; an ICMPv6 redirect moves a destination to another next hop). ICMPv4 redirects
 *   only count from the current gateway, which a guest cannot pose as, but it has no reason to send them.
 */
function antiSpoofRules(not: {
  /** "the frame's source MAC is not the port's" */
  mac: string;
  /** "the ARP sender MAC is not the port's" */
  arpMac: string;
  /** "the ARP sender IP is neither 0.0.0.0 nor the port's" */
  arpIp: string;
  /** "the IPv4 source is not the port's" */
  ip: string;
  /** "the IPv6 source is none of ::, link-local, the port's" */
  ip6: string;
}): string[] {
  return [
    `${not.mac} counter drop comment "source mac"`,
    `ether type != { ip, ip6, arp } counter drop comment "untagged ip ip6 arp only"`,
    `udp dport { 68, 546 } counter drop comment "dhcp server"`,
    `udp sport { 67, 547 } counter drop comment "dhcp server"`,
    `icmpv6 type { nd-router-advert, nd-redirect, router-renumbering } counter drop comment "router advert"`,
    `icmp type redirect counter drop comment "redirect"`,
    `ether type arp ${not.arpMac} counter drop comment "arp source mac"`,
    `ether type arp ${not.arpIp} counter drop comment "arp source ip"`,
    `ether type ip ip saddr 0.0.0.0 udp dport 67 accept`,
    `ether type ip ${not.ip} counter drop comment "source ip"`,
    `ether type ip6 ${not.ip6} counter drop comment "source ip6"`,
  ];
}

/**
 * The nftables text for one VM port's chain `p_<port>` (bridge family, forward hook, frames the guest sends):
 * `antiSpoofRules` with the port's MAC and addresses written into them. What older builds of the netns driver and
 * the host agent wrote (`portReplaceText` replaces such a chain by the sets); its cost grew with the ruleset (nft
 * loads every chain's rules for each transaction), which the sets avoid.
 */
export function portRuleText(
  nic: Pick<VmNicRuntime, 'id' | 'mac' | 'ipv4s' | 'ipv6'>,
  /** The port's interface name: the netns driver's `n<nic id>`; a host agent's `vmPortName` (`vn<nic id>`). */
  port = `n${nic.id}`,
): string {
  const chain = `p_${port}`;
  const ips = nic.ipv4s.length ? nic.ipv4s.join(', ') : '255.255.255.255';
  const rules = antiSpoofRules({
    mac: `ether saddr != ${nic.mac}`,
    arpMac: `arp saddr ether != ${nic.mac}`,
    arpIp: `arp saddr ip != { 0.0.0.0, ${ips} }`,
    ip: `ip saddr != { ${ips} }`,
    ip6: `ip6 saddr != { ::, fe80::/10${nic.ipv6 ? `, ${nic.ipv6}` : ''} }`,
  });
  return (
    `add chain bridge stacknet ${chain}\n` +
    `flush chain bridge stacknet ${chain}\n` +
    rules.map((r) => `add rule bridge stacknet ${chain} ${r}\n`).join('') +
    `add element bridge stacknet ports { "${port}" : jump ${chain} }\n`
  );
}

/**
 * The netns driver's anti-spoofing: one chain, `guard`, for every VM port, whose rules look the port's MAC and
 * addresses up in sets keyed by the port's name (`iifname . <source>`). A port costs three or four set elements
 * and a `ports` map element (`portElements`): adding one is O(1) in the ruleset, where a chain of eleven rules per
 * port made each nft transaction load every port's rules first (2.5–6.5 s per batch past 700 VMs). The same
 * filtering as `portRuleText`: a port without IPv4 addresses has no `port_ip4` element, so every IPv4 source but
 * DHCP's 0.0.0.0 drops. Idempotent: run at every start of the driver (sets added if missing, `guard` refilled).
 */
export const GUARD_TEXT =
  'add map bridge stacknet ports { type ifname : verdict; }\n' +
  'add set bridge stacknet port_mac { type ifname . ether_addr; }\n' +
  'add set bridge stacknet port_ip4 { type ifname . ipv4_addr; }\n' +
  'add set bridge stacknet port_ip6 { type ifname . ipv6_addr; }\n' +
  'add chain bridge stacknet guard\n' +
  'flush chain bridge stacknet guard\n' +
  antiSpoofRules({
    mac: 'iifname . ether saddr != @port_mac',
    arpMac: 'iifname . arp saddr ether != @port_mac',
    arpIp: 'arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @port_ip4',
    ip: 'iifname . ip saddr != @port_ip4',
    ip6: 'ip6 saddr != { ::, fe80::/10 } iifname . ip6 saddr != @port_ip6',
  })
    .map((r) => `add rule bridge stacknet guard ${r}\n`)
    .join('');

/** A VM port's elements under `GUARD_TEXT`, by set (`ports`: the map element that sends its frames to `guard`). */
export function portElements(
  nic: Pick<VmNicRuntime, 'id' | 'mac' | 'ipv4s' | 'ipv6'>,
  port = `n${nic.id}`,
): { set: 'port_mac' | 'port_ip4' | 'port_ip6' | 'ports'; element: string }[] {
  const q = `"${port}"`;
  return [
    { set: 'port_mac' as const, element: `${q} . ${nic.mac.toLowerCase()}` },
    ...nic.ipv4s.map((ip) => ({ set: 'port_ip4' as const, element: `${q} . ${ip}` })),
    ...(nic.ipv6 ? [{ set: 'port_ip6' as const, element: `${q} . ${nic.ipv6}` }] : []),
    { set: 'ports' as const, element: `${q} : jump guard` },
  ];
}

/** nft text that adds (or deletes) elements; a map element is deleted by its key. */
export function elementsText(verb: 'add' | 'delete', elements: { set: string; element: string }[]): string {
  return elements
    .map(({ set, element }) => {
      const e = verb === 'delete' ? element.replace(/ : .*$/, '') : element;
      return `${verb} element bridge stacknet ${set} { ${e} }\n`;
    })
    .join('');
}

/**
 * The nft text that takes away everything port `port` (default the netns driver's `n<nic id>`; a host agent's is
 * `vn<nic id>`) has in the table's listing (`nft list table bridge stacknet`: its set elements, its `ports`
 * element, the chain of its own an older build made) and, unless `remove`, puts in what `portElements` says: one
 * transaction, so the port is never without its rules in between.
 */
export function portReplaceText(
  listed: string,
  nic: Pick<VmNicRuntime, 'id' | 'mac' | 'ipv4s' | 'ipv6'>,
  remove = false,
  port = `n${nic.id}`,
): string {
  return portRemoveText(listed, port) + (remove ? '' : elementsText('add', portElements(nic, port)));
}

/** The nft text that takes away everything port `port` has in the table's listing (see `portReplaceText`). */
export function portRemoveText(listed: string, port: string): string {
  const have = portState(listed, port);
  return (
    elementsText('delete', have.elements) + (have.ownChain ? `delete chain bridge stacknet p_${port}\n` : '')
  );
}

/** True when the listing has port `port` exactly as `portElements` puts it: its elements, no others, no own chain. */
export function portInPlace(
  listed: string,
  nic: Pick<VmNicRuntime, 'id' | 'mac' | 'ipv4s' | 'ipv6'>,
  port = `n${nic.id}`,
): boolean {
  const have = portState(listed, port);
  const key = (e: { set: string; element: string }) => `${e.set} ${e.element}`;
  const want = portElements(nic, port).map(key).sort();
  const got = have.elements.map(key).sort();
  return !have.ownChain && want.length === got.length && want.every((w, i) => w === got[i]);
}

/** The ports the listing's `ports` map has an element for. */
export function listedPorts(listed: string): string[] {
  const m = /\n\tmap ports \{([\s\S]*?)\n\t\}/.exec(listed);
  return m ? [...m[1]!.matchAll(/"([A-Za-z0-9_-]+)" : jump/g)].map((x) => x[1]!) : [];
}

/** True when the listing has the `guard` chain (`GUARD_TEXT`). */
export function hasGuard(listed: string): boolean {
  return /\n\tchain guard \{/.test(listed);
}

/**
 * What port `port` has in the table's listing (`nft list table bridge stacknet`): its elements in the sets and
 * the `ports` map (as `portElements` writes them), where its `ports` element jumps, and whether a chain of its
 * own (`p_<port>`, an older build's) is there.
 */
export function portState(
  listed: string,
  port: string,
): { elements: { set: string; element: string }[]; target: string | null; ownChain: boolean } {
  const elements: { set: string; element: string }[] = [];
  let target: string | null = null;
  const q = port.replace(/[^A-Za-z0-9_-]/g, '');
  for (const m of listed.matchAll(/\n\t(set|map) (\S+) \{([\s\S]*?)\n\t\}/g)) {
    const [, kind, set, body] = m as unknown as [string, string, string, string];
    if (kind === 'map' && set === 'ports') {
      const j = new RegExp(`"${q}" : jump ([\\w-]+)`).exec(body);
      if (j) {
        target = j[1]!;
        elements.push({ set, element: `"${q}" : jump ${target}` });
      }
    } else if (/^port_(mac|ip4|ip6)$/.test(set)) {
      for (const e of body.matchAll(new RegExp(`"${q}" \\. ([0-9a-fA-F:.]+)`, 'g')))
        elements.push({ set, element: `"${q}" . ${e[1]!.toLowerCase()}` });
    }
  }
  return { elements, target, ownChain: new RegExp(`\\n\\tchain p_${q} \\{`).test(listed) };
}

/** A port's anti-spoofing as `listed` (the bridge table's listing) has it, against what `portElements` puts there. */
export function portInspection(listed: string, nic: VmNicRuntime): PortInspection {
  const port = `n${nic.id}`;
  const have = portState(listed, port);
  const block = (kind: string, name: string) =>
    new RegExp(`\\n\\t${kind} ${name} \\{([\\s\\S]*?)\\n\\t\\}`).exec(listed)?.[1] ?? null;
  const own = have.target === `p_${port}`;
  const chain = own ? block('chain', `p_${port}`) : block('chain', 'guard');
  const hooked = chain !== null && (own || have.target === 'guard');
  // The rules that make it anti-spoofing, found by their comment and checked for the values: written into the
  // port's own chain (an older build's), or looked up in the sets by the port's name.
  const lines = (chain ?? '').split('\n');
  const rule = (comment: string, ...values: string[]) =>
    lines.some(
      (l) =>
        l.includes(`comment "${comment}"`) &&
        l.includes('drop') &&
        values.every((v) => new RegExp(`(^|[\\s{,])${v.replace(/\./g, '\\.')}($|[\\s},])`).test(l)),
    );
  const element = (set: string, value: string) =>
    have.elements.some((e) => e.set === set && e.element === `"${port}" . ${value.toLowerCase()}`);
  const mac = own
    ? rule('source mac', nic.mac)
    : rule('source mac', '@port_mac') && element('port_mac', nic.mac);
  const ip = (a: string) =>
    own ? rule('source ip', a) : rule('source ip', '@port_ip4') && element('port_ip4', a);
  const want: [boolean, string][] = [
    [mac, `ether saddr != ${nic.mac} drop (source mac)`],
    [rule('dhcp server', 'dport'), 'udp dport { 68, 546 } drop (dhcp server)'],
    ...nic.ipv4s.map((a): [boolean, string] => [ip(a), `ip saddr != { ${a} } drop (source ip)`]),
  ];
  return {
    chain: own ? `bridge stacknet p_${port}` : `bridge stacknet guard (port ${port})`,
    hooked,
    missing: want.filter(([ok]) => !ok).map(([, w]) => w),
  };
}
