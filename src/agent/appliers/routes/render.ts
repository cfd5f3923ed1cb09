/**
 * A VPC tier router's transit (the `vpc` section): its tier's gateway as a /32 on the transit interface, so the
 * other tier routers reach it on-link, and routes to the other tiers' CIDRs via their gateways on-link over the
 * transit; a tier that is not the edge routes everything else (its default) via the edge tier's gateway. Pure.
 *
 * Why /32 and `onlink`: the tiers' gateways are in different subnets, so no prefix on the transit covers them
 * all; each router answers ARP for its own gateway on the transit and asks for the others' as on-link next hops.
 */
import type { DesiredState } from '../../desired-state.js';
import type { Renderer } from '../applier.js';

export interface TransitRoute {
  /** A peer tier's CIDR, or `default`. */
  to: string;
  via: string;
}

export interface TransitPlan {
  dev: string;
  /** The tier gateway, held as a /32 on `dev`. */
  address: string;
  /**
   * On a redundant tier the gateway is the VRRP address: only the router holding it may answer for it on the
   * transit (two answers would split the other tiers' traffic between primary and backup), so the /32 follows
   * the VIP. Both routers carry the routes.
   */
  whileServing: boolean;
  /** Sorted: peers by CIDR (as the document lists them), then the default route. */
  routes: TransitRoute[];
}

/** null: not a VPC tier (the applier removes whatever transit routes and address it had set). */
export function renderTransit(state: DesiredState): TransitPlan | null {
  const vpc = state.vpc;
  if (!vpc) return null;
  const routes: TransitRoute[] = vpc.peers.map((p) => ({ to: p.cidr, via: p.gateway }));
  if (!vpc.edge && vpc.edgeGateway) routes.push({ to: 'default', via: vpc.edgeGateway });
  return {
    dev: vpc.transitInterface,
    address: state.network.gateway,
    whileServing: !!state.router.redundant,
    routes,
  };
}

export const routesRenderer: Renderer<TransitPlan | null> = {
  name: 'routes',
  consumes: ['vpc', 'network', 'router'],
  render: (state) => renderTransit(state),
  digest: (out) => [JSON.stringify(out)],
};
