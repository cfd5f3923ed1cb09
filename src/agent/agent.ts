/**
 * The router agent's core: accepts desired states (full or delta), sets aside bad entries, coalesces bursts,
 * applies by hash by sequencing the router's appliers (appliers/: render → check → atomic replace → cheapest
 * signal, one per service), follows the VRRP role, and reports status. It knows no service's file format. One
 * instance per router; the control, metadata and password servers are thin shells around it.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Applier, ApplierContext, RenderContext, Step } from './appliers/applier.js';
import { ApplyFailure } from './appliers/applier.js';
import { createAppliers } from './appliers/index.js';
import { renderRouter } from './appliers/renderers.js';
import type { DesiredState, DesiredStateDelta, RouterSpec, VmMetadata } from './desired-state.js';
import { applianceServices, applyDelta } from './desired-state.js';
import { leaseDirFor } from './lease-dir.js';
import { PasswordAcks } from './password-acks.js';
import { canonicalJson } from './render/canonical.js';
import type { AgentStatus, Condition, ConditionType } from './status.js';
import { Conditions } from './status.js';
import { interfaceAddresses, interfaceHolding, writeAtomic } from './system.js';
import type { HeldEntry } from './validate-desired-state.js';
import {
  describeQuarantine,
  heldAfterDelta,
  reported,
  validateDelta,
  validateDesiredState,
} from './validate-desired-state.js';

export interface AgentOptions {
  dataDir: string;
  guestInterface: string;
  controlAddress: string;
  controlPort: number;
  metadataPort: number;
  passwordPort: number;
  dnsmasqBinary: string;
  keepalivedBinary: string;
  /** Load the nftables ruleset when the desired state asks for it (never in the machine's own namespace). */
  firewall: boolean;
  /** Where dnsmasq keeps its lease file; default `leaseDirFor(dataDir)` (a tmpfs when there is one). */
  leaseDir?: string;
  /** DHCP shards whatever the number of hosts (`--dhcp-shards`); default by host count (shards.ts). */
  dhcpShards?: number;
  /**
   * Run as an appliance (`--appliance internal-lb`): only its services (`applianceServices`) are created, and a
   * desired state for anything else (or a router's state for an appliance) is refused.
   */
  appliance?: RouterSpec['appliance'];
  /** The services, in apply order; default `createAppliers` (every router service, or the appliance's). */
  appliers?: (ctx: ApplierContext) => Applier[];
  log?: (message: string) => void;
  /** Told of every apply that changed something (metrics and the structured log of the router-agent command). */
  onApply?: (a: ApplyReport) => void;
}

/** One apply: each applier that ran (check + apply time) and whether it failed; `reason` when one did. */
export interface ApplyReport {
  generation: number;
  force: boolean;
  ok: boolean;
  reason?: string;
  seconds: number;
  appliers: { name: string; ok: boolean; seconds: number }[];
}

export { leaseDirFor };
export type { AgentStatus, Condition, ConditionType };

export type SubmitResult =
  | { ok: true; status: AgentStatus }
  | {
      ok: false;
      httpStatus: number;
      error: string;
      message: string;
      field?: string;
      generation?: number | null;
      sendFull?: boolean;
    };

const maxReportedQuarantine = 100;

/** Pushes closer together than this are a burst... */
const burstGapMs = 25;
/** ...and an apply waits at most this long for the rest of it. */
const coalesceMs = 20;
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Refusal = Extract<SubmitResult, { ok: false }>;
const refuse = (httpStatus: number, error: string, message: string, more: Partial<Refusal> = {}) =>
  Promise.resolve<SubmitResult>({ ok: false, httpStatus, error, message, ...more });

interface Waiter {
  generation: number;
  resolve: (r: SubmitResult) => void;
}

/** A desired state with every applier's render of it (in applier order) and the content hash. */
interface Applied {
  state: DesiredState;
  outs: unknown[];
  hash: string;
}

export class RouterAgent {
  readonly leaseDir: string;
  readonly appliers: Applier[];
  private readonly renderCtx: RenderContext;
  private readonly files: { state: string; quarantine: string };
  private applied: Applied | null = null;
  private pending: DesiredState | null = null;
  private inFlight: DesiredState | null = null;
  private loop: Promise<void> | null = null;
  private waiters: Waiter[] = [];
  private failure: { generation: number; reason: string; message: string } | null = null;
  private readonly conditions = new Conditions();
  private holdsVip = false;
  private vipTimer: NodeJS.Timeout | null = null;
  private readonly passwordAcks: PasswordAcks;
  private closed = false;
  readonly counters = { applies: 0 };

  constructor(readonly options: AgentOptions) {
    const d = options.dataDir;
    this.leaseDir = options.leaseDir ?? leaseDirFor(d);
    this.files = { state: join(d, 'applied-state.json'), quarantine: join(d, 'quarantined.json') };
    this.passwordAcks = new PasswordAcks(join(d, 'saved-passwords.json'));
    this.renderCtx = {
      dataDir: d,
      leaseDir: this.leaseDir,
      guestInterface: options.guestInterface,
      controlInterface: interfaceHolding(options.controlAddress),
      controlPort: options.controlPort,
      metadataPort: options.metadataPort,
      passwordPort: options.passwordPort,
      ...(options.dhcpShards !== undefined ? { dhcpShards: options.dhcpShards } : {}),
    };
    const ctx: ApplierContext = {
      ...this.renderCtx,
      dnsmasqBinary: options.dnsmasqBinary,
      keepalivedBinary: options.keepalivedBinary,
      firewall: options.firewall,
      log: (m) => this.log(m),
      serving: (state) => this.serving(state),
      observeRole: (state) => {
        if (state.router.redundant) this.holdsVip = this.vipHeld(state);
      },
      degrade: (reason, message) => this.setCondition('Degraded', true, reason, message),
    };
    this.appliers = options.appliers
      ? options.appliers(ctx)
      : createAppliers(ctx, options.appliance ? applianceServices[options.appliance] : undefined);
    this.setCondition('Available', false, 'NoDesiredState', 'waiting for the first desired state');
    this.setCondition('Progressing', false, 'Idle', '');
    this.setCondition('Degraded', false, 'AsExpected', '');
  }

  private log(message: string): void {
    this.options.log?.(message);
  }

  /** Load the last applied state, adopt running services, and converge without restarting them if nothing changed. */
  async start(): Promise<void> {
    // 0700: the applied state holds one-shot passwords and user data.
    mkdirSync(this.options.dataDir, { recursive: true, mode: 0o700 });
    this.passwordAcks.load();
    let saved: DesiredState | null = null;
    try {
      let retry: HeldEntry[] = [];
      try {
        retry = JSON.parse(readFileSync(this.files.quarantine, 'utf8')) as HeldEntry[];
      } catch {
        /* nothing was quarantined */
      }
      const v = validateDesiredState(JSON.parse(readFileSync(this.files.state, 'utf8')), { retry });
      if (v.ok) {
        saved = v.value;
        this.held.set(saved, v.quarantined);
      }
    } catch {
      /* first start */
    }
    if (saved?.router.redundant) this.holdsVip = this.vipHeld(saved);
    for (const a of this.appliers) await a.start(saved);
    this.vipTimer = setInterval(() => this.checkVip(), 100);
    this.vipTimer.unref();
    if (saved) {
      this.pending = saved;
      this.forceNext = true;
      await this.kick();
    }
  }

  private forceNext = false;
  private lastArrival = -Infinity;
  private burst = false;
  /** Pushes being received by the control API (body not yet parsed and submitted). */
  private incoming = 0;

  /** The control API calls this around receiving a push, so bursts can be coalesced. */
  receiving(delta: 1 | -1): void {
    this.incoming = Math.max(0, this.incoming + delta);
  }

  /** Stop everything this agent runs, in reverse order (keepalived first, so the peer takes the address at once). */
  async stop(opts: { leaveRunning?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (this.vipTimer) clearInterval(this.vipTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.loop) await this.loop.catch(() => undefined);
    this.flushPersist();
    for (const a of [...this.appliers].reverse()) await a.stop(opts);
  }

  // ---- the VRRP role ----

  private vipHeld(state: DesiredState): boolean {
    return interfaceAddresses(this.options.guestInterface).includes(state.network.gateway);
  }

  private serving(state: DesiredState | null = this.applied?.state ?? null): boolean {
    return !state?.router.redundant || this.holdsVip;
  }

  get role(): AgentStatus['role'] {
    const s = this.applied?.state ?? this.inFlight;
    if (!s?.router.redundant) return 'standalone';
    return this.holdsVip ? 'primary' : 'backup';
  }

  /** keepalived moves the VIP by itself; the services that follow the primary are told when it came or went. */
  private checkVip(): void {
    const s = this.applied?.state;
    if (!s?.router.redundant || this.closed) return;
    const holds = this.vipHeld(s);
    if (holds === this.holdsVip) return;
    this.holdsVip = holds;
    this.log(`redundant state: ${holds ? 'PRIMARY' : 'BACKUP'}`);
    for (const a of this.appliers) a.roleChanged?.(holds);
  }

  // ---- accepting desired states ----

  /** The newest accepted state: what a delta's base generation is checked against. */
  private latest(): DesiredState | null {
    return this.pending ?? this.inFlight ?? this.applied?.state ?? null;
  }

  /** The desired state in force (what GET /v1/desired-state returns). */
  get appliedState(): DesiredState | null {
    return this.applied?.state ?? null;
  }

  get currentGeneration(): number | null {
    return this.latest()?.generation ?? null;
  }

  /** Entries set aside from each accepted state (see validate-desired-state.ts). */
  private readonly held = new WeakMap<DesiredState, HeldEntry[]>();

  private heldOf(state: DesiredState | null | undefined): HeldEntry[] {
    return (state && this.held.get(state)) ?? [];
  }

  submitFull(doc: unknown, wait = true): Promise<SubmitResult> {
    const v = validateDesiredState(doc);
    if (!v.ok) return refuse(400, 'InvalidDesiredState', `${v.field} ${v.message}`, { field: v.field });
    const state = v.value;
    if (state.router.appliance !== this.options.appliance)
      return refuse(
        400,
        'InvalidDesiredState',
        `router.appliance ${state.router.appliance ?? '(none: a router)'} is not what this agent runs (${this.options.appliance ?? 'a router'})`,
        { field: 'router.appliance' },
      );
    const latest = this.latest();
    if (latest && state.generation < latest.generation)
      return refuse(
        409,
        'StaleGeneration',
        `generation ${state.generation} is older than ${latest.generation}, which this router already has`,
        { generation: latest.generation },
      );
    if (latest && state.generation === latest.generation && canonicalJson(state) !== canonicalJson(latest))
      return refuse(
        409,
        'GenerationConflict',
        `generation ${state.generation} was already accepted with different content; bump the generation`,
        { generation: latest.generation },
      );
    this.held.set(state, v.quarantined);
    return this.enqueue(state, wait);
  }

  submitDelta(doc: unknown, wait = true): Promise<SubmitResult> {
    const v = validateDelta(doc);
    if (!v.ok) return refuse(400, 'InvalidDelta', `${v.field} ${v.message}`, { field: v.field });
    const delta: DesiredStateDelta = v.value;
    const latest = this.latest();
    if (!latest || latest.generation !== delta.baseGeneration)
      return refuse(
        409,
        'BaseGenerationMismatch',
        `delta is based on generation ${delta.baseGeneration} but this router has ${latest?.generation ?? 'none'}; send the full desired state`,
        { generation: latest?.generation ?? null, sendFull: true },
      );
    const kept = this.ahead(latest, delta);
    const next = applyDelta(latest, delta);
    if (next.router.appliance !== this.options.appliance)
      return refuse(400, 'InvalidDelta', 'router.appliance is not what this agent runs', {
        field: 'router.appliance',
      });
    const full = validateDesiredState(next, {
      schema: false,
      retry: heldAfterDelta(this.heldOf(latest), delta, v.quarantined),
    });
    // A short path acted on something the state does not get (refused, or quarantined by a rule between
    // entries): put the services back on the applied state (a forced apply).
    if (kept && (!full.ok || !kept(full.value))) this.reapplyApplied();
    if (!full.ok)
      return refuse(400, 'InvalidDelta', `after applying the delta, ${full.field} ${full.message}`, {
        field: full.field,
      });
    this.held.set(full.value, full.quarantined);
    return this.enqueue(full.value, wait);
  }

  /**
   * The short path of a delta based on the state in force while nothing else is pending: the first applier that
   * takes it acts before the O(N) work (apply the delta to the whole document, validate, render, hash), which
   * follows as usual and finds that service already changed.
   */
  private ahead(base: DesiredState, delta: DesiredStateDelta): ((next: DesiredState) => boolean) | null {
    const a = this.applied;
    if (this.loop || this.pending || this.inFlight || !a || a.state !== base) return null;
    for (const [i, applier] of this.appliers.entries()) {
      const kept = applier.ahead?.({ state: a.state, out: a.outs[i] }, delta);
      if (kept) return kept;
    }
    return null;
  }

  private reapplyApplied(): void {
    if (!this.applied) return;
    this.pending = this.pending ?? this.applied.state;
    this.forceNext = true;
    void this.kick();
  }

  private enqueue(state: DesiredState, wait: boolean): Promise<SubmitResult> {
    const t = performance.now();
    this.burst = t - this.lastArrival < burstGapMs;
    this.lastArrival = t;
    this.pending = state;
    this.setCondition('Progressing', true, 'Applying', `applying generation ${state.generation}`);
    const p = wait
      ? new Promise<SubmitResult>((resolve) => this.waiters.push({ generation: state.generation, resolve }))
      : Promise.resolve<SubmitResult>({ ok: true, status: this.status(false) });
    void this.kick();
    return p;
  }

  /**
   * One apply at a time; whatever arrives meanwhile is merged into the next one (only the newest state is
   * applied), so N updates arriving together cost at most two applies, never N reloads.
   */
  private kick(): Promise<void> {
    if (this.loop) return this.loop;
    this.loop = (async () => {
      while (this.pending && !this.closed) {
        // When pushes arrive in quick succession (a burst), gather them while they keep coming and apply the
        // newest in one go (one hostsdir file, at most one SIGHUP) instead of paying dnsmasq's re-read per host;
        // a lone change goes out at once.
        await new Promise((r) => setImmediate(r));
        if (this.burst) {
          const until = performance.now() + coalesceMs;
          while (performance.now() < until && (this.incoming > 0 || performance.now() - this.lastArrival < 5))
            await delay(1);
        }
        if (!this.pending) break;
        const s = this.pending;
        this.pending = null;
        this.inFlight = s;
        const force = this.forceNext;
        this.forceNext = false;
        try {
          await this.apply(s, force);
          this.failure = null;
          this.settleDegraded();
          if (!this.pending) this.setCondition('Progressing', false, 'UpToDate', '');
          this.settle(s.generation, null);
          if (!this.pending && this.applied) {
            const a = this.applied;
            this.appliers.forEach((applier, i) => applier.idle?.({ state: a.state, out: a.outs[i] }));
          }
          this.passwordAcks.prune(s.passwords);
        } catch (e) {
          const f = e instanceof ApplyFailure ? e : new ApplyFailure('ApplyFailed', (e as Error).message);
          this.failure = { generation: s.generation, reason: f.reason, message: f.message };
          this.log(`generation ${s.generation} not applied: ${f.reason}: ${f.message}`);
          this.setCondition(
            'Degraded',
            true,
            f.reason,
            `generation ${s.generation} not applied (${f.message}); generation ${this.applied?.state.generation ?? 'none'} keeps serving`,
          );
          if (!this.pending) this.setCondition('Progressing', false, 'UpToDate', '');
          this.settle(s.generation, f);
          if (f.retry) this.scheduleRetry(s);
        } finally {
          this.inFlight = null;
        }
      }
      this.setCondition('Progressing', false, 'UpToDate', '');
      this.refreshAvailable();
    })().finally(() => {
      this.loop = null;
      // A state enqueued after the loop's last look but before this point (in-process callers resuming on the
      // settled waiter) found the loop still set: start it again rather than leave that state for the next push.
      if (this.pending && !this.closed) void this.kick();
    });
    return this.loop;
  }

  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 1000;

  /**
   * Failures of the environment (interface not there yet, a daemon that would not start) heal by themselves, so
   * the agent retries the same state with backoff; a render a service's tool rejects fails the same way every
   * time and waits for the server to send something else.
   */
  private scheduleRetry(state: DesiredState): void {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const wait = this.retryDelayMs;
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.closed || this.pending || this.failure?.generation !== state.generation) return;
      this.pending = state;
      this.forceNext = true;
      void this.kick();
    }, wait);
    this.retryTimer.unref();
  }

  private settle(generation: number, failure: ApplyFailure | null): void {
    if (!failure) this.retryDelayMs = 1000;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.generation > generation) {
        still.push(w);
      } else if (failure && w.generation === generation) {
        w.resolve({
          ok: false,
          httpStatus: 422,
          error: failure.reason,
          message: failure.message,
          generation: this.applied?.state.generation ?? null,
        });
      } else {
        w.resolve({ ok: true, status: this.status(false) });
      }
    }
    this.waiters = still;
  }

  // ---- applying ----

  /**
   * Render every service; an unchanged hash applies nothing. Otherwise every applier checks its render before
   * anything serving is touched (a refused one leaves the last good configuration everywhere), then each applies
   * in order. The state is in force once the appliers serving guests have applied.
   */
  private async apply(state: DesiredState, force: boolean): Promise<void> {
    const prev = this.applied;
    const { outs, hash } = renderRouter(
      state,
      this.renderCtx,
      this.appliers.map((a) => a.renderer),
    );
    const next: Applied = { state, outs, hash };
    if (!force && prev && prev.hash === hash) {
      this.applied = next;
      this.persist();
      return;
    }
    this.counters.applies++;
    const step = (a: Applied | null, i: number): Step<unknown> | null =>
      a && { state: a.state, out: a.outs[i] };
    const started = performance.now();
    const spent = this.appliers.map(() => -1);
    let at = -1;
    let reason: string | undefined;
    const timed = async (i: number, fn: () => Promise<void>) => {
      at = i;
      const t = performance.now();
      try {
        await fn();
      } finally {
        spent[i] = Math.max(spent[i] ?? 0, 0) + (performance.now() - t);
      }
    };
    try {
      for (const [i, applier] of this.appliers.entries())
        await timed(i, () => applier.check(step(next, i)!, step(prev, i), force));
      const inForceAfter = this.appliers.findLastIndex((a) => a.servesGuests);
      for (const [i, applier] of this.appliers.entries()) {
        await timed(i, () => applier.apply(step(next, i)!, step(prev, i), force));
        if (i === inForceAfter) {
          this.applied = next;
          this.persist();
        }
      }
      if (inForceAfter < 0) {
        this.applied = next;
        this.persist();
      }
      at = -1;
    } catch (e) {
      reason = e instanceof ApplyFailure ? e.reason : 'ApplyFailed';
      throw e;
    } finally {
      this.options.onApply?.({
        generation: state.generation,
        force,
        ok: reason === undefined,
        reason,
        seconds: (performance.now() - started) / 1000,
        appliers: this.appliers.flatMap((a, i) =>
          (spent[i] ?? -1) < 0
            ? []
            : [{ name: a.renderer.name, ok: i !== at, seconds: (spent[i] ?? 0) / 1000 }],
        ),
      });
    }
  }

  private persistTimer: NodeJS.Timeout | null = null;

  /**
   * The applied state is saved off the request path (a few ms for thousands of hosts): losing the last write in
   * a crash only means the restarted agent reloads once and the server re-sends the newest generation.
   */
  private persist(): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => this.flushPersist(), 50);
  }

  private flushPersist(): void {
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = null;
    if (!this.applied) return;
    writeAtomic(this.files.state, JSON.stringify(this.applied.state));
    const q = this.heldOf(this.applied.state);
    if (q.length > 0) writeAtomic(this.files.quarantine, JSON.stringify(q));
    else rmSync(this.files.quarantine, { force: true });
  }

  // ---- status ----

  private setCondition(type: ConditionType, status: boolean, reason: string, message: string): void {
    this.conditions.set(type, status, reason, message);
  }

  /**
   * Degraded when nothing failed: true while the state in force has quarantined entries (the rest is served;
   * the message names them so the operator can fix the rows), false otherwise.
   */
  private settleDegraded(): void {
    const s = this.applied?.state;
    const q = this.heldOf(s);
    if (!s || q.length === 0) {
      this.setCondition('Degraded', false, 'AsExpected', '');
      return;
    }
    const message = `generation ${s.generation} applied without ${q.length} ${q.length === 1 ? 'entry' : 'entries'}: ${describeQuarantine(q)}`;
    if (this.conditions.get('Degraded')?.message !== message) this.log(message);
    this.setCondition('Degraded', true, 'EntriesQuarantined', message);
  }

  private refreshAvailable(services = this.serviceStatuses(false)): void {
    const down = services.find((s) => s.down)?.down;
    if (!this.applied) {
      this.setCondition('Available', false, 'NoDesiredState', 'no desired state applied yet');
    } else if (!this.serving()) {
      this.setCondition(
        'Available',
        true,
        'Backup',
        'backup of a redundant pair: services follow the primary',
      );
    } else if (down) {
      this.setCondition('Available', false, down.reason, down.message);
    } else {
      this.setCondition('Available', true, 'Serving', `serving generation ${this.applied.state.generation}`);
    }
  }

  private serviceStatuses(withDetails: boolean) {
    const s = this.applied?.state ?? null;
    return this.appliers.map((a) => a.status(s, withDetails));
  }

  status(withLeases = true): AgentStatus {
    const services = this.serviceStatuses(withLeases);
    this.refreshAvailable(services);
    // Problems of a running service (not of a pushed state) show as Degraded while they last.
    if (!this.failure) {
      const degraded = services.find((s) => s.degraded)?.degraded;
      const reason = this.conditions.get('Degraded')?.reason ?? '';
      if (degraded) this.setCondition('Degraded', true, degraded.reason, degraded.message);
      else if (this.appliers.some((a) => a.observedReasons?.includes(reason))) this.settleDegraded();
    }
    const st = {
      routerName: this.applied?.state.router.name ?? null,
      generation: this.applied?.state.generation ?? null,
      desiredGeneration: this.latest()?.generation ?? null,
      hash: this.applied?.hash ?? null,
      conditions: this.conditions.list(),
      role: this.role,
    } as AgentStatus;
    const counters: Record<string, number> = { ...this.counters };
    for (const { report } of services) {
      const { counters: c, ...rest } = report;
      Object.assign(st, rest);
      Object.assign(counters, c);
    }
    st.counters = counters as AgentStatus['counters'];
    st.lastFailure = this.failure;
    st.savedPasswords = this.passwordAcks.ackedOf(this.applied?.state.passwords ?? {});
    st.quarantined = reported(this.heldOf(this.applied?.state).slice(0, maxReportedQuarantine));
    return st;
  }

  // ---- metadata and passwords (served from memory by guest-services.ts) ----

  /** Only the primary (or a standalone router) serves metadata and passwords; a backup holds no VIP anyway. */
  get servesGuests(): boolean {
    return this.applied !== null && this.serving();
  }

  isRouterAddress(local: string): boolean {
    const s = this.applied?.state;
    return !!s && (local === s.network.gateway || local === s.router.guestIp);
  }

  metadataFor(ip: string): VmMetadata | undefined {
    const md = this.applied?.state.metadata;
    return md && Object.prototype.hasOwnProperty.call(md, ip) ? md[ip] : undefined;
  }

  /**
   * `send_my_password`: the guest's password, again and again until the guest acknowledges it with
   * `saved_password` — CloudStack's password server forgets a password only on that acknowledgement, so a guest
   * whose first answer was lost (timeout, retry) still gets it. Then `saved_password` (null here).
   */
  passwordFor(ip: string): string | null {
    return this.passwordAcks.passwordFor(this.applied?.state.passwords ?? {}, ip);
  }

  /**
   * `saved_password` from the guest's own address: it has stored the password; never serve that one again. The
   * address is reported in `status.savedPasswords` until the server has dropped the password.
   */
  ackPassword(ip: string): void {
    this.passwordAcks.ack(this.applied?.state.passwords ?? {}, ip);
  }
}
