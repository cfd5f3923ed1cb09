/** The router's own addresses on the guest side (CloudStack's CsAddress). Pure. */
import type { DesiredState } from '../../desired-state.js';
import { ipv6GatewayOf, parseIpv4Cidr } from '../../render/ip.js';
import type { Renderer } from '../applier.js';

export interface RouterAddresses {
  /** The router's own IPv4 guest address and where it lives. */
  own: { dev: string; address: string; prefix: number };
  /** The IPv6 gateway address on the guest interface, or null (no prefix, or one of a redundant pair). */
  ipv6: { address: string; prefix: number } | null;
}

/**
 * Where the router's own guest address lives. A redundant router keeps it on `lo` (a /32), not on the guest
 * interface: dnsmasq takes the first address of the guest interface inside the subnet as its DHCP server
 * identifier, and guests renew by unicast to it. With only the VIP there, guests renew against the VIP, which
 * survives a failover. keepalived sends its adverts from it (`mcast_src_ip`), and the kernel still answers ARP
 * for it on the guest interface.
 *
 * The IPv6 gateway goes on the guest interface before dnsmasq (re)starts: dnsmasq advertises a prefix only on an
 * interface holding an address in it. A redundant pair would need the address to move with the VIP
 * (keepalived); not done, so a redundant router advertises nothing.
 */
export function renderAddresses(state: DesiredState, guestInterface: string): RouterAddresses {
  const redundant = !!state.router.redundant;
  const own = redundant
    ? { dev: 'lo', address: state.router.guestIp, prefix: 32 }
    : {
        dev: guestInterface,
        address: state.router.guestIp,
        prefix: parseIpv4Cidr(state.network.cidr).prefix,
      };
  const v6 = redundant ? null : ipv6GatewayOf(state.network);
  return {
    own,
    ipv6: v6 ? { address: v6, prefix: Number(state.network.ipv6Cidr!.split('/')[1]) } : null,
  };
}

export const addressesRenderer: Renderer<RouterAddresses> = {
  name: 'addresses',
  consumes: ['router', 'network'],
  render: (state, ctx) => renderAddresses(state, ctx.guestInterface),
  // Every input also shapes dnsmasq.conf (interface, range, gateway, RA prefix): nothing of its own to hash.
  digest: () => [],
};
