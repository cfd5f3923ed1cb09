/**
 * A VPC tier router's transit: the gateway /32 on the transit interface and the routes to the other tiers and
 * (non-edge) outside via the edge. No file and no daemon: `ip` is both the replace and the signal, idempotent on
 * every apply; routes carry the agent's protocol number, so what left the state is removed and nothing else.
 * The transit interface is plugged by the driver: while it is missing the apply fails and is retried.
 */
import { interfaceExists } from '../../system.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import type { TransitPlan } from './render.js';
import { routesRenderer } from './render.js';
import { linkUp, syncDeviceAddress, syncTransitRoutes, transitSysctls } from './ip-route.js';

export class RoutesApplier implements Applier<TransitPlan | null> {
  readonly renderer = routesRenderer;
  // Guests of this tier are served without it; it carries traffic between tiers, like the firewall.
  readonly servesGuests = false;
  private applied: Step<TransitPlan | null> | null = null;
  private serving = true;

  constructor(private readonly ctx: ApplierContext) {}

  async start(): Promise<void> {}

  async check(next: Step<TransitPlan | null>): Promise<void> {
    const plan = next.out;
    if (plan && !interfaceExists(plan.dev))
      throw new ApplyFailure(
        'TransitInterfaceMissing',
        `VPC transit interface ${plan.dev} does not exist (yet)`,
        true,
      );
  }

  async apply(next: Step<TransitPlan | null>, prev: Step<TransitPlan | null> | null): Promise<void> {
    const plan = next.out;
    this.serving = this.ctx.serving(next.state);
    if (!plan) {
      // No longer a VPC tier: take back what a previous state set (the interface may be gone already).
      // Nothing to do for a router that never was one (no process per apply for isolated networks).
      const old = prev?.out ?? this.applied?.out;
      if (old) {
        await syncTransitRoutes(old.dev, []);
        if (interfaceExists(old.dev)) await syncDeviceAddress(old.dev, null);
      }
      this.applied = next;
      return;
    }
    const err =
      transitSysctls(plan.dev) ??
      (await linkUp(plan.dev)) ??
      (await syncDeviceAddress(plan.dev, this.wantedAddress(plan))) ??
      (await syncTransitRoutes(plan.dev, plan.routes));
    if (err) throw new ApplyFailure('TransitRoutesFailed', err, true);
    this.applied = next;
  }

  private wantedAddress(plan: TransitPlan): string | null {
    return !plan.whileServing || this.serving ? `${plan.address}/32` : null;
  }

  roleChanged(serving: boolean): void {
    this.serving = serving;
    const plan = this.applied?.out;
    if (!plan?.whileServing || !interfaceExists(plan.dev)) return;
    syncDeviceAddress(plan.dev, this.wantedAddress(plan))
      .then((e) => e && this.ctx.degrade('TransitAddressFailed', e))
      .catch((e: Error) => this.ctx.degrade('TransitAddressFailed', e.message));
  }

  status(): ServiceStatus {
    return { report: {} };
  }

  async stop(): Promise<void> {}
}
