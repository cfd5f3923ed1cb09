/**
 * The router reconciler (DESIGN.md guarantee 5; CONVENTIONS "reconcile, don't react"). Level-based: given a
 * router id it reads the router's desired generation, then the whole desired state from the database, and the
 * agent's reported status, and converges: full state or a delta against what the agent has, retry with
 * backoff, at most one reconcile per router in flight, applied generation + hash recorded. A router that
 * rebooted or was replaced (agent reports no generation) gets the full state; drift (the agent reports a hash
 * other than the one recorded for its generation) is healed by pushing the full state under a new generation.
 *
 * With several management servers each router is reconciled by one live server at a time: the server holds a
 * lease on the router row (lease_owner/lease_until), renewed on every pass; a dead server's routers are taken
 * over once its leases lapse.
 *
 * Bounded (issue 16): a pass holds its router's whole desired state (a 10,000-VM network's is tens of megabytes)
 * from build to push, so at most `passSlots` passes build and push at once (waiting for an agent or checking a
 * converged router takes no slot), passes asked for by a change (kick, reconcile, reconcileTo) before the watch
 * loop's; the watch loop reads routers a page at a time and takes the next page only
 * when the passes it queued have drained, yielding to the event loop between pages so API calls are served during
 * a big zone's start-up pass. Between passes only a digest of the last pushed state is kept (delta-base.ts).
 * Level-based as before: a router skipped, failed or not reached before a restart is behind in the database, and
 * the next scan (of this server or another) picks it up.
 */
import { randomUUID } from 'node:crypto';
import type { AgentStatus, PushResult } from '../agent/control-client.js';
import type { DesiredState } from '../agent/desired-state.js';
import type { Store } from '../store/db.js';
import { transaction } from '../store/db.js';
import type { Driver, RouterRuntime } from '../drivers/types.js';
import { buildDesiredState } from './desired-state-builder.js';
import type { DeltaBase } from './delta-base.js';
import { baseOf, diffAgainstBase } from './delta-base.js';
import {
  bumpRouter,
  claimLease,
  clearSavedPasswords,
  loadBuildInput,
  recordError,
  recordObserved,
  releaseLeases,
  routerById,
  routersToWatchPage,
  setRouterState,
} from './repository.js';
import type { RouterRow } from './repository.js';
import { routerRuntime } from './runtime.js';

export interface ReconcilerOptions {
  store: Store;
  driver: Driver;
  /** This server's identity in leases (default: a random id per process). */
  serverId?: string;
  leaseMs?: number;
  /** How often the watch loop looks for routers that need work. */
  scanIntervalMs?: number;
  /** How often a converged router's agent is asked for its status (drift, reboot, health). */
  resyncMs?: number;
  maxBackoffMs?: number;
  log?: (msg: string) => void;
  /** Told of every pass's phases (epoch ms) when set (STACKNET_TRACE_VMS: src/vms/trace.ts, bench:e2e). */
  trace?: (event: Record<string, unknown>) => void;
  /**
   * Builds and pushes (each holding one router's desired state) at once; default STACKNET_ROUTER_PASS_SLOTS or
   * 4. Each is mostly CPU (read, build, render) or waiting on one agent's apply: a few at once keep a burst moving
   * without holding a zone's worth of states. The rest of a pass (lease, status, an agent being started) takes
   * no slot.
   */
  passSlots?: number;
  /** Routers the watch loop reads and queues at a time (default 100). */
  scanPageSize?: number;
}

export type ReconcileOutcome =
  'converged' | 'pushed' | 'stopped' | 'destroyed' | 'not-owner' | 'failed' | 'terminal' | 'gone';

interface PerRouter {
  inFlight: Promise<ReconcileOutcome> | null;
  dirty: boolean;
  failures: number;
  notBefore: number;
  lastSync: number;
  /** What the last successful push held, as digests: the base for deltas. */
  lastPushed: DeltaBase | null;
  lastPushedHash: string | null;
  /** A terminal failure (the agent rejected this generation's content): not retried until it changes. */
  terminalAt: number | null;
  /** The generation this server's last pass saw applied (pushed or found converged). */
  applied: number;
  /** reconcileTo callers waiting for a generation to be applied. */
  waiters: { generation: number; resolve: () => void }[];
  /** Set while its pass waits for a slot (the waiter's place in a queue). */
  queued: (() => void) | null;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class RouterReconciler {
  readonly serverId: string;
  private readonly leaseMs: number;
  private readonly scanIntervalMs: number;
  private readonly resyncMs: number;
  private readonly maxBackoffMs: number;
  private readonly routers = new Map<number, PerRouter>();
  private timer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> | null = null;
  private closed = false;
  private readonly passSlots: number;
  private readonly scanPageSize: number;
  private running = 0;
  /** Passes waiting for a slot: asked for by a change first, then the watch loop's. */
  private readonly waiting: { urgent: (() => void)[]; background: (() => void)[] } = {
    urgent: [],
    background: [],
  };
  readonly counters = {
    reconciles: 0,
    fullPushes: 0,
    deltaPushes: 0,
    failures: 0,
    driftHealed: 0,
    /** Desired states built and not yet let go (now, and the most at once since start). */
    statesHeld: 0,
    maxStatesHeld: 0,
  };
  /** Told of every pass and how long it took (the server's metrics set it after the subsystem starts). */
  onPass: ((outcome: ReconcileOutcome, seconds: number) => void) | undefined;

  constructor(private readonly o: ReconcilerOptions) {
    this.serverId = o.serverId ?? `ms-${randomUUID()}`;
    this.leaseMs = o.leaseMs ?? 15_000;
    this.scanIntervalMs = o.scanIntervalMs ?? 500;
    this.resyncMs = o.resyncMs ?? 5_000;
    this.maxBackoffMs = o.maxBackoffMs ?? 30_000;
    const envSlots = Number(process.env.STACKNET_ROUTER_PASS_SLOTS);
    this.passSlots = Math.max(1, o.passSlots ?? (Number.isInteger(envSlots) && envSlots > 0 ? envSlots : 4));
    this.scanPageSize = Math.max(1, o.scanPageSize ?? 100);
  }

  /** Waits for one of the pass slots; the returned function gives it back. */
  private async slot(p: PerRouter, urgent: boolean): Promise<() => void> {
    if (this.running >= this.passSlots) {
      await new Promise<void>((resolve) => {
        p.queued = resolve;
        this.waiting[urgent ? 'urgent' : 'background'].push(resolve);
      });
      p.queued = null;
    } else this.running++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      // Hand the slot straight to the next waiter (running stays the same), else free it.
      const next = this.waiting.urgent.shift() ?? this.waiting.background.shift();
      if (next) next();
      else this.running--;
    };
  }

  /** A change asked for a router whose pass waits behind the watch loop's: it goes ahead of them. */
  private promote(p: PerRouter): void {
    const i = p.queued ? this.waiting.background.indexOf(p.queued) : -1;
    if (i < 0) return;
    this.waiting.background.splice(i, 1);
    this.waiting.urgent.push(p.queued!);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.scan(), this.scanIntervalMs);
    this.timer.unref();
    void this.scan();
  }

  async stop(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.scanning?.catch(() => undefined);
    await Promise.all([...this.routers.values()].map((p) => p.inFlight?.catch(() => undefined)));
    await releaseLeases(this.o.store.db, this.serverId).catch(() => undefined);
  }

  private entry(id: number): PerRouter {
    let p = this.routers.get(id);
    if (!p) {
      p = {
        inFlight: null,
        dirty: false,
        failures: 0,
        notBefore: 0,
        lastSync: 0,
        lastPushed: null,
        lastPushedHash: null,
        terminalAt: null,
        applied: 0,
        waiters: [],
        queued: null,
      };
      this.routers.set(id, p);
    }
    return p;
  }

  /** Ask for a reconcile soon (after a change committed). Coalesces: a burst of kicks costs one or two passes. */
  kick(routerId: number): void {
    if (this.closed) return;
    const p = this.entry(routerId);
    p.notBefore = 0;
    p.terminalAt = null;
    if (p.inFlight) {
      p.dirty = true;
      this.promote(p);
      return;
    }
    void this.reconcile(routerId);
  }

  async kickNetwork(networkId: number): Promise<void> {
    const rows = await this.o.store.db
      .selectFrom('routers')
      .select('id')
      .where('network_id', '=', networkId)
      .where('state', '!=', 'Expunged')
      .execute();
    for (const r of rows) this.kick(Number(r.id));
  }

  /**
   * Reconcile one router now (or join the pass in flight and run once more after it), as soon as a pass slot is
   * free; `background` (the watch loop) waits behind passes asked for by a change.
   */
  reconcile(routerId: number, background = false): Promise<ReconcileOutcome> {
    const p = this.entry(routerId);
    if (p.inFlight) {
      p.dirty = true;
      if (!background) this.promote(p);
      return p.inFlight;
    }
    const run = async (): Promise<ReconcileOutcome> => {
      let outcome: ReconcileOutcome;
      do {
        p.dirty = false;
        // A macrotask turn before each pass: passes chained by microtasks alone (SQLite answers synchronously)
        // would keep the HTTP server from accepting, or answering, anything until the last one ends.
        await turn();
        const started = performance.now();
        outcome = await (
          this.closed ? Promise.resolve('not-owner' as const) : this.once(routerId, p, !background)
        ).catch((e: Error) => {
          this.o.log?.(`router ${routerId}: ${e.message}`);
          return 'failed' as const;
        });
        this.onPass?.(outcome, (performance.now() - started) / 1000);
        if (outcome === 'failed') {
          p.failures++;
          this.counters.failures++;
          p.notBefore = Date.now() + Math.min(this.maxBackoffMs, 250 * 2 ** Math.min(p.failures, 10));
        } else if (outcome !== 'not-owner') {
          p.failures = 0;
          p.notBefore = 0;
        }
      } while (p.dirty && !this.closed && outcome !== 'failed');
      return outcome;
    };
    p.inFlight = run().finally(() => {
      p.inFlight = null;
    });
    return p.inFlight;
  }

  /**
   * Reconcile until `generation` is applied: resolves as soon as a pass of this server has applied it (or a
   * later one), not when the router's passes stop. In a burst the router stays dirty while changes keep
   * coming, and a caller waiting for the end of all passes (reconcile) waits for every later change too; or
   * when the run ends without it (another server's lease, a failure: the caller checks the database). True when
   * a pass of this server applied it (its applied generation is recorded in the database before that), false when
   * the run ended without.
   */
  reconcileTo(routerId: number, generation: number): Promise<boolean> {
    const p = this.entry(routerId);
    if (p.applied >= generation) return Promise.resolve(true);
    let done!: () => void;
    const applied = new Promise<true>((resolve) => (done = () => resolve(true)));
    p.waiters.push({ generation, resolve: done });
    const run = this.reconcile(routerId);
    return Promise.race([applied, run.then(() => p.applied >= generation)]).finally(() => {
      p.waiters = p.waiters.filter((w) => w.resolve !== done);
    });
  }

  /** A pass saw `generation` applied: its waiters go on. */
  private settle(p: PerRouter, generation: number): void {
    p.applied = generation;
    for (const w of p.waiters) if (w.generation <= generation) w.resolve();
  }

  private async scan(): Promise<void> {
    if (this.scanning || this.closed) return;
    this.scanning = (async () => {
      try {
        for (let after = 0; !this.closed;) {
          const rows = await routersToWatchPage(this.o.store.db, after, this.scanPageSize);
          if (rows.length === 0) break;
          after = Number(rows[rows.length - 1]!.id);
          // The next page only once this one's passes are done: the loop never queues more than a page, and
          // between pages the API gets its turn (on SQLite every query of a pass answers synchronously).
          await this.drain(this.queueDue(rows));
          await new Promise((resolve) => setImmediate(resolve));
          if (rows.length < this.scanPageSize) break;
        }
      } catch (e) {
        this.o.log?.(`router scan: ${(e as Error).message}`);
      }
    })().finally(() => {
      this.scanning = null;
    });
    return this.scanning;
  }

  /** Queues a background pass for each router of the page that needs one; the passes, to wait for. */
  private queueDue(rows: RouterRow[]): Promise<ReconcileOutcome>[] {
    const now = Date.now();
    const queued: Promise<ReconcileOutcome>[] = [];
    for (const r of rows) {
      const id = Number(r.id);
      const p = this.entry(id);
      if (p.inFlight || now < p.notBefore) continue;
      // Someone else's live lease: leave it to them (its expiry is re-checked on the next scan).
      if (r.lease_owner && r.lease_owner !== this.serverId && Number(r.lease_until) > now) continue;
      const active = r.state === 'Starting' || r.state === 'Running';
      const behind =
        active &&
        (r.applied_generation === null || Number(r.applied_generation) !== Number(r.desired_generation));
      const transitional = r.state === 'Stopping' || r.state === 'Destroyed' || r.state === 'Starting';
      const due = now - p.lastSync >= this.resyncMs;
      const leaseDue = r.lease_owner === this.serverId && Number(r.lease_until) - now < this.leaseMs / 2;
      if (p.terminalAt !== null && !due) continue;
      if (!(behind || transitional || due || leaseDue)) continue;
      queued.push(this.reconcile(id, true));
    }
    return queued;
  }

  /**
   * Waits until a page's passes are done, or `resyncMs` at most: one slow pass (an agent that takes long to
   * start, a host that does not answer) must not hold up every other router's healing and lease renewal. Its
   * router stays in flight and is skipped by the next page and the next scan.
   */
  private async drain(passes: Promise<ReconcileOutcome>[]): Promise<void> {
    if (passes.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.resyncMs);
      timer.unref();
    });
    await Promise.race([Promise.allSettled(passes), late]);
    clearTimeout(timer);
  }

  private async once(routerId: number, p: PerRouter, urgent: boolean): Promise<ReconcileOutcome> {
    const db = this.o.store.db;
    const passStart = Date.now();
    this.counters.reconciles++;
    if (!(await claimLease(db, routerId, this.serverId, Date.now(), this.leaseMs))) return 'not-owner';
    const router = await routerById(db, routerId);
    if (!router) return 'gone';
    p.lastSync = Date.now();
    const rt = await routerRuntime(db, router);
    if (router.state === 'Destroyed' || router.removed !== null) {
      await this.o.driver.destroyRouter(rt);
      await setRouterState(db, routerId, 'Expunged');
      this.routers.delete(routerId);
      return 'destroyed';
    }
    if (router.state === 'Stopping' || router.state === 'Stopped') {
      await this.o.driver.stopRouter(rt);
      p.lastPushed = null;
      await recordObserved(db, routerId, this.serverId, Date.now(), {
        appliedGeneration: null,
        appliedHash: null,
        health: null,
        lastError: null,
        state: 'Stopped',
      });
      return 'stopped';
    }
    const mark = this.o.trace ? { router: routerId, start: passStart } : undefined;
    // Stopping: no new instance is made (the rows stay behind; the next server converges them).
    if (this.closed) return 'not-owner';
    const transport = await this.o.driver.ensureRouter(rt);
    const ensured = Date.now();
    const generation = Number(router.desired_generation);
    let status: AgentStatus;
    try {
      status = await transport.getStatus();
    } catch (e) {
      await recordError(
        db,
        routerId,
        this.serverId,
        Date.now(),
        `agent unreachable: ${(e as Error).message}`,
      );
      return 'failed';
    }
    if (mark) Object.assign(mark, { ensured, status: Date.now() });
    const pushedPasswords = p.lastPushed?.passwords ?? {};
    const saved = (status.savedPasswords ?? []).flatMap((ip) => {
      const password = pushedPasswords[ip];
      return password === undefined ? [] : [{ ip, password }];
    });
    if (saved.length > 0) {
      const cleared = await transaction(this.o.store, (tx) =>
        clearSavedPasswords(tx, Number(router.network_id), saved),
      );
      // The desired state moved on (passwords gone): converge to it in this same pass.
      if (cleared > 0) return this.once(routerId, p, urgent);
    }
    const converged =
      status.generation === generation &&
      router.applied_generation !== null &&
      Number(router.applied_generation) === generation &&
      status.hash !== null &&
      status.hash === router.applied_hash;
    if (converged) {
      await recordObserved(db, routerId, this.serverId, Date.now(), {
        appliedGeneration: generation,
        appliedHash: status.hash,
        health: healthOf(status),
        lastError: null,
        state: router.state === 'Starting' ? 'Running' : undefined,
      });
      this.settle(p, generation);
      if (mark) this.o.trace?.({ ev: 'pass', ...mark, converged: true, end: Date.now() });
      return 'converged';
    }
    // Not converged. Three ways to get here: the desired state moved on (push), the agent lost its state
    // (rebooted / replaced: push full), or it holds our generation with another content (drift) or a newer
    // generation than we know (a restored database): push full under a generation above both.
    let target = generation;
    const drifted =
      status.generation !== null &&
      (status.generation > generation ||
        (status.generation === generation &&
          router.applied_generation !== null &&
          Number(router.applied_generation) === generation &&
          status.hash !== router.applied_hash));
    if (drifted) {
      target = await transaction(this.o.store, (tx) =>
        bumpRouter(tx, routerId, (status.generation ?? 0) + 1),
      );
      this.counters.driftHealed++;
      this.o.log?.(
        `router ${router.name}: drift (agent generation ${status.generation}, hash ${status.hash}); re-pushing as ${target}`,
      );
      p.lastPushed = null;
    }
    const routerNow = drifted ? ((await routerById(db, routerId)) as RouterRow) : router;
    // Counted from the start of the build; passed on, not kept here, so a re-build in push() lets it go.
    // The slot is taken here, not for the whole pass: a pass that waits for its agent to start (ensureRouter on a
    // host) or only checks a converged router holds no state, and must not keep a change to another router waiting.
    const release = await this.slot(p, urgent);
    this.hold(1);
    try {
      // A turn of the event loop around each big step (read, build): on SQLite every query answers
      // synchronously, and a pass over a big network would otherwise hold the server from one end to the other.
      const input = async () => {
        await turn();
        const rows = await loadBuildInput(db, routerNow, target);
        await turn();
        return rows;
      };
      return await this.push(
        routerId,
        p,
        router,
        transport,
        status,
        buildDesiredState(await input()),
        drifted,
        mark,
      );
    } finally {
      this.hold(-1);
      release();
    }
  }

  private hold(n: 1 | -1): void {
    this.counters.statesHeld += n;
    this.counters.maxStatesHeld = Math.max(this.counters.maxStatesHeld, this.counters.statesHeld);
  }

  /** Pushes a built state (a delta against the last push when the agent still holds it) and records it. */
  private async push(
    routerId: number,
    p: PerRouter,
    router: RouterRow,
    transport: Awaited<ReturnType<Driver['ensureRouter']>>,
    status: AgentStatus,
    desired: DesiredState,
    drifted: boolean,
    mark: Record<string, unknown> | undefined,
  ): Promise<ReconcileOutcome> {
    const db = this.o.store.db;
    await turn();
    if (mark)
      Object.assign(mark, { built: Date.now(), generation: desired.generation, hosts: desired.hosts.length });
    let result: PushResult;
    const base = p.lastPushed;
    if (!drifted && base && status.generation === base.generation && status.hash === p.lastPushedHash) {
      this.counters.deltaPushes++;
      const delta = diffAgainstBase(base, desired);
      if (mark) Object.assign(mark, { delta: true, upserts: delta.hosts?.upsert?.length ?? 0 });
      result = await transport.pushDelta(delta);
      if (!result.ok && result.sendFull) {
        this.counters.fullPushes++;
        result = await transport.pushFull(desired);
      }
    } else {
      this.counters.fullPushes++;
      result = await transport.pushFull(desired);
    }
    if (!result.ok && result.error === 'StaleGeneration' && typeof result.generation === 'number') {
      const again = await transaction(this.o.store, (tx) =>
        bumpRouter(tx, routerId, result.ok ? 0 : (result.generation ?? 0) + 1),
      );
      // The state built first is let go (this pass still holds one state).
      desired = buildDesiredState(await loadBuildInput(db, (await routerById(db, routerId))!, again));
      this.counters.fullPushes++;
      result = await transport.pushFull(desired);
      if (result.ok) {
        p.lastPushed = baseOf(desired);
        p.lastPushedHash = result.status.hash;
      }
    } else if (result.ok) {
      p.lastPushed = baseOf(desired);
      p.lastPushedHash = result.status.hash;
    }
    if (!result.ok) {
      p.lastPushed = null;
      const msg = `${result.error}: ${result.message}${result.field ? ` (${result.field})` : ''}`;
      await recordError(db, routerId, this.serverId, Date.now(), msg);
      if (result.httpStatus === 400 || result.httpStatus === 422) {
        // The agent refused this content; pushing it again changes nothing. Retried when the desired state
        // changes (a kick) or on the periodic resync.
        p.terminalAt = Date.now();
        return 'terminal';
      }
      return 'failed';
    }
    if (mark) Object.assign(mark, { pushed: Date.now() });
    await recordObserved(db, routerId, this.serverId, Date.now(), {
      appliedGeneration: result.status.generation,
      appliedHash: result.status.hash,
      health: healthOf(result.status),
      lastError: null,
      state: router.state === 'Starting' ? 'Running' : undefined,
    });
    this.settle(p, result.status.generation ?? 0);
    if (mark) this.o.trace?.({ ev: 'pass', ...mark, end: Date.now() });
    return 'pushed';
  }
}

/** What getRouterHealthCheckResults shows: the agent's conditions plus the checks derived from its status. */
export function healthOf(s: AgentStatus): unknown {
  return {
    conditions: s.conditions,
    role: s.role,
    generation: s.generation,
    hash: s.hash,
    dnsmasq: s.dnsmasq,
    // DNS runs in a dnsmasq of its own; DHCP in `dhcpShards` dnsmasq instances (src/agent/appliers/dnsmasq/shards.ts).
    dns: s.dns ?? null,
    dhcpShards: s.dhcpShards ?? 1,
    keepalived: s.keepalived,
    firewall: s.firewall,
    lastFailure: s.lastFailure,
    quarantined: s.quarantined ?? [],
    leaseCount: s.leaseCount,
    // Per load balancer rule (its uuid) and member guest IP: 'UP' | 'DOWN', as haproxy last saw it (src/lb reads it).
    lb: s.lb ?? null,
  };
}

export type { RouterRuntime };
