/** The router's appliers, one per entry of `routerRenderers`, in the same order. */
import { AddressesApplier } from './addresses/addresses-applier.js';
import type { Applier, ApplierContext } from './applier.js';
import { DnsApplier } from './dns/dns-applier.js';
import { DhcpApplier } from './dnsmasq/dhcp-applier.js';
import { HaproxyApplier } from './haproxy/haproxy-applier.js';
import { KeepalivedApplier } from './keepalived/keepalived-applier.js';
import { NetfilterApplier } from './netfilter/netfilter-applier.js';
import { NftablesApplier } from './nftables/nftables-applier.js';
import { routerRenderers } from './renderers.js';
import { RoutesApplier } from './routes/routes-applier.js';

const factories: Record<string, (ctx: ApplierContext) => Applier> = {
  addresses: (ctx) => new AddressesApplier(ctx),
  routes: (ctx) => new RoutesApplier(ctx),
  dnsmasq: (ctx) => new DhcpApplier(ctx),
  dns: (ctx) => new DnsApplier(ctx),
  nftables: (ctx) => new NftablesApplier(ctx),
  netfilter: (ctx) => new NetfilterApplier(ctx),
  haproxy: (ctx) => new HaproxyApplier(ctx),
  keepalived: (ctx) => new KeepalivedApplier(ctx),
};

/** Every router service, or (an appliance) only those named in `only`, in `routerRenderers` order. */
export function createAppliers(ctx: ApplierContext, only?: readonly string[]): Applier[] {
  return routerRenderers
    .filter((r) => !only || only.includes(r.name))
    .map((r) => {
      const make = factories[r.name];
      if (!make) throw new Error(`no applier for the ${r.name} renderer`);
      const a = make(ctx);
      if (a.renderer !== r) throw new Error(`the ${r.name} applier renders with another renderer`);
      return a;
    });
}
