/**
 * The host worker: every `tickMs` (500 ms) one pass of `checkHostStates` (Disconnected / Down by the ping
 * settings, read each pass so a change applies at once), and every `refreshMs` (5 s) the desired state of every
 * host recomputed, which bumps only the hosts whose content changed (a change made where no driver call follows,
 * e.g. a router's secret or a network's VNI). Every server runs it; the conditional updates make one of them
 * win each transition.
 */
import type { Store } from '../store/db.js';
import { refreshAllHosts } from './desired-state.js';
import { checkHostStates } from './service.js';

export class HostWorker {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private lastRefresh = 0;

  constructor(
    private readonly o: { store: Store; tickMs?: number; refreshMs?: number; log?: (m: string) => void },
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = null));
    }, this.o.tickMs ?? 500);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  private async tick(): Promise<void> {
    try {
      const now = Date.now();
      await checkHostStates(this.o.store, now);
      if (now - this.lastRefresh >= (this.o.refreshMs ?? 5000)) {
        this.lastRefresh = now;
        await refreshAllHosts(this.o.store.db);
      }
    } catch (e) {
      this.o.log?.(`hosts: ${(e as Error).message}`);
    }
  }
}
