/**
 * The router's DHCP service: one DnsmasqApplier for a small network, K of them (shards.ts) for a big one, each
 * with its own directory, hosts, leases and process. It routes each shard its part of every step, delta and
 * role change, and reports them as one service (`status.dnsmasq`, `leases`, counters summed, `dhcpShards`).
 * When K changes (a network grows past or shrinks below a power of two of hostsPerShard) every shard restarts.
 * While K > 1 each shard listens on its own port and an nftables rule steers every DHCP packet to its
 * client's shard (steering.ts).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DesiredState, DesiredStateDelta } from '../../desired-state.js';
import { listDir } from '../../system.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { withProcessSnapshot } from '../../process-supervisor.js';
import { DnsmasqApplier } from './dnsmasq-applier.js';
import type { DnsmasqFiles } from './render.js';
import { dnsmasqRenderer, shardContext } from './render.js';
import { combinedCheckConf, shardCount, shardOf, shardStates } from './shards.js';
import { applySteering } from './steering.js';

/**
 * Shards started (or tested) together: all 64 of a 50,000-host router at once on 2 loaded cores kept some from
 * writing their pid file within the supervisor's 5 s (bench:vr's rebuild).
 */
const startsAtOnce = 8;

/** `f` over `items`, at most `n` running at a time; rejects with the first failure once all have settled. */
async function eachAtMost<T>(n: number, items: T[], f: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await f(items[i]!, i).catch((e: unknown) => errors.push(e));
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (errors.length) throw errors[0];
}

export class DhcpApplier implements Applier<DnsmasqFiles> {
  readonly renderer = dnsmasqRenderer;
  readonly servesGuests = true;
  readonly observedReasons = ['DnsmasqStartFailed', 'DnsmasqCrashLoop', 'DhcpSteering'] as const;
  private subs: DnsmasqApplier[] = [];
  /** The K the steering rule (steering.ts) is loaded for (null: none), and nft's last complaint. */
  private steering: number | null = null;
  private steeringError: string | null = null;
  /** Each shard's step in force (what `ahead` and `idle` hand it). */
  private steps: (Step<DnsmasqFiles> | null)[] = [];

  constructor(readonly ctx: ApplierContext) {}

  get shards(): number {
    return this.subs.length;
  }

  private make(k: number): DnsmasqApplier[] {
    if (k === 1) return [new DnsmasqApplier(this.ctx)];
    return Array.from({ length: k }, (_, i) => new DnsmasqApplier(shardContext(this.ctx, i), true));
  }

  private split(step: Step<DnsmasqFiles>): Step<DnsmasqFiles>[] {
    const shards = step.out.shards;
    if (!shards) return [step];
    const states = shardStates(step.state, shards.length);
    return shards.map((out, i) => ({ state: states[i]!, out }));
  }

  async start(saved: DesiredState | null): Promise<void> {
    const k = shardCount(saved?.hosts.length ?? 0, this.ctx.dhcpShards);
    this.subs = this.make(k);
    this.steps = this.subs.map(() => null);
    const states = saved && shardStates(saved, k);
    await Promise.all(this.subs.map((s, i) => s.start(states?.[i] ?? null)));
    // A previous agent's shards (now one dnsmasq) may have left the rule loaded.
    const leftShards = listDir(this.ctx.dataDir).some((f) => /^dhcp-\d+$/.test(f));
    if (k > 1 || leftShards) await this.steer(k > 1 ? k : null);
  }

  /**
   * Loads the steering rule for `k` shards, or (null) removes it. A failure degrades the router (no shard gets
   * DHCP then: they listen on their own ports), it does not fail the apply; the next apply tries again.
   */
  private async steer(k: number | null): Promise<void> {
    const err = await applySteering(this.ctx.guestInterface, k);
    if (err) this.ctx.log(`nft (DHCP steering to shards): ${err}`);
    this.steering = k !== null && !err ? k : null;
    this.steeringError = k !== null ? err : null;
  }

  roleChanged(serving: boolean): void {
    for (const s of this.subs) s.roleChanged(serving);
  }

  async check(next: Step<DnsmasqFiles>, prev: Step<DnsmasqFiles> | null, force: boolean): Promise<void> {
    const steps = this.split(next);
    const same = steps.length === this.subs.length && prev !== null;
    const prevSteps = same ? this.split(prev) : [];
    const subs = same ? this.subs : this.make(steps.length);
    // Only shards whose configuration changed need `dnsmasq --test`. Several (a rebuild: all K) are tested as
    // one configuration; should it fail, each is tested alone, so the complaint names the shard's own file.
    const changed = subs.flatMap((sub, i) =>
      sub.needsCheck(steps[i]!, prevSteps[i] ?? null, force) ? [i] : [],
    );
    if (changed.length > 1) {
      const combined = combinedCheckConf(changed.map((i) => steps[i]!.out.dnsmasqConf));
      if ((await subs[changed[0]!]!.test(combined)) === null) return;
    }
    await eachAtMost(startsAtOnce, changed, (i) => subs[i]!.check(steps[i]!, prevSteps[i] ?? null, force));
  }

  async apply(next: Step<DnsmasqFiles>, prev: Step<DnsmasqFiles> | null): Promise<void> {
    const steps = this.split(next);
    const restartAll = steps.length !== this.subs.length;
    if (restartAll) {
      this.ctx.log(`DHCP shards ${this.subs.length} → ${steps.length}: restarting DHCP`);
      await Promise.all(this.subs.map((s) => s.stop({})));
      this.removeShardDirs(steps.length);
      this.subs = this.make(steps.length);
      // Steered to the new shards' ports before they start, so none of their first packets goes astray.
      await this.steer(this.subs.length > 1 ? this.subs.length : null);
      await eachAtMost(startsAtOnce, this.subs, (s) => s.start(null));
      prev = null;
      this.steps = this.subs.map(() => null);
    }
    const prevSteps = prev ? this.split(prev) : [];
    const applyAll = () =>
      eachAtMost(startsAtOnce, this.subs, (s, i) =>
        s.apply(steps[i]!, prevSteps[i] ?? this.steps[i] ?? null),
      );
    // Every shard starts: one reading of /proc for all their leftover searches.
    await (restartAll && this.subs.length > 1 ? withProcessSnapshot(applyAll) : applyAll());
    this.steps = steps;
    const want = this.subs.length > 1 ? this.subs.length : null;
    if (want !== this.steering || (want !== null && this.steeringError !== null)) await this.steer(want);
  }

  /** Shard directories a different K left behind (a single dnsmasq keeps its files at the top level). */
  private removeShardDirs(k: number): void {
    for (const dir of [this.ctx.dataDir, this.ctx.leaseDir])
      for (const f of listDir(dir)) {
        const m = /^dhcp-(\d+)$/.exec(f);
        if (m && (k === 1 || Number(m[1]) >= k)) rmSync(join(dir, f), { recursive: true, force: true });
      }
  }

  ahead(base: Step<DnsmasqFiles>, delta: DesiredStateDelta): ((next: DesiredState) => boolean) | null {
    const k = this.subs.length;
    if (k === 1) return this.subs[0]!.ahead(base, delta);
    const ups = delta.hosts?.upsert ?? [];
    const removes = delta.hosts?.remove ?? [];
    // A delta that would change K takes the full path (every shard restarts).
    if (shardCount(base.state.hosts.length + ups.length - removes.length, this.ctx.dhcpShards) !== k)
      return null;
    const tests: ((next: DesiredState) => boolean)[] = [];
    for (let i = 0; i < k; i++) {
      const step = this.steps[i];
      const u = ups.filter((h) => shardOf(h.mac, k) === i);
      const r = removes.filter((m) => shardOf(m, k) === i);
      if (!step || (u.length === 0 && r.length === 0)) continue;
      const t = this.subs[i]!.ahead(step, { ...delta, hosts: { upsert: u, remove: r } });
      if (t) tests.push(t);
    }
    return tests.length ? (next) => tests.every((t) => t(next)) : null;
  }

  idle(applied: Step<DnsmasqFiles>): void {
    this.split(applied).forEach((s, i) => this.subs[i]?.idle(s));
  }

  status(applied: DesiredState | null, withDetails: boolean): ServiceStatus {
    const k = this.subs.length;
    // A shard's status reads its lease file and process, not its hosts: no per-shard state needed.
    const sts = this.subs.map((s) => s.status(applied, withDetails));
    if (k === 1) return { ...sts[0]!, report: { ...sts[0]!.report, dhcpShards: 1 } };
    const counters: Record<string, number> = {};
    for (const st of sts)
      for (const [key, v] of Object.entries(st.report.counters ?? {}))
        counters[key] = (counters[key] ?? 0) + v!;
    const ds = sts.map((s) => s.report.dnsmasq!);
    const report: ServiceStatus['report'] = {
      dnsmasq: {
        running: ds.every((d) => d.running),
        pid: ds[0]!.pid,
        restarts: ds.reduce((a, d) => a + d.restarts, 0),
        lastError: ds.find((d) => d.lastError)?.lastError ?? null,
      },
      counters,
      leaseCount: sts.reduce((a, s) => a + (s.report.leaseCount ?? 0), 0),
      dhcpShards: k,
    };
    if (withDetails) report.leases = sts.flatMap((s) => s.report.leases ?? []);
    const steering = this.steeringError
      ? {
          reason: 'DhcpSteering',
          message: `DHCP is not steered to the shards' ports: ${this.steeringError}`,
        }
      : undefined;
    return {
      report,
      down: sts.find((s) => s.down)?.down,
      degraded: sts.find((s) => s.degraded)?.degraded ?? steering,
    };
  }

  async stop(opts: { leaveRunning?: boolean }): Promise<void> {
    await Promise.all(this.subs.map((s) => s.stop(opts)));
    if (!opts.leaveRunning && this.steering !== null) await this.steer(null);
    // Each shard removed its own lease directory; theirs is under the router's.
    if (!opts.leaveRunning && this.subs.length > 1 && this.ctx.leaseDir !== this.ctx.dataDir)
      rmSync(this.ctx.leaseDir, { recursive: true, force: true });
  }
}
