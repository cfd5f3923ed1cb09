/**
 * The guest-side firewall (reference §4.9): one nftables table, checked with `nft --check` and replaced
 * atomically by `nft -f` (the file deletes and re-declares only our table). Loaded only when the state asks for
 * it, the agent is allowed to, and it runs provably outside the machine's own network namespace.
 */
import { join } from 'node:path';
import { writeAtomic } from '../../system.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import { inInitialNetNamespace, nftApply, nftCheckText, nftDeleteTables } from './nft.js';
import { nftablesRenderer, nftTableName } from './render.js';

export class NftablesApplier implements Applier<string> {
  readonly renderer = nftablesRenderer;
  readonly servesGuests = false;
  private loaded = false;
  private message: string | null = null;
  private readonly file: string;

  constructor(private readonly ctx: ApplierContext) {
    this.file = join(ctx.dataDir, 'nftables.nft');
  }

  async start(): Promise<void> {}

  private wanted(next: Step<string>): boolean {
    return next.state.firewall.enabled && this.ctx.firewall;
  }

  async check(next: Step<string>, prev: Step<string> | null): Promise<void> {
    const want = this.wanted(next);
    if (want && inInitialNetNamespace()) {
      this.message = 'not loaded: the agent runs in the machine’s own network namespace';
    } else if (want && (!this.loaded || prev?.out !== next.out)) {
      const err = await nftCheckText(this.ctx.dataDir, next.out);
      if (err) throw new ApplyFailure('FirewallRejected', err);
    }
  }

  async apply(next: Step<string>, prev: Step<string> | null): Promise<void> {
    const want = this.wanted(next) && !inInitialNetNamespace();
    if (want && (!this.loaded || prev?.out !== next.out)) {
      writeAtomic(this.file, next.out);
      const err = await nftApply(this.file, false);
      if (err) throw new ApplyFailure('FirewallFailed', err);
      this.loaded = true;
      this.message = null;
    } else if (!want && this.loaded) {
      await nftDeleteTables(this.ctx.dataDir, [`inet ${nftTableName}`]);
      this.loaded = false;
    }
  }

  status(): ServiceStatus {
    return { report: { firewall: { loaded: this.loaded, message: this.message } } };
  }

  async stop(): Promise<void> {}
}
