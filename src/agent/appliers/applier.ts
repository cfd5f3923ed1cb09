/**
 * The anatomy every router service shares (CONVENTIONS.md, "One applier per router service"): a pure renderer
 * (desired state → files or rulesets, and its part of the content hash), and an applier around it that checks
 * the render with the service's own tool, replaces its files atomically, sends the cheapest signal that makes
 * the service take them, and reports what it observes. The agent core sequences appliers and knows none of
 * their formats. Types only (and ApplyFailure): importable from pure code.
 */
import type { DesiredState, DesiredStateDelta } from '../desired-state.js';
import type { AgentStatus } from '../status.js';

/** What every renderer may depend on besides the desired state. Each service derives its file paths from it. */
export interface RenderContext {
  /** The agent's data directory (mode 0700): every service's files live in it... */
  dataDir: string;
  /** ...except dnsmasq's lease file, kept on tmpfs (see lease-dir.ts). */
  leaseDir: string;
  guestInterface: string;
  /** Interface holding the control address; undefined = any interface but the guest one. */
  controlInterface?: string;
  controlPort: number;
  metadataPort: number;
  passwordPort: number;
  /** DHCP shards (shards.ts) whatever the number of hosts (the agent's `--dhcp-shards`); default by host count. */
  dhcpShards?: number;
}

/** Pure: no I/O, no clock, no randomness (lint-enforced for `appliers/*\/render*.ts`). */
export interface Renderer<Out> {
  readonly name: string;
  /** The sections of the desired state this service reads (documentation, and what a review checks render against). */
  readonly consumes: readonly (keyof DesiredState)[];
  render(state: DesiredState, ctx: RenderContext): Out;
  /**
   * This service's part of the router's content hash (`status.hash`): everything whose change must reach the
   * service. Never the generation, so a generation bump with no content change applies nothing.
   */
  digest(out: Out, state: DesiredState): string[];
}

/** A desired state and this service's render of it. */
export interface Step<Out> {
  state: DesiredState;
  out: Out;
}

/**
 * A failure that stops a generation from being applied: `reason` becomes the Degraded reason and the 422 error.
 * `retry`: the environment may heal by itself (an interface not there yet, a daemon that would not start), so the
 * core retries the same state with backoff; a render the service's tool refuses fails the same way every time.
 */
export class ApplyFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
    readonly retry = false,
  ) {
    super(message);
  }
}

/** A condition a service observes by itself (not the outcome of a push). */
export interface Observed {
  reason: string;
  message: string;
}

/** The fields of AgentStatus a service reports about itself (the wire shape stays one document). */
export type ServiceReport = Partial<Omit<AgentStatus, 'counters'>> & {
  counters?: Partial<AgentStatus['counters']>;
};

export interface ServiceStatus {
  /** Not serving: `Available` is false with this reason (the first service to say so wins). */
  down?: Observed;
  /** The running service is unwell: `Degraded` with this reason while no pushed state has failed. */
  degraded?: Observed;
  report: ServiceReport;
}

/** What the core gives each applier: options plus the router-level facts they share. */
export interface ApplierContext extends RenderContext {
  dnsmasqBinary: string;
  keepalivedBinary: string;
  /** Default `haproxy` (from PATH). */
  haproxyBinary?: string;
  /** Load firewall rulesets at all (never in the machine's own namespace, whatever this says). */
  firewall: boolean;
  log(message: string): void;
  /** Whether the router serves guests for `state`: a standalone router always, one of a pair while it holds the VIP. */
  serving(state: DesiredState | null): boolean;
  /** Look at the guest interface again for the VIP (after addresses changed), without notifying appliers. */
  observeRole(state: DesiredState): void;
  /** A problem of a running service, seen outside an apply (e.g. dnsmasq would not start on becoming primary). */
  degrade(reason: string, message: string): void;
}

/**
 * One router service. The core calls, for each generation whose hash changed: every applier's `check` (in order,
 * before anything serving is touched), then every `apply` (in order). `prev` is the step in force, or null.
 */
export interface Applier<Out = unknown> {
  readonly renderer: Renderer<Out>;
  /**
   * Guests are served from what it applies (addresses, DHCP/DNS): once every such applier has applied, the
   * generation is in force; a later applier's failure (firewall, VRRP) is reported against it.
   */
  readonly servesGuests: boolean;
  /** Degraded reasons its `status()` may observe; the core clears them once `status()` stops giving them. */
  readonly observedReasons?: readonly string[];
  /** At agent start: create its directories, adopt what a previous agent left running for `saved`. */
  start(saved: DesiredState | null): Promise<void>;
  /** Validate the render with the service's own tool; throw ApplyFailure. Must not change what is serving. */
  check(next: Step<Out>, prev: Step<Out> | null, force: boolean): Promise<void>;
  /** Atomic replace + the cheapest signal; throw ApplyFailure (leaving the last good config serving). */
  apply(next: Step<Out>, prev: Step<Out> | null, force: boolean): Promise<void>;
  /** The VRRP role changed outside an apply: start or stop serving. */
  roleChanged?(serving: boolean): void;
  /**
   * The short path of a delta, before the O(N) apply (the core calls it only while nothing is pending and the
   * delta is based on the step in force). Returns null if it did nothing, else a test the core runs on the
   * validated result: false = the early action holds something the state does not get, so the core re-applies
   * the state in force (forced).
   */
  ahead?(base: Step<Out>, delta: DesiredStateDelta): ((next: DesiredState) => boolean) | null;
  /** Nothing is pending: precompute for the next delta (e.g. the index `ahead` checks against). */
  idle?(applied: Step<Out>): void;
  status(applied: DesiredState | null, withDetails: boolean): ServiceStatus;
  /** Stop what it runs (or leave it running for a successor agent). */
  stop(opts: { leaveRunning?: boolean }): Promise<void>;
}
