/**
 * VRRP for a redundant pair (reference §4.11): keepalived moves the gateway VIP between the two routers. Its
 * configuration is replaced atomically and re-read on SIGHUP, which keeps the VIP where it is (no restart:
 * CloudStack PRs #940/#1064 show restarts on every change produce MASTER/MASTER).
 */
import { join } from 'node:path';
import { ProcessSupervisor } from '../../process-supervisor.js';
import { readText, writeAtomic } from '../../system.js';
import type { DesiredState } from '../../desired-state.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import { keepalivedRenderer } from './render.js';

export class KeepalivedApplier implements Applier<string | null> {
  readonly renderer = keepalivedRenderer;
  readonly servesGuests = false;
  readonly keepalived: ProcessSupervisor;
  private readonly conf: string;

  constructor(ctx: ApplierContext) {
    const d = ctx.dataDir;
    this.conf = join(d, 'keepalived.conf');
    const pidFile = join(d, 'keepalived.pid');
    this.keepalived = new ProcessSupervisor({
      name: 'keepalived',
      binary: ctx.keepalivedBinary,
      args: [
        '--dont-fork',
        '--log-console',
        '--vrrp',
        `--use-file=${this.conf}`,
        `--pid=${pidFile}`,
        `--vrrp_pid=${join(d, 'keepalived-vrrp.pid')}`,
      ],
      pidFile,
      identity: `--use-file=${this.conf}`,
      outputFile: join(d, 'keepalived.out'),
      onEvent: (e) => ctx.log(`keepalived ${e.type} ${JSON.stringify(e)}`),
    });
  }

  async start(saved: DesiredState | null): Promise<void> {
    if (saved?.router.redundant) this.keepalived.adopt();
  }

  async check(): Promise<void> {}

  async apply(next: Step<string | null>): Promise<void> {
    const conf = next.out;
    if (!conf) {
      if (this.keepalived.running) await this.keepalived.stop();
      return;
    }
    // Compared with the file, not the previous render: an agent restarted next to a running keepalived must not
    // signal it when nothing changed.
    const changed = readText(this.conf) !== conf;
    if (changed) writeAtomic(this.conf, conf);
    if (!this.keepalived.running) {
      try {
        await this.keepalived.ensureRunning();
      } catch (e) {
        throw new ApplyFailure('KeepalivedStartFailed', (e as Error).message, true);
      }
    } else if (changed) {
      this.keepalived.signal('SIGHUP');
    }
  }

  status(applied: DesiredState | null): ServiceStatus {
    const k = this.keepalived;
    return {
      report: {
        keepalived: applied?.router.redundant ? { running: k.running, pid: k.running ? k.pid : null } : null,
      },
    };
  }

  async stop(opts: { leaveRunning?: boolean }): Promise<void> {
    if (opts.leaveRunning) this.keepalived.detach();
    else await this.keepalived.stop();
  }
}
