/** The router's own addresses: the guest side (CloudStack's CsAddress) and the public side (eth2, eth3...). Pure. */
import type { DesiredState, PublicNicSpec } from '../../desired-state.js';
import { ipv6GatewayOf, parseIpv4Cidr } from '../../render/ip.js';
import type { Renderer } from '../applier.js';

/** One public interface: brought up always; its addresses only on a standalone router. */
export interface PublicLink {
  dev: string;
  /** `<ip>/<prefix>`, in the state's order (the source-NAT address first). */
  addresses: string[];
}

export interface RouterAddresses {
  /** The router's own IPv4 guest address and where it lives. */
  own: { dev: string; address: string; prefix: number };
  /** The IPv6 gateway address on the guest interface, or null (no prefix, or one of a redundant pair). */
  ipv6: { address: string; prefix: number } | null;
  /** The public interfaces, in the state's order (eth2 first); [] without a public side. */
  public: PublicLink[];
  /**
   * The default route via the source-NAT VLAN's gateway (nics[0]), or null (none, or one of a redundant pair);
   * an appliance's via its tier's gateway on the guest interface.
   */
  defaultRoute: { dev: string; via: string } | null;
}

/** `<ip>/<prefix>` for each of a public NIC's addresses (the form `ip addr` and keepalived take). */
export function publicCidrs(nic: PublicNicSpec): string[] {
  return nic.addresses.map((a) => `${a}/${nic.prefix}`);
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
 *
 * Public addresses and the default route: a standalone router holds them itself. On a redundant pair they are
 * keepalived's virtual addresses and virtual route (keepalived/render.ts), so that only the primary holds them;
 * here each public interface is then only brought up (the driver plugs it and may leave it down).
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
  const nics = state.public?.nics ?? [];
  const first = nics[0];
  return {
    own,
    ipv6: v6 ? { address: v6, prefix: Number(state.network.ipv6Cidr!.split('/')[1]) } : null,
    public: nics.map((n) => ({ dev: n.interface, addresses: redundant ? [] : publicCidrs(n) })),
    defaultRoute:
      first && !redundant
        ? { dev: first.interface, via: first.gateway }
        : state.router.appliance
          ? // An appliance (internal LB) answers clients of other tiers through its tier's gateway.
            { dev: guestInterface, via: state.network.gateway }
          : null,
  };
}

export const addressesRenderer: Renderer<RouterAddresses> = {
  name: 'addresses',
  consumes: ['router', 'network', 'public'],
  render: (state, ctx) => renderAddresses(state, ctx.guestInterface),
  // The guest inputs also shape dnsmasq.conf (interface, range, gateway, RA prefix); the public side is its own.
  digest: (out, state) =>
    out.public.length || state.router.appliance
      ? [
          JSON.stringify({
            own: state.router.appliance ? out.own : undefined,
            public: out.public,
            defaultRoute: out.defaultRoute,
          }),
        ]
      : [],
};
