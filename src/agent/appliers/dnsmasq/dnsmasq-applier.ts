/**
 * DHCP for the guest network (dnsmasq, reference §4.4–4.5; DNS is the DNS dnsmasq's, appliers/dns/): render → `dnsmasq --test` (only when the
 * configuration file changed) → atomic replace → the cheapest signal the change allows (a file in the hostsdir,
 * SIGHUP, or a restart with pre-seeded leases; plan.ts and src/agent/README.md "How changes reach dnsmasq").
 * Runs only while the router serves guests (a redundant pair's backup runs no dnsmasq). The files themselves
 * (full write, hostsdir additions) are in hosts-files.ts; the short paths of a delta in
 * short-paths.ts.
 */
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DesiredState, DesiredStateDelta } from '../../desired-state.js';
import { cidrContains, parseIpv4Cidr } from '../../render/ip.js';
import { ProcessSupervisor } from '../../process-supervisor.js';
import { interfaceAddresses, readText, writeAtomic } from '../../system.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import { HostsFiles } from './hosts-files.js';
import { leasesToRelease, noteAdded, planDnsmasq } from './plan.js';
import type { DnsmasqFiles, DnsmasqPaths, Lease } from './render.js';
import { dnsmasqPaths, dnsmasqRenderer, mergeLeases, parseLeases } from './render.js';
import { addAhead, HostIndex, replaceAhead } from './short-paths.js';
import { canBroadcastRelease, dnsmasqTest, releaseLeases, stopReleaser } from './tools.js';

export class DnsmasqApplier implements Applier<DnsmasqFiles> {
  readonly renderer = dnsmasqRenderer;
  readonly servesGuests = true;
  readonly observedReasons = ['DnsmasqStartFailed', 'DnsmasqCrashLoop'] as const;
  readonly paths: DnsmasqPaths;
  readonly dnsmasq: ProcessSupervisor;
  readonly files: HostsFiles;
  readonly counters = { hostsdirAdds: 0, reloads: 0, restarts: 0, leasesReleased: 0 };
  /** The step dnsmasq serves (what a crash restart pre-seeds leases from). */
  private current: Step<DnsmasqFiles> | null = null;
  /** Set while a restart's leases must come from a state other than the one in force. */
  private preseedState: DesiredState | null = null;
  private readonly index = new HostIndex();

  /**
   * `sharded`: one of several DHCP dnsmasq instances on the interface (shards.ts), each on its own port. A
   * shard's releases are broadcast to port 67 (tools.ts): looped back through the guest interface, the steering
   * rule (steering.ts) hands them to the shard of the lease's MAC, the holder; a freed address costs the shard a
   * SIGHUP, not a restart. Without the broadcast helper (no python3; dhcp_release sends unicast from lo) a shard
   * frees a stale lease by restarting (its lease file pre-seeded without it).
   */
  constructor(
    readonly ctx: ApplierContext,
    readonly sharded = false,
  ) {
    this.paths = dnsmasqPaths(ctx);
    this.files = new HostsFiles(this.paths);
    this.dnsmasq = new ProcessSupervisor({
      name: 'dnsmasq',
      binary: ctx.dnsmasqBinary,
      args: ['--keep-in-foreground', `--conf-file=${this.paths.conf}`],
      pidFile: this.paths.pidFile,
      identity: `--conf-file=${this.paths.conf}`,
      outputFile: join(ctx.dataDir, 'dnsmasq.out'),
      beforeStart: () => this.preseedLeases(),
      onEvent: (e) => ctx.log(`dnsmasq ${e.type} ${JSON.stringify(e)}`),
    });
  }

  async start(saved: DesiredState | null): Promise<void> {
    // 0700: the hosts files name every VM.
    for (const dir of [this.ctx.leaseDir, this.paths.dhcpHostsDir]) mkdirPrivate(dir);
    if (saved && this.dnsmasq.adopt()) {
      // A dnsmasq left by a previous agent keeps serving untouched; on a backup (the VIP moved while no agent
      // was watching) it must not answer DHCP next to the primary's.
      if (this.ctx.serving(saved)) this.files.readLoaded();
      else await this.dnsmasq.stop();
    }
  }

  roleChanged(serving: boolean): void {
    // DHCP/DNS follow the primary (reference §4.11): the backup runs no dnsmasq, so it never answers DHCP.
    if (serving) {
      this.files.readLoaded();
      this.dnsmasq.ensureRunning().catch((e: Error) => this.ctx.degrade('DnsmasqStartFailed', e.message));
    } else {
      this.dnsmasq.stop().catch(() => undefined);
    }
  }

  /**
   * `dnsmasq --test` only parses the configuration file (host lines are ours and schema-checked), so it runs
   * only when that file changes: a host addition stays off the spawn-a-process path.
   */
  needsCheck(next: Step<DnsmasqFiles>, prev: Step<DnsmasqFiles> | null, force: boolean): boolean {
    return force || next.out.dnsmasqConf !== prev?.out.dnsmasqConf;
  }

  async check(next: Step<DnsmasqFiles>, prev: Step<DnsmasqFiles> | null, force: boolean): Promise<void> {
    if (!this.needsCheck(next, prev, force)) return;
    const complaint = await this.test(next.out.dnsmasqConf);
    if (complaint) throw new ApplyFailure('DnsmasqRejectedConfig', complaint);
  }

  /** `dnsmasq --test` of a configuration text (written in this instance's directory); the complaint or null. */
  async test(conf: string): Promise<string | null> {
    // A new shard's directory does not exist before its first apply.
    mkdirPrivate(this.ctx.dataDir);
    const tmpConf = join(this.ctx.dataDir, '.dnsmasq.conf.test');
    writeFileSync(tmpConf, conf);
    const complaint = await dnsmasqTest(this.ctx.dnsmasqBinary, tmpConf);
    rmSync(tmpConf, { force: true });
    return complaint;
  }

  async apply(next: Step<DnsmasqFiles>, prev: Step<DnsmasqFiles> | null): Promise<void> {
    await this.applyPlan(next, prev);
    this.current = next;
    this.preseedState = null;
  }

  private async applyPlan(next: Step<DnsmasqFiles>, prev: Step<DnsmasqFiles> | null): Promise<void> {
    const { state, out } = next;
    const active = this.ctx.serving(state);
    if (!active && this.dnsmasq.running) await this.dnsmasq.stop();
    if (!this.dnsmasq.running && active) this.files.loaded = null;
    const plan = planDnsmasq(this.files.loaded, state, out, this.readLeases());
    this.ctx.log(
      `generation ${state.generation}: ${plan.kind}${plan.kind === 'add' ? ` ${plan.hostLines.length} host(s)` : ''}`,
    );
    switch (plan.kind) {
      case 'none':
        // Additions written ahead (addAhead) leave nothing to do here but the folding of their files.
        if (active && this.files.loaded) this.files.compactHostsDir(out);
        return;
      case 'add': {
        // One file per batch: dnsmasq reads a new file in the hostsdir by inotify, no reload (dataplane-facts).
        this.files.addHosts(`g${state.generation}`, plan.hostLines);
        this.counters.hostsdirAdds++;
        noteAdded(this.files.loaded!, plan.hostLines);
        this.files.compactHostsDir(out);
        return;
      }
      case 'reload': {
        // dnsmasq 2.90 segfaults on SIGHUP while a lease exists for a hosts-file entry with a `set:` tag
        // (reproduced here); render keeps tagged hosts in dnsmasq.conf, and files from anything older restart.
        const tagged = (this.files.loaded?.taggedMacs.size ?? 0) > 0;
        const releaseByRestart =
          this.sharded && !canBroadcastRelease() && leasesToRelease(this.readLeases(), state).length > 0;
        if (active && this.dnsmasq.running && !tagged && !releaseByRestart) {
          this.files.writeFull(out);
          // Releasing what the state no longer has frees those addresses for the next MAC at once (issue #10436).
          // The release and the SIGHUP go out together: dnsmasq handles both in its one loop, in either order
          // with the same result (a new MAC's DISCOVER for a reused address is answered once both are done), so
          // the reload does not wait for the release helper's round trip.
          const released = this.releaseStale(state, leasesToRelease(this.readLeases(), state));
          this.reload();
          await released;
          return;
        }
        if (!active || (!this.dnsmasq.running && !releaseByRestart)) {
          this.files.writeFull(out);
          return;
        }
      }
      // falls through
      case 'restart': {
        if (!active) {
          this.files.writeFull(out);
          return;
        }
        this.preseedState = state;
        try {
          // Stopped before its watched directories change, so it does not process a storm of file events first.
          await this.dnsmasq.stop();
          this.files.writeFull(out);
          await this.dnsmasq.ensureRunning();
          this.counters.restarts++;
        } catch (e) {
          // dnsmasq --test passed but it would not start (an address it cannot bind, ...): put the last good
          // configuration back so the network keeps being served.
          if (prev) {
            await this.dnsmasq.stop();
            this.files.writeFull(prev.out);
            this.preseedState = prev.state;
            await this.dnsmasq.ensureRunning().catch(() => undefined);
          }
          throw new ApplyFailure('DnsmasqStartFailed', (e as Error).message, true);
        }
      }
    }
  }

  /** SIGHUP: dnsmasq re-reads the hosts file (and forgets what was only in the hostsdir). */
  reload(): void {
    this.dnsmasq.signal('SIGHUP');
    this.counters.reloads++;
  }

  /** Whether a delta's short path may act: dnsmasq runs and has loaded exactly the configuration in force. */
  private canGoAhead(base: Step<DnsmasqFiles>): boolean {
    const loaded = this.files.loaded;
    return (
      !!loaded && this.dnsmasq.running && this.ctx.serving(base.state) && loaded.conf === base.out.dnsmasqConf
    );
  }

  ahead(base: Step<DnsmasqFiles>, delta: DesiredStateDelta): ((next: DesiredState) => boolean) | null {
    if (!this.canGoAhead(base)) return null;
    const acted =
      addAhead(this, base, delta) ||
      ((!this.sharded || canBroadcastRelease()) && replaceAhead(this, base, delta));
    if (!acted) return null;
    // The early files hold every upserted host: the validated state must still have them all (none refused or
    // quarantined by a rule between entries), or dnsmasq is put back on the state in force.
    return (next) => {
      const macs = new Set(next.hosts.map((h) => h.mac.toLowerCase()));
      return (delta.hosts?.upsert ?? []).every((h) => macs.has(h.mac.toLowerCase()));
    };
  }

  idle(applied: Step<DnsmasqFiles>): void {
    // Ready for the next addition's check (addAhead), built while nothing is waiting.
    this.index.of(applied.state);
  }

  hostIndex(state: DesiredState): HostIndex {
    this.index.of(state);
    return this.index;
  }

  async releaseStale(state: DesiredState, stale: Lease[]): Promise<void> {
    if (stale.length === 0) return;
    const cidr = parseIpv4Cidr(state.network.cidr);
    // dnsmasq checks the server identifier against the address it answers from; with a VIP there are two
    // candidates, so send one release per local address (the wrong one is ignored).
    for (const server of interfaceAddresses(this.ctx.guestInterface).filter((a) => cidrContains(cidr, a))) {
      const err = await releaseLeases(this.ctx.guestInterface, server, stale, this.sharded);
      if (err) this.ctx.log(`dhcp release failed: ${err}`);
    }
    this.counters.leasesReleased += stale.length;
  }

  private leaseCache: { key: string; leases: Lease[]; byIp?: Map<string, string> } | null = null;

  /** Address → MAC of dnsmasq's leases (cached with the parsed file). */
  leasedIps(): Map<string, string> {
    this.readLeases();
    const c = this.leaseCache;
    if (!c) return new Map();
    c.byIp ??= new Map(c.leases.map((l) => [l.ip, l.mac]));
    return c.byIp;
  }

  /** dnsmasq's lease file, parsed once per change of the file (status and every apply read it). */
  readLeases(): Lease[] {
    let key: string;
    try {
      const st = statSync(this.paths.leaseFile);
      key = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      return [];
    }
    if (this.leaseCache?.key !== key)
      this.leaseCache = { key, leases: parseLeases(readText(this.paths.leaseFile)) };
    return this.leaseCache.leases;
  }

  private preseedLeases(): void {
    const s = this.preseedState ?? this.current?.state;
    if (!s) return;
    writeAtomic(
      this.paths.leaseFile,
      mergeLeases(s, readText(this.paths.leaseFile), Math.floor(Date.now() / 1000)),
    );
  }

  status(_applied: DesiredState | null, withLeases: boolean): ServiceStatus {
    const d = this.dnsmasq;
    const leases = this.readLeases();
    const st: ServiceStatus = {
      report: {
        dnsmasq: {
          running: d.running,
          pid: d.running ? d.pid : null,
          restarts: d.restarts,
          lastError: d.lastError,
        },
        counters: { ...this.counters },
        leaseCount: leases.length,
      },
    };
    if (withLeases) st.report.leases = leases;
    if (!d.running) st.down = { reason: 'DnsmasqDown', message: d.lastError ?? 'dnsmasq is not running' };
    const recentCrashes = d.crashes.filter((t) => Date.now() - t < 60_000).length;
    if (d.lastError && !d.running) st.degraded = { reason: 'DnsmasqStartFailed', message: d.lastError };
    else if (recentCrashes >= 3)
      st.degraded = {
        reason: 'DnsmasqCrashLoop',
        message: `dnsmasq died ${recentCrashes} times in the last minute`,
      };
    return st;
  }

  async stop(opts: { leaveRunning?: boolean }): Promise<void> {
    stopReleaser();
    if (opts.leaveRunning) {
      this.dnsmasq.detach();
      return;
    }
    await this.dnsmasq.stop();
    // A stopped router's leases are rebuilt from the desired state at its next start (pre-seed).
    if (this.ctx.leaseDir !== this.ctx.dataDir) rmSync(this.ctx.leaseDir, { recursive: true, force: true });
  }
}

function mkdirPrivate(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}
