/**
 * The `simulator` driver (default; no root): every router is an in-process agent that validates and applies
 * desired states with the real agent's rules (stale generations refused, deltas only on a matching base),
 * renders the real agent's files into `<dataDir>/routers/<name>/` with the agent's own pure renderer, and
 * reports the same status shape and content hash. VMs are records only.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentStatus, Condition } from '../agent/agent.js';
import type { PushResult } from '../agent/control-client.js';
import { dnsmasqPaths } from '../agent/appliers/dnsmasq/render.js';
import type { InspectQuery, Inspection } from '../agent/inspect.js';
import { inspectDnsmasqFiles } from '../agent/inspect.js';
import type { DesiredState, DesiredStateDelta } from '../agent/desired-state.js';
import { applyDelta } from '../agent/desired-state.js';
import { render } from '../agent/render/render.js';
import type { HeldEntry } from '../agent/validate-desired-state.js';
import {
  describeQuarantine,
  heldAfterDelta,
  reported,
  validateDelta,
  validateDesiredState,
} from '../agent/validate-desired-state.js';
import type { Driver, PublicNicRuntime, RouterRuntime, RouterTransport, VmRuntime } from './types.js';

export interface SimulatorOptions {
  dataDir: string;
  controlCidr?: string;
  /** Hosts of applied states kept in memory across all routers (default 20,000); the rest is read from disk. */
  stateCacheHosts?: number;
}

/**
 * The applied states the simulated routers keep in memory, the most recently used first, up to `budget` hosts in
 * all: a router's state is on disk anyway (applied-state.json, as the real agent persists it), and a zone of
 * fifty 10,000-VM routers would otherwise keep half a gigabyte of agent state in the management server.
 */
export class StateCache {
  private readonly states = new Map<SimulatedRouter, DesiredState>();
  private hosts = 0;
  constructor(private readonly budget = 20_000) {}
  get(r: SimulatedRouter): DesiredState | undefined {
    const s = this.states.get(r);
    if (s) {
      this.states.delete(r);
      this.states.set(r, s);
    }
    return s;
  }
  set(r: SimulatedRouter, s: DesiredState | null): void {
    const old = this.states.get(r);
    if (old) {
      this.states.delete(r);
      this.hosts -= old.hosts.length;
    }
    if (!s) return;
    this.states.set(r, s);
    this.hosts += s.hosts.length;
    // The state just applied stays, however big; older ones go while over the budget.
    for (const [k, v] of this.states) {
      if (this.hosts <= this.budget || k === r) break;
      this.states.delete(k);
      this.hosts -= v.hosts.length;
    }
  }
}

export class SimulatedRouter implements RouterTransport {
  hash: string | null = null;
  /** What the status needs of the applied state, kept whether or not the state itself is in memory. */
  private applied: { generation: number; redundant: boolean } | null = null;
  /** Entries of the state set aside, as the real agent does (see validate-desired-state.ts). */
  held: HeldEntry[] = [];
  applies = 0;
  running = true;
  /** The public interfaces the netns driver would plug (eth2, eth3...), as the server last ensured them. */
  publicNics: PublicNicRuntime[] = [];

  constructor(
    readonly name: string,
    readonly dir: string,
    private readonly cache: StateCache = new StateCache(),
  ) {}

  /** The applied state: from memory when the cache holds it, else read back from the file it was written to. */
  get state(): DesiredState | null {
    if (!this.applied) return null;
    let s = this.cache.get(this);
    if (!s) {
      s = JSON.parse(readFileSync(join(this.dir, 'applied-state.json'), 'utf8')) as DesiredState;
      // The file is rewritten when the content changes; a new generation of the same content is not.
      s.generation = this.applied.generation;
      this.cache.set(this, s);
    }
    return s;
  }

  /** Tests set null to stand for an agent that lost its state (a VR rebooted behind the server's back). */
  set state(s: DesiredState | null) {
    this.applied = s ? { generation: s.generation, redundant: s.router.redundant !== undefined } : null;
    this.cache.set(this, s);
  }

  private status(): AgentStatus {
    const now = new Date(0).toISOString();
    const cond = (type: Condition['type'], status: boolean, reason: string): Condition => ({
      type,
      status,
      reason,
      message: '',
      lastTransitionTime: now,
    });
    return {
      routerName: this.name,
      generation: this.applied?.generation ?? null,
      desiredGeneration: this.applied?.generation ?? null,
      hash: this.hash,
      conditions: [
        cond('Available', this.applied !== null, this.applied ? 'Serving' : 'NoDesiredState'),
        cond('Progressing', false, 'UpToDate'),
        this.held.length > 0
          ? {
              ...cond('Degraded', true, 'EntriesQuarantined'),
              message: `generation ${this.applied?.generation} applied without ${this.held.length} ${this.held.length === 1 ? 'entry' : 'entries'}: ${describeQuarantine(this.held)}`,
            }
          : cond('Degraded', false, 'AsExpected'),
      ],
      role: this.applied?.redundant ? 'primary' : 'standalone',
      dnsmasq: { running: this.applied !== null, pid: null, restarts: 0, lastError: null },
      keepalived: null,
      firewall: { loaded: false, message: 'simulator: no firewall' },
      counters: { applies: this.applies, hostsdirAdds: 0, reloads: 0, restarts: 0, leasesReleased: 0 },
      lastFailure: null,
      quarantined: reported(this.held),
      leaseCount: 0,
    };
  }

  private down(): PushResult {
    return {
      ok: false,
      httpStatus: 503,
      error: 'Unavailable',
      message: `router ${this.name} is not running`,
    };
  }

  private apply(state: DesiredState, held: HeldEntry[]): PushResult {
    this.held = held;
    const paths = dnsmasqPaths({ dataDir: this.dir, leaseDir: this.dir });
    const r = render(state, {
      paths,
      guestInterface: 'eth0',
      controlPort: 3922,
      // An appliance's agent runs no metadata or password server (router-agent --appliance).
      metadataPort: state.router.appliance ? 0 : 80,
      passwordPort: state.router.appliance ? 0 : 8080,
    });
    mkdirSync(this.dir, { recursive: true });
    if (r.hash !== this.hash) {
      writeFileSync(paths.conf, r.dnsmasqConf);
      writeFileSync(paths.dhcpHostsFile, r.dhcpHosts);
      writeFileSync(join(this.dir, 'names.txt'), r.names);
      this.applies++;
    }
    // Every time (what the hash leaves out, such as the generation, still changes): `state` reads it back.
    writeFileSync(join(this.dir, 'applied-state.json'), JSON.stringify(state));
    this.state = state;
    this.hash = r.hash;
    return { ok: true, httpStatus: 200, status: this.status() };
  }

  async pushFull(doc: DesiredState): Promise<PushResult> {
    if (!this.running) return this.down();
    const v = validateDesiredState(JSON.parse(JSON.stringify(doc)));
    if (!v.ok)
      return { ok: false, httpStatus: 400, error: 'InvalidDesiredState', field: v.field, message: v.message };
    if (this.applied && v.value.generation < this.applied.generation)
      return {
        ok: false,
        httpStatus: 409,
        error: 'StaleGeneration',
        generation: this.applied.generation,
        message: `generation ${v.value.generation} is older than ${this.applied.generation}`,
      };
    return this.apply(v.value, v.quarantined);
  }

  async pushDelta(doc: DesiredStateDelta): Promise<PushResult> {
    if (!this.running) return this.down();
    const v = validateDelta(JSON.parse(JSON.stringify(doc)));
    if (!v.ok)
      return { ok: false, httpStatus: 400, error: 'InvalidDelta', field: v.field, message: v.message };
    const base = this.state;
    if (!base || base.generation !== v.value.baseGeneration)
      return {
        ok: false,
        httpStatus: 409,
        error: 'BaseGenerationMismatch',
        generation: base?.generation ?? null,
        sendFull: true,
        message: 'send the full desired state',
      };
    const next = validateDesiredState(applyDelta(base, v.value), {
      schema: false,
      retry: heldAfterDelta(this.held, v.value, v.quarantined),
    });
    if (!next.ok)
      return { ok: false, httpStatus: 400, error: 'InvalidDelta', field: next.field, message: next.message };
    return this.apply(next.value, next.quarantined);
  }

  async getStatus(): Promise<AgentStatus> {
    if (!this.running) throw new Error(`router ${this.name} is not running`);
    return this.status();
  }

  /** The files it rendered, read back as the agent's inspection reads dnsmasq's; no leases, DNS or NAT here. */
  async inspect(q: InspectQuery): Promise<Inspection> {
    if (!this.running) throw new Error(`router ${this.name} is not running`);
    return {
      status: this.status(),
      dnsmasq: inspectDnsmasqFiles({ dataDir: this.dir, leaseDir: this.dir }, q, {
        running: this.applied !== null,
        pid: null,
      }),
      dns: null,
      nat: null,
    };
  }
}

export class SimulatorDriver implements Driver {
  readonly name = 'simulator' as const;
  readonly controlCidr: string;
  readonly routers = new Map<number, SimulatedRouter>();
  private readonly states: StateCache;
  /**
   * Which VMs run: the record a simulated hypervisor keeps. Not the VMs' whole runtime (their NICs and
   * networks): with 500,000 VMs in a zone that would be most of the server's memory, and nothing reads it.
   */
  readonly vms = new Map<number, { running: boolean }>();

  constructor(readonly options: SimulatorOptions) {
    this.controlCidr = options.controlCidr ?? '169.254.0.0/16';
    this.states = new StateCache(options.stateCacheHosts);
  }

  private dirOf(r: RouterRuntime): string {
    return join(this.options.dataDir, 'routers', r.name);
  }

  async ensureRouter(r: RouterRuntime): Promise<RouterTransport> {
    let sim = this.routers.get(r.id);
    if (!sim) {
      sim = new SimulatedRouter(r.name, this.dirOf(r), this.states);
      this.routers.set(r.id, sim);
    }
    sim.running = true;
    sim.publicNics = r.publicNics.map((n) => ({ ...n }));
    return sim;
  }

  async inspectRouter(r: RouterRuntime, q: InspectQuery): Promise<Inspection> {
    const sim = this.routers.get(r.id);
    if (!sim) throw new Error(`router ${r.name} has no instance`);
    return sim.inspect(q);
  }

  async stopRouter(r: RouterRuntime): Promise<void> {
    const sim = this.routers.get(r.id);
    if (sim) sim.running = false;
  }

  async rebootRouter(r: RouterRuntime): Promise<void> {
    // A rebooted VR comes back with nothing: everything it serves is pushed again from the database.
    this.forget(r.id);
    rmSync(this.dirOf(r), { recursive: true, force: true });
  }

  async destroyRouter(r: RouterRuntime): Promise<void> {
    this.forget(r.id);
    rmSync(this.dirOf(r), { recursive: true, force: true });
  }

  private forget(id: number): void {
    const sim = this.routers.get(id);
    if (sim) sim.state = null;
    this.routers.delete(id);
  }

  async startVm(vm: VmRuntime): Promise<void> {
    this.vms.set(vm.id, { running: true });
  }

  async stopVm(vm: VmRuntime): Promise<void> {
    this.vms.set(vm.id, { running: false });
  }

  async destroyVm(vm: VmRuntime): Promise<void> {
    this.vms.delete(vm.id);
  }

  async updateVm(_vm: VmRuntime): Promise<void> {}

  async close(): Promise<void> {}
}
