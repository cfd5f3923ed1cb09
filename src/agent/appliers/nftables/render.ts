/**
 * The VR's own firewall (reference §4.9, done with nftables): DHCP only on the guest interface; DNS, metadata
 * and password only from the guest CIDR; the control API only on the control side. Pure.
 */
import type { DesiredState } from '../../desired-state.js';
import { canonicalJson } from '../../render/canonical.js';
import type { Renderer } from '../applier.js';
import { allowedMark } from '../netfilter/render.js';

export const nftTableName = 'stacknet_vr';

export interface FirewallRenderOptions {
  guestInterface: string;
  /** Interface holding the control address; undefined = any interface but the guest one. */
  controlInterface?: string;
  controlPort: number;
  metadataPort: number;
  passwordPort: number;
}

export function renderNftables(state: DesiredState, o: FirewallRenderOptions): string {
  const g = JSON.stringify(o.guestInterface);
  const cidr = state.network.cidr;
  const rules = [
    'iif "lo" accept',
    'ct state established,related accept',
    'ct state invalid drop',
    // DHCP clients have no address yet: accept by interface, not by source.
    `iifname ${g} udp dport 67 accept`,
  ];
  if (!state.network.useExternalDns) {
    rules.push(
      `iifname ${g} ip saddr ${cidr} udp dport 53 accept`,
      `iifname ${g} ip saddr ${cidr} tcp dport 53 accept`,
    );
  }
  rules.push(
    `iifname ${g} ip saddr ${cidr} tcp dport { ${o.metadataPort}, ${o.passwordPort} } accept`,
    `iifname ${g} ip saddr ${cidr} icmp type echo-request accept`,
    // On public interfaces the public side's input chain (appliers/netfilter) decides which echo requests pass.
    ...(state.public?.nics.length
      ? [
          `iifname { ${state.public.nics.map((n) => JSON.stringify(n.interface)).join(', ')} } icmp type echo-request accept`,
          // ...and which TCP connections a firewall rule let in (marked) reach haproxy's listeners.
          `iifname { ${state.public.nics.map((n) => JSON.stringify(n.interface)).join(', ')} } meta l4proto tcp ct mark & ${allowedMark} == ${allowedMark} accept`,
        ]
      : []),
    // Neighbour discovery and DHCPv6 keep IPv6 guests working.
    `iifname ${g} meta l4proto ipv6-icmp accept`,
  );
  if (state.network.ipv6Cidr) rules.push(`iifname ${g} udp dport 547 accept`);
  if (state.router.redundant) {
    // VRRP adverts from the peer (CloudStack accepts 224.0.0.18).
    rules.push(`iifname ${g} ip daddr 224.0.0.18 ip protocol vrrp accept`);
  }
  rules.push(
    o.controlInterface
      ? `iifname ${JSON.stringify(o.controlInterface)} tcp dport ${o.controlPort} accept`
      : `iifname != ${g} tcp dport ${o.controlPort} accept`,
  );
  // Declaring then deleting the table makes the file replace our table atomically, and leave others alone.
  return [
    `table inet ${nftTableName}`,
    `delete table inet ${nftTableName}`,
    `table inet ${nftTableName} {`,
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
    ...rules.map((r) => `    ${r}`),
    '  }',
    '}',
    '',
  ].join('\n');
}

export const nftablesRenderer: Renderer<string> = {
  name: 'nftables',
  consumes: ['router', 'network', 'firewall', 'public'],
  render: (state, ctx) => renderNftables(state, ctx),
  // The intent too: turning the firewall off leaves the ruleset text as it was, but must still reach the applier.
  digest: (ruleset, state) => [ruleset, canonicalJson(state.firewall)],
};
