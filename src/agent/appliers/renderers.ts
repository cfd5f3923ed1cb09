/**
 * The router's services in the order the agent applies them, and the content hash over their renders. Pure:
 * the simulator driver renders with it too, so it reports the same hash as a real agent.
 */
import { createHash } from 'node:crypto';
import type { DesiredState } from '../desired-state.js';
import { applianceServices } from '../desired-state.js';
import { canonicalJson } from '../render/canonical.js';
import { addressesRenderer } from './addresses/render.js';
import type { RenderContext, Renderer } from './applier.js';
import { dnsRenderer } from './dns/render.js';
import { dnsmasqRenderer } from './dnsmasq/render.js';
import { haproxyRenderer } from './haproxy/render.js';
import { keepalivedRenderer } from './keepalived/render.js';
import { netfilterRenderer } from './netfilter/render.js';
import { nftablesRenderer } from './nftables/render.js';
import { routesRenderer } from './routes/render.js';

/**
 * Addresses first (dnsmasq binds to them and advertises the IPv6 prefix only once its address is there), then a
 * VPC tier's transit routes (to the other tiers, outside via the edge), then DHCP and DNS (two processes), then the firewalls (guest
 * side, then the public side's NAT and filter), the public load balancer (behind that filter, which lets its
 * ports in), and VRRP, which protect and move what the others serve. A new service is a new folder and one entry
 * here.
 */
export const routerRenderers: readonly Renderer<unknown>[] = [
  addressesRenderer,
  routesRenderer,
  dnsmasqRenderer,
  dnsRenderer,
  nftablesRenderer,
  netfilterRenderer,
  haproxyRenderer,
  keepalivedRenderer,
];

export interface RenderedRouter {
  /** Each service's render, in `renderers` order. */
  outs: unknown[];
  /** sha256 over every service's digest plus metadata and passwords (what the VR serves); never the generation. */
  hash: string;
}

/** The services a state is served by: every router service, or an appliance's (desired-state.ts applianceServices). */
export function renderersFor(state: DesiredState): readonly Renderer<unknown>[] {
  const only = state.router.appliance ? applianceServices[state.router.appliance] : undefined;
  return only ? routerRenderers.filter((r) => only.includes(r.name)) : routerRenderers;
}

export function renderRouter(
  state: DesiredState,
  ctx: RenderContext,
  renderers: readonly Renderer<unknown>[] = renderersFor(state),
): RenderedRouter {
  const outs = renderers.map((r) => r.render(state, ctx));
  const h = createHash('sha256');
  renderers.forEach((r, i) => {
    for (const part of r.digest(outs[i], state)) h.update(part).update('\0');
  });
  // Served from memory by the agent's own metadata and password servers (guest-services.ts), not by a service.
  h.update(canonicalJson(state.metadata)).update('\0').update(canonicalJson(state.passwords));
  return { outs, hash: h.digest('hex') };
}
