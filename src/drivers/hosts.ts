/**
 * The `hosts` driver (issue 19): routers and VMs run on registered hosts, each converged by its `stacknet
 * host-agent` to the desired state the server computes from the database (src/hosts/desired-state.ts). The
 * driver's part is placement (src/hosts/placement.ts, recorded in `vms.host_id` / `routers.host_id`), bumping
 * the hosts whose content changed, and waiting for what the hosts report:
 *
 * - `ensureRouter` keeps a router on its host while that host is Up and not in maintenance, else places it
 *   anew (a Down host's routers are rebuilt elsewhere by the reconciler's next pass); it answers a transport
 *   through the host agent's relay `/v1/routers/<name>/...` once the relayed agent answers. The two routers
 *   of a redundant pair go to different hosts when there are two; a VPC's tier routers all go to one host (the
 *   first one's, by FirstFit), where their transit `vpc0` is a bridge (`vpcRouterHost`).
 * - `startVm` places the VM (its host, else its last host, else FirstFit; a libvirt VM while its routers
 *   converge, `startVmAfter`), then waits up to
 *   `stacknet.host.vm.wait` seconds for the host to report it Running; `stopVm` / `destroyVm` likewise for
 *   Stopped / gone. A host's refusal (`Error`) or silence fails the job with a CloudStack error naming the host
 *   and what it said. A VM on a host that is Down stays there (reported by listVirtualMachines' hostcontrolstate
 *   and the host alert), never moved.
 */
import { getInspection, getStatus, pushDelta, pushFull } from '../agent/control-client.js';
import type { AgentAddress } from '../agent/control-client.js';
import type { InspectQuery, Inspection } from '../agent/inspect.js';
import type { Store } from '../store/db.js';
import { CloudStackError } from '../errors/catalogue.js';
import { getSetting } from '../configuration/repository.js';
import { APPLIANCE_ROLE, routerById } from '../routers/repository.js';
import { netDb } from '../networks/tables.js';
import { HOST_RELAY_AUTH_HEADER } from '../hosts/protocol.js';
import type { HostStatus } from '../hosts/protocol.js';
import { hostById, hostSecret, reportedStatus } from '../hosts/repository.js';
import type { HostRow } from '../hosts/repository.js';
import { backendFor, overrides, refreshHostDesired } from '../hosts/desired-state.js';
import { nextReport } from '../hosts/reports.js';
import { chooseHost, chooseHosts, noHostReason } from '../hosts/placement.js';
import type { Driver, RouterRuntime, RouterTransport, VmRuntime } from './types.js';

export interface HostsDriverOptions {
  store: Store;
  controlCidr: string;
  log?: (m: string) => void;
  /** How long ensureRouter waits for a newly placed router's agent to answer through the relay (ms). */
  routerUpMs?: number;
}

type Want = 'Running' | 'Stopped' | 'gone';

/** A VM to place: where it may go (chooseHost's options) and what it needs. */
interface VmPlacement {
  vmId: number;
  zoneId: number;
  need: { memoryMiB: number; cpuMhz: number };
  prefer: (number | null)[];
  counted: { hostId: number | null };
}

/** How long a job waiting for a VM waits for its host's report before it asks the agent itself (ms). */
const REPORT_FALLBACK_MS = 1000;

const hostBase = (h: HostRow) => `http://${h.address.includes(':') ? `[${h.address}]` : h.address}:${h.port}`;

/** A host keeps what it runs while Up and not being emptied for maintenance (Disabled only stops new placements). */
const keepsRouters = (h: HostRow | undefined): boolean =>
  !!h &&
  h.removed === null &&
  h.state === 'Up' &&
  (h.resource_state === 'Enabled' || h.resource_state === 'Disabled');

export class HostsDriver implements Driver {
  readonly name = 'hosts' as const;
  readonly controlCidr: string;

  constructor(private readonly o: HostsDriverOptions) {
    this.controlCidr = o.controlCidr;
  }

  private get db() {
    return this.o.store.db;
  }

  private async hostAddress(h: HostRow, path = ''): Promise<AgentAddress> {
    const secret = await hostSecret(this.db, h);
    return { base: `${hostBase(h)}${path}`, headers: { [HOST_RELAY_AUTH_HEADER]: `Bearer ${secret ?? ''}` } };
  }

  /** The host's status from its agent (kept as its last report), or its last heartbeat's when it does not answer. */
  private async hostStatus(h: HostRow): Promise<{ status: HostStatus | null; error?: string }> {
    try {
      const secret = (await hostSecret(this.db, h)) ?? '';
      const s = (await getStatus(await this.hostAddress(h), secret, {
        timeoutMs: 5000,
      })) as unknown as HostStatus;
      await this.db
        .updateTable('hosts')
        .set({ status: JSON.stringify(s), applied_generation: s.appliedGeneration })
        .where('id', '=', h.id)
        .execute();
      return { status: s };
    } catch (e) {
      const last = await hostById(this.db, Number(h.id));
      return { status: last ? reportedStatus(last) : null, error: (e as Error).message };
    }
  }

  private routerAddress(h: HostRow, r: RouterRuntime): Promise<AgentAddress> {
    return this.hostAddress(h, `/v1/routers/${encodeURIComponent(r.name)}`);
  }

  private async transport(h: HostRow, r: RouterRuntime): Promise<RouterTransport> {
    const addr = await this.routerAddress(h, r);
    return {
      pushFull: (state, o) => pushFull(addr, r.secret, state, o),
      pushDelta: (delta, o) => pushDelta(addr, r.secret, delta, o),
      getStatus: () => getStatus(addr, r.secret),
    };
  }

  /** The router's host, placing it first when it has none that keeps it. */
  private placements: Promise<unknown> = Promise.resolve();

  /**
   * One placement at a time in this server: each choice sees the hosts the ones before it took (a burst of
   * deploys spreads over the hosts instead of all reading the same counts and piling onto one).
   */
  private placing<T>(choose: () => Promise<T>): Promise<T> {
    const next = this.placements.then(choose, choose);
    this.placements = next.catch(() => undefined);
    return next;
  }

  /** VM placements waiting for the next batch (`placeInBatch`), and whether that batch is queued yet. */
  private vmPlacements: (VmPlacement & {
    done: (h: HostRow | null) => void;
    failed: (e: unknown) => void;
  })[] = [];
  private vmBatchQueued = false;

  /**
   * A VM's placement, recorded (`vms.host_id`): the VMs whose placement waits for the one under way are chosen
   * together when its turn comes (`chooseHosts`: one reading of the hosts' loads, each choice counted for the
   * next), instead of one after another, each reading the loads again (a burst of six on a loaded SQLite: the
   * sixth VM's placement began 0.6 s after the first's).
   */
  private placeInBatch(p: VmPlacement): Promise<HostRow | null> {
    return new Promise((done, failed) => {
      this.vmPlacements.push({ ...p, done, failed });
      if (this.vmBatchQueued) return;
      this.vmBatchQueued = true;
      void this.placing(async () => {
        this.vmBatchQueued = false;
        const batch = this.vmPlacements.splice(0);
        const zones = new Map<number, typeof batch>();
        for (const b of batch) {
          const same = zones.get(b.zoneId);
          if (same) same.push(b);
          else zones.set(b.zoneId, [b]);
        }
        for (const [zoneId, reqs] of zones) {
          try {
            const hosts = await chooseHosts(this.db, zoneId, reqs);
            await Promise.all(
              reqs.map(async (r, i) => {
                const chosen = hosts[i]!;
                if (chosen && Number(chosen.id) !== r.counted.hostId)
                  await this.db
                    .updateTable('vms')
                    .set({ host_id: Number(chosen.id), last_host_id: Number(chosen.id) })
                    .where('id', '=', r.vmId)
                    .execute();
                r.done(chosen);
              }),
            );
          } catch (e) {
            // Those already answered keep their host (a settled promise ignores this).
            for (const r of reqs) r.failed(e);
          }
        }
      });
    });
  }

  private async routerHost(r: RouterRuntime): Promise<HostRow> {
    const row = await routerById(this.db, r.id);
    if (!row) throw new Error(`router ${r.name} is gone`);
    const current = row.host_id === null ? undefined : await hostById(this.db, Number(row.host_id));
    if (current && keepsRouters(current)) return current;
    const need = {
      memoryMiB: Number(await getSetting(this.db, 'router.ram.size')),
      cpuMhz: Number(await getSetting(this.db, 'router.cpu.mhz')),
    };
    // Asked inside the placement turn: a sibling placed a moment ago (a VPC's routers rebuilt together) counts.
    const chosen = await this.placing(async () => {
      const c =
        (await this.vpcRouterHost(r)) ??
        (await chooseHost(this.db, r.zoneId, need, { avoid: await this.pairHosts(r) }));
      if (c) await this.db.updateTable('routers').set({ host_id: c.id }).where('id', '=', r.id).execute();
      return c;
    });
    if (!chosen)
      throw new Error(`router ${r.name} cannot be placed: ${await noHostReason(this.db, r.zoneId, need)}`);
    this.o.log?.(
      `router ${r.name} placed on host ${chosen.name}${current ? ` (was on ${current.name}, ${current.state}/${current.resource_state})` : ''}`,
    );
    if (current) await refreshHostDesired(this.db, Number(current.id));
    return chosen;
  }

  /** The hosts of the other router of a redundant pair (a different host when the zone has one). */
  private async pairHosts(r: RouterRuntime): Promise<number[]> {
    if (!r.redundant) return [];
    const peers = await this.db
      .selectFrom('routers')
      .select('host_id')
      .where('network_id', '=', r.network.id)
      .where('id', '!=', r.id)
      .where('removed', 'is', null)
      .where('role', 'in', ['primary', 'backup'])
      .execute();
    return peers.flatMap((p) => (p.host_id === null ? [] : [Number(p.host_id)]));
  }

  /**
   * A VPC tier router goes where the VPC's other tier routers run (on a host that keeps them), whatever its
   * room: the tiers' routers reach each other over the VPC transit, a bridge on that one host (src/hostagent,
   * netns-vpc.ts), as CloudStack's VPC is one router with a NIC per tier. The first tier router of a VPC (or the
   * first rebuilt after its host failed) is placed by FirstFit; the others follow it. Internal LB appliances sit
   * on their tier's network only, so they are placed like any router.
   */
  private async vpcRouterHost(r: RouterRuntime): Promise<HostRow | null> {
    if (r.vpcId === null || r.appliance) return null;
    const siblings = await netDb(this.db)
      .selectFrom('routers')
      .innerJoin('networks', 'networks.id', 'routers.network_id')
      .select('routers.host_id')
      .where('networks.vpc_id', '=', r.vpcId)
      .where('routers.id', '!=', r.id)
      .where('routers.removed', 'is', null)
      .where('routers.role', '!=', APPLIANCE_ROLE)
      .where('routers.state', 'in', ['Starting', 'Running'])
      .where('routers.host_id', 'is not', null)
      .orderBy('routers.id')
      .execute();
    for (const s of siblings) {
      const h = await hostById(this.db, Number(s.host_id));
      if (h && keepsRouters(h)) return h;
    }
    return null;
  }

  async ensureRouter(r: RouterRuntime): Promise<RouterTransport> {
    const h = await this.routerHost(r);
    await refreshHostDesired(this.db, Number(h.id));
    const t = await this.transport(h, r);
    // A router just placed takes its host agent a moment (namespace, agent start): wait for it as netns does,
    // but not for a host that stops being Up meanwhile (it was cut off): the next pass places the router elsewhere.
    const deadline = Date.now() + (this.o.routerUpMs ?? 20_000);
    for (let tries = 1; ; tries++) {
      try {
        await t.getStatus();
        return t;
      } catch (e) {
        const now = tries % 5 === 0 ? await hostById(this.db, Number(h.id)) : h;
        if (Date.now() > deadline || !keepsRouters(now)) {
          const why = keepsRouters(now) ? '' : ` (the host is ${now?.state ?? 'gone'})`;
          throw new Error(
            `router ${r.name} on host ${h.name} does not answer${why}: ${(e as Error).message}`,
            {
              cause: e,
            },
          );
        }
        await new Promise((res) => setTimeout(res, 200));
      }
    }
  }

  async inspectRouter(r: RouterRuntime, q: InspectQuery): Promise<Inspection> {
    const row = await routerById(this.db, r.id);
    const h = row?.host_id == null ? undefined : await hostById(this.db, Number(row.host_id));
    if (!h) throw new Error(`router ${r.name} is on no host`);
    return getInspection(await this.routerAddress(h, r), r.secret, q);
  }

  /** Refreshes the router's host and waits (bounded, never failing) until the host no longer runs it. */
  private async routerOff(r: RouterRuntime): Promise<void> {
    const row = await routerById(this.db, r.id);
    const h = row?.host_id == null ? undefined : await hostById(this.db, Number(row.host_id));
    if (!h) return;
    await refreshHostDesired(this.db, Number(h.id));
    if (h.state !== 'Up') return;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      // Armed before the look: a report landing while the agent is asked still wakes the next one.
      const reported = nextReport(Number(h.id), REPORT_FALLBACK_MS);
      const { status } = await this.hostStatus(h);
      if (status && !status.routers.some((x) => x.name === r.name && x.running)) return;
      await reported;
    }
    this.o.log?.(`router ${r.name}: host ${h.name} still reports it running`);
  }

  async stopRouter(r: RouterRuntime): Promise<void> {
    await this.routerOff(r);
  }

  async rebootRouter(r: RouterRuntime): Promise<void> {
    overrides.absentRouters.add(r.id);
    try {
      await this.routerOff(r);
    } finally {
      overrides.absentRouters.delete(r.id);
    }
    const row = await routerById(this.db, r.id);
    if (row?.host_id != null) await refreshHostDesired(this.db, Number(row.host_id));
  }

  async destroyRouter(r: RouterRuntime): Promise<void> {
    await this.routerOff(r);
  }

  private async vmRow(id: number) {
    return this.db.selectFrom('vms').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  }

  /** Waits until the VM's host reports it `want`; throws a CloudStack error naming the host and what it said. */
  private async waitVm(h: HostRow, instanceName: string, want: Want): Promise<void> {
    const waitMs = Number(await getSetting(this.db, 'stacknet.host.vm.wait')) * 1000;
    const deadline = Date.now() + waitMs;
    let said: string;
    for (;;) {
      // Armed before the look: a report landing while the agent is asked still wakes the next one.
      const reported = nextReport(Number(h.id), REPORT_FALLBACK_MS);
      const { status, error } = await this.hostStatus(h);
      const vm = status?.vms.find((v) => v.instanceName === instanceName);
      const problem = status?.errors.find((e) => e.what.includes(instanceName));
      if (want === 'gone' ? !vm || vm.state === 'Missing' : vm?.state === want) return;
      if (vm?.state === 'Error')
        throw new CloudStackError(
          'ResourceUnavailable',
          `Host ${h.name} (${h.address}) could not make VM ${instanceName} ${want}: ${vm.message ?? problem?.message ?? 'Error'}`,
          { uuidList: [h.uuid] },
        );
      said = error
        ? `its agent does not answer (${error})`
        : vm
          ? `VM ${vm.state}${vm.message ? `: ${vm.message}` : ''}${problem ? `; ${problem.message}` : ''}`
          : 'no such VM';
      if (Date.now() > deadline)
        throw new CloudStackError(
          'ResourceUnavailable',
          `Host ${h.name} (${h.address}) did not report VM ${instanceName} ${want === 'gone' ? 'removed' : want} ` +
            `within ${waitMs / 1000} s (stacknet.host.vm.wait): it reports ${said}`,
          { uuidList: [h.uuid] },
        );
      // The agent pushes its status the moment a VM changes state (src/hostagent/host-agent.ts): wake on that
      // report and ask; the look every second is for reports that reach another server (or an older agent).
      await reported;
    }
  }

  async startVm(vm: VmRuntime): Promise<void> {
    const p = await this.placeVm(vm);
    await refreshHostDesired(this.db, Number(p.host.id));
    if (p.wait) await this.waitVm(p.host, vm.instanceName, 'Running');
  }

  /**
   * startVm while the VM's routers converge (`ready`): a libvirt guest boots its firmware and kernel before its
   * DHCP client asks (seconds under emulation, a second or so under KVM; its routers converge in tens to hundreds
   * of ms), so its host starts it now, and the job waits for both: a burst's routers converging (up to 1.9 s
   * measured for a burst of six on a loaded machine) no longer sit before its placement, its host's desired
   * state, its host agent's pass and `virsh start`. A light VM (the netns VM backend: udhcpc at once) starts
   * once they have, as the netns driver's. `ready` rejecting: the VM is held stopped on its host and this
   * rejects with that error.
   */
  async startVmAfter(vm: VmRuntime, ready: Promise<unknown>): Promise<void> {
    ready.catch(() => undefined);
    const p = await this.placeVm(vm);
    if ((await backendFor(this.db, p.host)) !== 'libvirt') await ready;
    await refreshHostDesired(this.db, Number(p.host.id));
    const running = p.wait ? this.waitVm(p.host, vm.instanceName, 'Running') : Promise.resolve();
    running.catch(() => undefined);
    try {
      await ready;
    } catch (e) {
      overrides.stoppedVms.add(vm.id);
      await refreshHostDesired(this.db, Number(p.host.id));
      throw e;
    }
    await running;
  }

  /**
   * The VM's host: where it runs (a Running VM stays on its host whatever the host's state), else FirstFit
   * (src/hosts/placement.ts) preferring its host and last host, recorded; the host it leaves is refreshed (it drops
   * the VM). `wait`: whether its host is to report it Running (not a Running VM's host that is not Up).
   */
  private async placeVm(vm: VmRuntime): Promise<{ host: HostRow; wait: boolean }> {
    const row = await this.vmRow(vm.id);
    overrides.stoppedVms.delete(vm.id);
    const current = row.host_id === null ? undefined : await hostById(this.db, Number(row.host_id));
    // A Running VM (the server resuming VMs at start, a reboot) stays on its host whatever the host's state: a
    // Down host's VMs are reported, never moved; a Disabled host keeps what it runs.
    if (row.state === 'Running' && current) return { host: current, wait: current.state === 'Up' };
    const so =
      row.service_offering_id === null
        ? undefined
        : await this.db
            .selectFrom('service_offerings')
            .selectAll()
            .where('id', '=', row.service_offering_id)
            .executeTakeFirst();
    const need = {
      memoryMiB: Number(row.memory ?? so?.memory ?? 0),
      cpuMhz: Number(row.cpu_number ?? so?.cpu_number ?? 0) * Number(row.cpu_speed ?? so?.cpu_speed ?? 0),
    };
    const h = await this.placeInBatch({
      vmId: vm.id,
      zoneId: Number(row.zone_id),
      need,
      prefer: [row.host_id, row.last_host_id].map((x) => (x === null ? null : Number(x))),
      counted: { hostId: row.host_id === null ? null : Number(row.host_id) },
    });
    if (!h)
      throw new CloudStackError(
        'ResourceUnavailable',
        `Unable to create a deployment for VM ${row.instance_name}: ${await noHostReason(this.db, Number(row.zone_id), need)}`,
      );
    // The host it was defined on drops it.
    if (current && Number(h.id) !== Number(current.id)) await refreshHostDesired(this.db, Number(current.id));
    return { host: h, wait: true };
  }

  /** The VM's host, refreshed; undefined when it has none or the host is not Up (nothing to wait for). */
  private async vmHostRefreshed(vmId: number): Promise<HostRow | undefined> {
    const row = await this.vmRow(vmId);
    if (row.host_id === null) return undefined;
    await refreshHostDesired(this.db, Number(row.host_id));
    const h = await hostById(this.db, Number(row.host_id));
    if (!h || h.state !== 'Up') {
      if (h) this.o.log?.(`VM ${row.instance_name}: host ${h.name} is ${h.state}; it acts when it is back`);
      return undefined;
    }
    return h;
  }

  async stopVm(vm: VmRuntime): Promise<void> {
    const row = await this.vmRow(vm.id);
    // rebootVirtualMachine stops and starts a VM whose row stays Running.
    if (row.state === 'Running' || row.state === 'Starting') overrides.stoppedVms.add(vm.id);
    const h = await this.vmHostRefreshed(vm.id);
    if (h) await this.waitVm(h, vm.instanceName, 'Stopped');
  }

  async destroyVm(vm: VmRuntime): Promise<void> {
    overrides.stoppedVms.delete(vm.id);
    const h = await this.vmHostRefreshed(vm.id);
    if (h) await this.waitVm(h, vm.instanceName, 'gone');
  }

  async updateVm(vm: VmRuntime): Promise<void> {
    await this.vmHostRefreshed(vm.id);
  }

  async close(): Promise<void> {}
}
