/**
 * DNS for the guest network, in a dnsmasq of its own (render.ts says why): `dnsmasq --test` when its
 * configuration changes → atomic replace → the cheapest signal. A few new names go into `names.d/` (--hostsdir,
 * read by inotify without a reload); a removed or changed name, or more than `addAtMostLines` new ones, rewrites
 * `names.txt` and costs a SIGHUP, which for this process is only the names file (no lease re-match); a changed
 * configuration restarts it. Runs only while the router serves guests (the VIP holder of a pair binds the VIP).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DesiredState } from '../../desired-state.js';
import { ProcessSupervisor } from '../../process-supervisor.js';
import { listDir, readText, writeAtomic } from '../../system.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import { dnsmasqTest } from '../dnsmasq/tools.js';
import type { DnsFiles, DnsPaths } from './render.js';
import { dnsPaths, dnsRenderer } from './render.js';

/**
 * Past this many addition files the names are folded into names.txt (a SIGHUP): dnsmasq sizes its name table
 * from what it reads at start or SIGHUP, and every file it unloads later costs a walk of that table.
 */
const foldAfterFiles = 64;

/**
 * More new name lines than this in one apply go in by a SIGHUP instead of a `names.d/` file. dnsmasq reads a
 * hostsdir file "incrementally": for every name it walks its whole name table (`cache_find_by_addr` with no hint,
 * to decide whether the address already has a reverse entry), so a file of K hosts costs O(K × N) in the thread
 * that answers queries, where a SIGHUP re-reads everything with a hash, O(N + K). Measured on a bare DNS-only
 * dnsmasq 2.90 with 10,000 hosts (2 names a line), queries every 1 ms: 1 host ≈ 0 CPU, 16 hosts ≈ 3 ms, 32 ≈ 20,
 * 64 ≈ 23, 200 ≈ 70 ms of dnsmasq CPU (queries stalled 76–135 ms), SIGHUP ≈ 14–17 ms (stalled 17–44 ms); both
 * scale with N, so the break-even (about 16–32 hosts) does not depend on N.
 */
const addAtMostLines = 16;

export class DnsApplier implements Applier<DnsFiles> {
  readonly renderer = dnsRenderer;
  readonly servesGuests = true;
  readonly observedReasons = ['DnsStartFailed', 'DnsCrashLoop'] as const;
  readonly paths: DnsPaths;
  readonly dns: ProcessSupervisor;
  readonly counters = { dnsAdds: 0, dnsReloads: 0, dnsRestarts: 0 };
  /** The name lines the running dnsmasq has loaded (null: unknown or not running). */
  private loaded: Set<string> | null = null;
  /** The configuration the running dnsmasq was started with. */
  private loadedConf: string | null = null;
  private current: Step<DnsFiles> | null = null;
  private addSeq = 0;

  constructor(readonly ctx: ApplierContext) {
    this.paths = dnsPaths(ctx);
    this.dns = new ProcessSupervisor({
      name: 'dns',
      binary: ctx.dnsmasqBinary,
      args: ['--keep-in-foreground', `--conf-file=${this.paths.conf}`],
      pidFile: this.paths.pidFile,
      identity: `--conf-file=${this.paths.conf}`,
      outputFile: join(ctx.dataDir, 'dns.out'),
      onEvent: (e) => ctx.log(`dns ${e.type} ${JSON.stringify(e)}`),
    });
  }

  async start(saved: DesiredState | null): Promise<void> {
    mkdirSync(this.paths.namesDir, { recursive: true, mode: 0o700 });
    if (saved && this.dns.adopt()) {
      if (this.ctx.serving(saved)) this.readLoaded();
      else await this.dns.stop();
    }
  }

  private readLoaded(): void {
    const lines = readText(this.paths.namesFile).split('\n');
    for (const f of listDir(this.paths.namesDir))
      lines.push(...readText(join(this.paths.namesDir, f)).split('\n'));
    this.loaded = new Set(lines.filter(Boolean));
    this.loadedConf = readText(this.paths.conf);
  }

  roleChanged(serving: boolean): void {
    if (serving && this.current?.out.conf) {
      this.readLoaded();
      this.dns.ensureRunning().catch((e: Error) => this.ctx.degrade('DnsStartFailed', e.message));
    } else if (!serving) {
      this.dns.stop().catch(() => undefined);
    }
  }

  async check(next: Step<DnsFiles>, prev: Step<DnsFiles> | null, force: boolean): Promise<void> {
    const conf = next.out.conf;
    if (conf === null || (conf === prev?.out.conf && !force)) return;
    const tmpConf = join(this.ctx.dataDir, '.dns.conf.test');
    writeFileSync(tmpConf, conf);
    const complaint = await dnsmasqTest(this.ctx.dnsmasqBinary, tmpConf);
    rmSync(tmpConf, { force: true });
    if (complaint) throw new ApplyFailure('DnsmasqRejectedConfig', complaint);
  }

  async apply(next: Step<DnsFiles>, prev: Step<DnsFiles> | null): Promise<void> {
    const { conf, names } = next.out;
    const active = conf !== null && this.ctx.serving(next.state);
    this.current = next;
    if (!active || !this.dns.running || conf !== this.loadedConf || !this.loaded) {
      await this.dns.stop();
      this.writeFull(next.out);
      if (!active) return;
      try {
        await this.dns.ensureRunning();
        this.counters.dnsRestarts++;
      } catch (e) {
        if (prev?.out.conf) {
          this.writeFull(prev.out);
          this.current = prev;
          await this.dns.ensureRunning().catch(() => undefined);
        }
        throw new ApplyFailure('DnsStartFailed', (e as Error).message, true);
      }
      return;
    }
    const wanted = names.split('\n').filter(Boolean);
    const wantedSet = new Set(wanted);
    const loaded = this.loaded;
    let removed = false;
    for (const l of loaded)
      if (!wantedSet.has(l)) {
        removed = true;
        break;
      }
    const added = removed ? [] : wanted.filter((l) => !loaded.has(l));
    if (!removed && added.length === 0) return;
    if (!removed && added.length <= addAtMostLines && listDir(this.paths.namesDir).length < foldAfterFiles) {
      writeAtomic(
        join(this.paths.namesDir, `g${next.state.generation}-${++this.addSeq}`),
        added.join('\n') + '\n',
      );
      for (const l of added) loaded.add(l);
      this.counters.dnsAdds++;
      return;
    }
    this.writeFull(next.out);
    this.dns.signal('SIGHUP');
    this.counters.dnsReloads++;
  }

  /** names.txt holds every name; names.d/ is emptied (dnsmasq re-reads both on SIGHUP and at start). */
  private writeFull(out: DnsFiles): void {
    writeAtomic(this.paths.namesFile, out.names);
    for (const f of listDir(this.paths.namesDir)) rmSync(join(this.paths.namesDir, f), { force: true });
    if (out.conf !== null) writeAtomic(this.paths.conf, out.conf);
    else rmSync(this.paths.conf, { force: true });
    this.loaded = new Set(out.names.split('\n').filter(Boolean));
    this.loadedConf = out.conf;
  }

  status(applied: DesiredState | null): ServiceStatus {
    const d = this.dns;
    const wanted = !!this.current?.out.conf && !!applied && this.ctx.serving(applied);
    const st: ServiceStatus = {
      report: {
        dns:
          wanted || d.running
            ? {
                running: d.running,
                pid: d.running ? d.pid : null,
                restarts: d.restarts,
                lastError: d.lastError,
              }
            : null,
        counters: { ...this.counters },
      },
    };
    if (wanted && !d.running)
      st.down = { reason: 'DnsDown', message: d.lastError ?? 'the DNS dnsmasq is not running' };
    const recentCrashes = d.crashes.filter((t) => Date.now() - t < 60_000).length;
    if (d.lastError && !d.running && wanted) st.degraded = { reason: 'DnsStartFailed', message: d.lastError };
    else if (recentCrashes >= 3)
      st.degraded = {
        reason: 'DnsCrashLoop',
        message: `the DNS dnsmasq died ${recentCrashes} times in the last minute`,
      };
    return st;
  }

  async stop(opts: { leaveRunning?: boolean }): Promise<void> {
    if (opts.leaveRunning) {
      this.dns.detach();
      return;
    }
    await this.dns.stop();
  }
}
