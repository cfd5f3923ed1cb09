/**
 * The `simulator` driver (default; no root): every router is an in-process agent that validates and applies
 * desired states with the real agent's rules (stale generations refused, deltas only on a matching base),
 * renders the real agent's files into `<dataDir>/routers/<name>/` with the agent's own pure renderer, and
 * reports the same status shape and content hash. VMs are records only.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
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
}

export class SimulatedRouter implements RouterTransport {
  state: DesiredState | null = null;
  hash: string | null = null;
  /** Entries of the state set aside, as the real agent does (see validate-desired-state.ts). */
  held: HeldEntry[] = [];
  applies = 0;
  running = true;
  /** The public interfaces the netns driver would plug (eth2, eth3...), as the server last ensured them. */
  publicNics: PublicNicRuntime[] = [];

  constructor(
    readonly name: string,
    readonly dir: string,
  ) {}

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
      generation: this.state?.generation ?? null,
      desiredGeneration: this.state?.generation ?? null,
      hash: this.hash,
      conditions: [
        cond('Available', this.state !== null, this.state ? 'Serving' : 'NoDesiredState'),
        cond('Progressing', false, 'UpToDate'),
        this.held.length > 0
          ? {
              ...cond('Degraded', true, 'EntriesQuarantined'),
              message: `generation ${this.state?.generation} applied without ${this.held.length} ${this.held.length === 1 ? 'entry' : 'entries'}: ${describeQuarantine(this.held)}`,
            }
          : cond('Degraded', false, 'AsExpected'),
      ],
      role: this.state?.router.redundant ? 'primary' : 'standalone',
      dnsmasq: { running: this.state !== null, pid: null, restarts: 0, lastError: null },
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
    if (r.hash !== this.hash) {
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(paths.conf, r.dnsmasqConf);
      writeFileSync(paths.dhcpHostsFile, r.dhcpHosts);
      writeFileSync(join(this.dir, 'names.txt'), r.names);
      writeFileSync(join(this.dir, 'applied-state.json'), JSON.stringify(state));
      this.applies++;
    }
    this.state = state;
    this.hash = r.hash;
    return { ok: true, httpStatus: 200, status: this.status() };
  }

  async pushFull(doc: DesiredState): Promise<PushResult> {
    if (!this.running) return this.down();
    const v = validateDesiredState(JSON.parse(JSON.stringify(doc)));
    if (!v.ok)
      return { ok: false, httpStatus: 400, error: 'InvalidDesiredState', field: v.field, message: v.message };
    if (this.state && v.value.generation < this.state.generation)
      return {
        ok: false,
        httpStatus: 409,
        error: 'StaleGeneration',
        generation: this.state.generation,
        message: `generation ${v.value.generation} is older than ${this.state.generation}`,
      };
    return this.apply(v.value, v.quarantined);
  }

  async pushDelta(doc: DesiredStateDelta): Promise<PushResult> {
    if (!this.running) return this.down();
    const v = validateDelta(JSON.parse(JSON.stringify(doc)));
    if (!v.ok)
      return { ok: false, httpStatus: 400, error: 'InvalidDelta', field: v.field, message: v.message };
    if (!this.state || this.state.generation !== v.value.baseGeneration)
      return {
        ok: false,
        httpStatus: 409,
        error: 'BaseGenerationMismatch',
        generation: this.state?.generation ?? null,
        sendFull: true,
        message: 'send the full desired state',
      };
    const next = validateDesiredState(applyDelta(this.state, v.value), {
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
        running: this.state !== null,
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
  /**
   * Which VMs run: the record a simulated hypervisor keeps. Not the VMs' whole runtime (their NICs and
   * networks): with 500,000 VMs in a zone that would be most of the server's memory, and nothing reads it.
   */
  readonly vms = new Map<number, { running: boolean }>();

  constructor(readonly options: SimulatorOptions) {
    this.controlCidr = options.controlCidr ?? '169.254.0.0/16';
  }

  private dirOf(r: RouterRuntime): string {
    return join(this.options.dataDir, 'routers', r.name);
  }

  async ensureRouter(r: RouterRuntime): Promise<RouterTransport> {
    let sim = this.routers.get(r.id);
    if (!sim) {
      sim = new SimulatedRouter(r.name, this.dirOf(r));
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
    this.routers.delete(r.id);
    rmSync(this.dirOf(r), { recursive: true, force: true });
  }

  async destroyRouter(r: RouterRuntime): Promise<void> {
    this.routers.delete(r.id);
    rmSync(this.dirOf(r), { recursive: true, force: true });
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
