/**
 * The router's own addresses: on the guest side IPv4 (on the guest interface, or on lo for one of a redundant pair)
 * and the IPv6 gateway; on the public side (standalone router only) each public interface's addresses and the
 * default route via the source-NAT VLAN's gateway. No file and no daemon: `ip addr` / `ip route` are both the
 * replace and the signal. Guest addresses it did not add (an operator's) are left alone; public addresses it
 * removes are only those an applied state put there (this agent's, or the saved state's of a previous agent).
 */
import { interfaceExists } from '../../system.js';
import type { DesiredState } from '../../desired-state.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import type { RouterAddresses } from './render.js';
import { addressesRenderer, renderAddresses } from './render.js';
import {
  addCidr,
  ensureAddress,
  ensureAddress6,
  gratuitousArp,
  linkUp,
  removeAddress,
  removeAddress6,
  removeCidr,
  removeDefaultRoute,
  replaceDefaultRoute,
} from './ip-addr.js';

/** `dev cidr`: one public address an applied state holds. */
const publicKeys = (out: RouterAddresses) =>
  new Map<string, { dev: string; cidr: string }>(
    out.public.flatMap((l) => l.addresses.map((cidr) => [`${l.dev} ${cidr}`, { dev: l.dev, cidr }])),
  );

export class AddressesApplier implements Applier<RouterAddresses> {
  readonly renderer = addressesRenderer;
  readonly servesGuests = true;
  private readonly weAdded = new Set<string>();
  /** The public addresses and default route in force (ours to remove once they leave the state). */
  private publicHeld = new Map<string, { dev: string; cidr: string }>();
  private routeHeld: RouterAddresses['defaultRoute'] = null;

  constructor(private readonly ctx: ApplierContext) {}

  async start(saved: DesiredState | null): Promise<void> {
    // A previous agent put the saved state's public side in place: it is ours to take away.
    if (!saved) return;
    const out = renderAddresses(saved, this.ctx.guestInterface);
    this.publicHeld = publicKeys(out);
    this.routeHeld = out.defaultRoute;
  }

  async check(next: Step<RouterAddresses>): Promise<void> {
    const gi = this.ctx.guestInterface;
    if (!interfaceExists(gi))
      throw new ApplyFailure('GuestInterfaceMissing', `interface ${gi} does not exist`, true);
    // The driver plugs public interfaces (possibly after the push): retry until it has.
    for (const l of next.out.public)
      if (!interfaceExists(l.dev))
        throw new ApplyFailure('PublicInterfaceMissing', `interface ${l.dev} does not exist`, true);
  }

  async apply(next: Step<RouterAddresses>, prev: Step<RouterAddresses> | null): Promise<void> {
    const gi = this.ctx.guestInterface;
    const own = next.out.own;
    const err = await ensureAddress(own.dev, own.address, own.prefix);
    if (err) throw new ApplyFailure('GuestAddressFailed', `cannot add ${own.address} to ${gi}: ${err}`, true);
    const old = prev?.out.own;
    if (old && this.weAdded.has(old.address) && (old.address !== own.address || old.dev !== own.dev))
      await removeAddress(old.dev, old.address, old.prefix);
    // A router that (re)starts on the guest network (reboot, destroy + restartNetwork: a new MAC) tells the guests
    // at once, as CloudStack's VR arpings its addresses: else they keep sending to the old MAC until their
    // neighbour entry fails (seconds). A pair's gateway is the VIP, which keepalived announces.
    if (!this.weAdded.has(own.address) && own.dev === gi) void this.announce(gi, own.address);
    this.weAdded.add(own.address);

    const want = next.out.ipv6;
    const had = prev?.out.ipv6 ?? null;
    if (had && had.address !== want?.address) await removeAddress6(gi, had.address, had.prefix);
    if (want) {
      const err6 = await ensureAddress6(gi, want.address, want.prefix);
      if (err6)
        throw new ApplyFailure('GuestAddressFailed', `cannot add ${want.address} to ${gi}: ${err6}`, true);
    }
    await this.applyPublic(next.out);
    // Whether this router holds the VIP is read after its own address moved (a standalone router turned into one
    // of a pair no longer holds the gateway).
    this.ctx.observeRole(next.state);
  }

  /** Idempotent: present addresses are not re-added, `ip route replace` converges the route. */
  private async applyPublic(out: RouterAddresses): Promise<void> {
    const want = publicKeys(out);
    for (const [key, { dev, cidr }] of this.publicHeld)
      if (!want.has(key)) {
        await removeCidr(dev, cidr);
        this.publicHeld.delete(key);
      }
    const r = this.routeHeld;
    if (r && (r.dev !== out.defaultRoute?.dev || r.via !== out.defaultRoute.via)) {
      await removeDefaultRoute(r.dev, r.via);
      this.routeHeld = null;
    }
    for (const l of out.public) {
      const err = await linkUp(l.dev);
      if (err) throw new ApplyFailure('PublicAddressFailed', `cannot bring ${l.dev} up: ${err}`, true);
      for (const cidr of l.addresses) {
        const added = await addCidr(l.dev, cidr);
        if (typeof added === 'string')
          throw new ApplyFailure('PublicAddressFailed', `cannot add ${cidr} to ${l.dev}: ${added}`, true);
        this.publicHeld.set(`${l.dev} ${cidr}`, { dev: l.dev, cidr });
        // Not awaited: arping sends at once, then lingers a second for replies it was told not to expect.
        if (added) void this.announce(l.dev, cidr.split('/')[0]!);
      }
    }
    if (out.defaultRoute) {
      const { dev, via } = out.defaultRoute;
      const err = await replaceDefaultRoute(dev, via);
      if (err)
        throw new ApplyFailure(
          'PublicRouteFailed',
          `cannot route default via ${via} on ${dev}: ${err}`,
          true,
        );
      this.routeHeld = out.defaultRoute;
    }
  }

  private async announce(dev: string, address: string): Promise<void> {
    const err = await gratuitousArp(dev, address);
    if (err) this.ctx.log(`gratuitous ARP for ${address} on ${dev} failed: ${err}`);
  }

  status(): ServiceStatus {
    return { report: {} };
  }

  async stop(): Promise<void> {}
}
