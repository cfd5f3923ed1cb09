/**
 * The periodic alert check: every `capacity.check.period` ms (CloudStack's setting, read each tick so a change
 * applies without a restart) one pass of `checkAlerts`. Every server runs it; the alerts table's UNIQUE open
 * condition keeps two servers' passes from raising the same alert twice.
 */
import { defaultRootAdmin } from '../accounts/repository.js';
import { getSetting } from '../configuration/repository.js';
import type { Store } from '../store/db.js';
import { checkAlerts } from './service.js';
import type { AlertOptions } from './service.js';

export class AlertWorker {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private last = 0;

  constructor(
    private readonly o: { store: Store; tickMs?: number; log?: (m: string) => void; alerts?: AlertOptions },
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = null));
    }, this.o.tickMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const db = this.o.store.db;
    try {
      const now = Date.now();
      if (now - this.last < Number(await getSetting(db, 'capacity.check.period'))) return;
      this.last = now;
      const admin = await defaultRootAdmin(db);
      if (admin) await checkAlerts(db, admin.caller, now, this.o.alerts);
    } catch (e) {
      this.o.log?.(`alerts: ${(e as Error).message}`);
    }
  }
}
