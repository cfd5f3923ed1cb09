/**
 * The public side's NAT and forwarding filter (render.ts says what and why a service of its own). Same anatomy as
 * the guest-side firewall: `nft --check` first, then one `nft -f` that replaces both tables atomically; a refused
 * ruleset leaves the last good one loaded and the router Degraded (NatRejected). Loaded only when the state has a
 * public side or a VPC, the agent may load rulesets, and it runs provably outside the machine's own namespace.
 */
import { join } from 'node:path';
import { writeAtomic } from '../../system.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import { inInitialNetNamespace, nftApply, nftCheckText, nftDeleteTables } from '../nftables/nft.js';
import { natTableName, netfilterRenderer, publicTableName } from './render.js';

export class NetfilterApplier implements Applier<string> {
  readonly renderer = netfilterRenderer;
  readonly servesGuests = false;
  private loaded = false;
  private readonly file: string;

  constructor(private readonly ctx: ApplierContext) {
    this.file = join(ctx.dataDir, 'netfilter.nft');
  }

  async start(): Promise<void> {}

  private wanted(next: Step<string>): boolean {
    return next.out !== '' && this.ctx.firewall && !inInitialNetNamespace();
  }

  async check(next: Step<string>, prev: Step<string> | null): Promise<void> {
    if (!this.wanted(next) || (this.loaded && prev?.out === next.out)) return;
    const err = await nftCheckText(this.ctx.dataDir, next.out);
    if (err) throw new ApplyFailure('NatRejected', err);
  }

  async apply(next: Step<string>, prev: Step<string> | null): Promise<void> {
    if (this.wanted(next)) {
      if (this.loaded && prev?.out === next.out) return;
      writeAtomic(this.file, next.out);
      const err = await nftApply(this.file, false);
      if (err) throw new ApplyFailure('NatFailed', err);
      this.loaded = true;
    } else if (this.loaded) {
      await nftDeleteTables(this.ctx.dataDir, [`ip ${natTableName}`, `inet ${publicTableName}`]);
      this.loaded = false;
    }
  }

  status(): ServiceStatus {
    return { report: {} };
  }

  async stop(): Promise<void> {}
}
