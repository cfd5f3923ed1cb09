/**
 * The router's own guest addresses: IPv4 (on the guest interface, or on lo for one of a redundant pair) and the
 * IPv6 gateway. No file and no daemon: `ip addr` is both the replace and the signal. Addresses it did not add
 * (an operator's, a previous agent's kept across a restart) are left alone.
 */
import { interfaceExists } from '../../system.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import type { RouterAddresses } from './render.js';
import { addressesRenderer } from './render.js';
import { ensureAddress, ensureAddress6, removeAddress, removeAddress6 } from './ip-addr.js';

export class AddressesApplier implements Applier<RouterAddresses> {
  readonly renderer = addressesRenderer;
  readonly servesGuests = true;
  private readonly weAdded = new Set<string>();

  constructor(private readonly ctx: ApplierContext) {}

  async start(): Promise<void> {}

  async check(): Promise<void> {
    const gi = this.ctx.guestInterface;
    if (!interfaceExists(gi))
      throw new ApplyFailure('GuestInterfaceMissing', `interface ${gi} does not exist`, true);
  }

  async apply(next: Step<RouterAddresses>, prev: Step<RouterAddresses> | null): Promise<void> {
    const gi = this.ctx.guestInterface;
    const own = next.out.own;
    const err = await ensureAddress(own.dev, own.address, own.prefix);
    if (err) throw new ApplyFailure('GuestAddressFailed', `cannot add ${own.address} to ${gi}: ${err}`, true);
    const old = prev?.out.own;
    if (old && this.weAdded.has(old.address) && (old.address !== own.address || old.dev !== own.dev))
      await removeAddress(old.dev, old.address, old.prefix);
    this.weAdded.add(own.address);

    const want = next.out.ipv6;
    const had = prev?.out.ipv6 ?? null;
    if (had && had.address !== want?.address) await removeAddress6(gi, had.address, had.prefix);
    if (want) {
      const err6 = await ensureAddress6(gi, want.address, want.prefix);
      if (err6)
        throw new ApplyFailure('GuestAddressFailed', `cannot add ${want.address} to ${gi}: ${err6}`, true);
    }
    // Whether this router holds the VIP is read after its own address moved (a standalone router turned into one
    // of a pair no longer holds the gateway).
    this.ctx.observeRole(next.state);
  }

  status(): ServiceStatus {
    return { report: {} };
  }

  async stop(): Promise<void> {}
}
